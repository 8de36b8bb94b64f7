"""Gradient rules: one vector-Jacobian product per differentiable op, one file per op family.

A rule is ``rule(node, xs, ys, dys) -> list`` where ``xs`` are the node's inputs and ``ys`` its
outputs as traced Tensors (irc.trace), and ``dys`` the cotangents of the outputs (a Tensor, or
None for an output nothing downstream depends on). It returns one cotangent per input: a Tensor
of that input's shape, or None where the input gets no gradient (integer indices, a condition).
Rules build ordinary graph nodes with the numpy-like Tensor API, so the backward graph is an
ordinary graph that every pass and target handles.

Each rule is stored in its op's ``grad`` slot of the registry (``grad_inputs`` lists the inputs
it differentiates). Every op is in exactly one of three places, which a test checks:

- it has a rule (this package);
- it is piecewise constant or integer valued (comparisons, rounding, argmax...): NONDIFFERENTIABLE,
  whose gradient is zero, so the walk stops there;
- it is UNSUPPORTED, with the reason (lowered and fused forms exist only after autodiff has run).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from irc.ir.ops import REGISTRY
from irc.frontend.trace import Tensor, broadcast_to, reshape

Rule = Callable[..., list]

#: Ops whose derivative is zero wherever it exists (or whose outputs are integers / bools).
NONDIFFERENTIABLE = frozenset(
    "floor ceil round sign equal less less_equal greater greater_equal and or xor not argmax argmin".split()
)

#: Op -> why autodiff cannot go through it. Families are covered by tag (see unsupported_reason).
UNSUPPORTED: dict[str, str] = {
    "lrn": "local response normalization has no gradient rule; use batch normalization when training",
    "resize": "resize has no gradient rule yet",
    "gather_elements": "gather_elements has no gradient rule yet; use gather",
}

_TAG_REASONS = {
    "fused": "fused ops exist only after the fuse pass, which runs after autodiff: differentiate the unfused graph",
    "lowered": "lowered ops exist only after lowering, which runs after autodiff: differentiate the graph before lowering",
    "quant": "integer quantized ops have no gradient: train in float, then quantize",
    "grad": "backward-only ops are not differentiated again (no second derivatives)",
}


def unsupported_reason(op: str) -> str | None:
    """Why ``op`` has no gradient rule, or None if it is not unsupported."""
    if op in UNSUPPORTED:
        return UNSUPPORTED[op]
    tags = REGISTRY[op].tags if op in REGISTRY else frozenset()
    for tag, why in _TAG_REASONS.items():
        if tag in tags:
            return why
    return None


def grad_rule(*ops: str, inputs: Sequence[int] | None = None):
    """Decorator: ``rule`` becomes the gradient of ``ops`` (``inputs``: the positions it
    differentiates; all by default)."""

    def wrap(fn: Rule) -> Rule:
        for op in ops:
            d = REGISTRY[op]
            assert d.grad is None, f"gradient rule of {op} defined twice"
            d.grad = fn
            d.grad_inputs = tuple(inputs) if inputs is not None else None
        return fn

    return wrap


# ----------------------------------------------------------------------------------------
# Helpers shared by the rules.


def unbroadcast(g: Tensor, shape: tuple[int, ...]) -> Tensor:
    """``g`` summed over the axes that numpy broadcasting added or stretched to reach g's shape
    from ``shape``: the adjoint of broadcasting."""
    shape = tuple(shape)
    if g.shape == shape:
        return g
    lead = g.ndim - len(shape)
    axes = list(range(lead)) + [lead + i for i, d in enumerate(shape) if d == 1 and g.shape[lead + i] != 1]
    if axes:
        g = g.sum(axis=tuple(axes), keepdims=True)
    return reshape(g, shape)


def zeros_like(t: Tensor) -> Tensor:
    return broadcast_to(t.tracer.const(np.zeros((), t.dtype)), t.shape)


def scalar(t: Tensor, v: float) -> Tensor:
    """A scalar constant of t's element type."""
    return t.tracer.const(np.asarray(v, t.dtype))


def keep_axes(dy: Tensor, x_shape: tuple[int, ...], axes: Sequence[int], keepdims: int) -> Tensor:
    """A reduction's cotangent reshaped so that it broadcasts against the input again."""
    if keepdims:
        return dy
    return reshape(dy, tuple(1 if i in axes else d for i, d in enumerate(x_shape)))


# The rule files register themselves on import.
from irc.passes.grads import conv, elementwise, index, linalg, norm, pool, reduce  # noqa: E402,F401
from irc.passes.grads import shape as shape_rules  # noqa: E402,F401
