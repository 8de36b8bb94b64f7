"""Gradient rules: one vector-Jacobian product per differentiable op, one file per op family.

A rule is ``rule(node, xs, ys, dys) -> list`` where ``xs`` are the node's inputs and ``ys`` its
outputs as traced Tensors (irc.trace), and ``dys`` the cotangents of the outputs (a Tensor, or
None for an output nothing downstream depends on). It returns one cotangent per input: a Tensor
of that input's shape, or None where the input gets no gradient (integer indices, a condition).
Rules build ordinary graph nodes with the numpy-like Tensor API, so the backward graph is an
ordinary graph that every pass and target handles.

Each rule is stored in its op's ``grad`` slot of the registry (``grad_inputs`` lists the inputs
it differentiates), the one place to look. Every op is in exactly one of three cases, declared
on its OpDef and checked by a test:

- it has a rule (this package);
- it is piecewise constant or integer valued (comparisons, rounding, argmax...): the ZERO_GRAD
  trait, whose gradient is zero, so the walk stops there;
- autodiff refuses it, with the reason in ``opdef.no_grad`` (fused, lowered and quantized forms
  exist only after autodiff has run).
"""

from irc.passes.grads.common import (  # noqa: F401
    Rule,
    grad_rule,
    keep_axes,
    scalar,
    unbroadcast,
    unsupported_reason,
    zero_gradient,
    zeros_like,
)

# The rule files register themselves on import.
from irc.passes.grads import conv, elementwise, index, linalg, norm, pool, reduce  # noqa: F401  # isort: skip
from irc.passes.grads import numeric, scatter  # noqa: F401  # isort: skip
from irc.passes.grads import self_gated  # noqa: F401  # isort: skip
from irc.passes.grads import shape as shape_rules  # noqa: F401  # isort: skip
