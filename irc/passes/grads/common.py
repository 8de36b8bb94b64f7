"""What the gradient rules share: the decorator that stores a rule in its op's ``grad`` slot,
the checks autodiff asks of an op, and Tensor helpers (the adjoint of broadcasting, constants)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from irc.frontend.trace import Tensor, broadcast_to, reshape
from irc.ir.ops import REGISTRY
from irc.ir.ops.registry import Trait

Rule = Callable[..., list]


def zero_gradient(op: str) -> bool:
    """Whether ``op``'s derivative is zero wherever it exists (or its outputs are integers / bools)."""
    return op in REGISTRY and Trait.ZERO_GRAD in REGISTRY[op].traits


def unsupported_reason(op: str) -> str | None:
    """Why autodiff refuses ``op``, or None if it does not."""
    return REGISTRY[op].no_grad if op in REGISTRY else None


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
