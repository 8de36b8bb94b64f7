"""Reverse-mode automatic differentiation: the backward graph, built from each op's gradient rule.

``gradients(tracer, nodes, loss, wrt)`` walks ``nodes`` (the forward graph, already in the
tracer's builder) in reverse topological order, as micrograd's ``backward()`` does. Every value
that depends on a ``wrt`` value and on which the loss depends gets a cotangent; a node's rule
(the ``grad`` slot of its op, see passes/grads) turns its outputs' cotangents into its inputs',
and cotangents of a value read by several nodes are added. The rules append ordinary nodes, so
the result is one graph holding forward and backward, which the usual passes then optimize
(dead code, constant folding, fusion) and any target runs.

Only float values carry cotangents. Ops with the ZERO_GRAD trait stop the walk (zero gradient);
reaching an op without a rule is an UnsupportedOpError naming the node, the op and the reason.

The registered pass ``autodiff`` does this for a whole graph: it appends the gradients of its
``loss`` output with respect to ``wrt`` (parameter or input names) as new outputs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from irc.errors import InputError, ModelError, UnsupportedOpError
from irc.frontend.trace import Tensor, Tracer, broadcast_to
from irc.ir.builder import rebuild_from
from irc.ir.graph import Graph, Node, Value
from irc.ir.ops import get_op
from irc.passes.grads import unsupported_reason, zero_gradient, zeros_like
from irc.passes.registry import Pass, register_pass


def _depends_on(nodes: Sequence[Node], roots: Sequence[Value]) -> set[Value]:
    """Values computed (transitively) from ``roots``, roots included."""
    reach = set(roots)
    for n in nodes:
        if any(v in reach for v in n.inputs):
            reach.update(n.outputs)
    return reach


def _needed_for(nodes: Sequence[Node], target: Value) -> set[Value]:
    """Values ``target`` depends on (transitively), target included."""
    need = {target}
    for n in reversed(nodes):
        if any(v in need for v in n.outputs):
            need.update(n.inputs)
    return need


def gradients(tracer: Tracer, nodes: Sequence[Node], loss: Value, wrt: Sequence[Value],
              seed: Tensor | None = None) -> list[Tensor | None]:
    """Cotangents of ``wrt`` for the cotangent ``seed`` of ``loss`` (ones by default: the
    gradient of the sum of the loss's elements). None where the loss does not depend on a value."""
    if not loss.dtype.is_float:
        raise ModelError(f"the loss %{loss.name} must be a float tensor to differentiate, got {loss.type}")
    reach = _depends_on(nodes, wrt)
    need = _needed_for(nodes, loss)
    live = reach & need
    ct: dict[Value, Tensor] = {}
    if loss in live:
        ct[loss] = seed if seed is not None else broadcast_to(tracer.const(np.ones((), loss.dtype.numpy)), loss.shape)
    for n in reversed(nodes):
        dys = [ct.get(v) for v in n.outputs]
        if all(d is None for d in dys):
            continue
        targets = [i for i, v in enumerate(n.inputs) if v in live and v.dtype.is_float]
        if not targets or zero_gradient(n.op):
            continue
        op = get_op(n.op)
        if op.grad is None:
            why = unsupported_reason(n.op) or "the op has no gradient rule"
            raise UnsupportedOpError(f"cannot differentiate: {why}", node=n.label, op=n.op)
        ys = [tracer.wrap(v) for v in n.outputs]
        dys = [d if d is not None or not v.dtype.is_float else None for d, v in zip(dys, n.outputs)]
        if len(n.outputs) == 1:
            dys = [dys[0] if dys[0] is not None else zeros_like(ys[0])]
        try:
            dxs = op.grad(n, [tracer.wrap(v) for v in n.inputs], ys, dys)
        except UnsupportedOpError as e:
            raise e.at(n.label, n.op) from None
        for i in targets:
            dx = dxs[i]
            if dx is None:
                continue
            v = n.inputs[i]
            if dx.shape != v.shape or dx.value.dtype is not v.dtype:
                raise ModelError(f"gradient rule gave {dx.type} for input %{v.name} of type {v.type}",
                                 node=n.label, op=n.op)
            ct[v] = ct[v] + dx if v in ct else dx
    return [ct.get(v) for v in wrt]


def autodiff(g: Graph, *, loss: str | None = None, wrt: Sequence[str] | None = None) -> Graph:
    """The autodiff pass as a function (see Autodiff)."""
    by_name = {v.name: v for v in g.values()}
    if loss is None:
        loss_v = g.outputs[0]
    elif loss in by_name:
        loss_v = by_name[loss]
    else:
        raise InputError(f"autodiff: no value named '{loss}' to use as the loss")
    if wrt is None:
        targets = [v for v in g.params if v.dtype.is_float]
    else:
        missing = [w for w in wrt if w not in by_name]
        if missing:
            raise InputError(f"autodiff: no value named {', '.join(missing)} to differentiate with respect to")
        targets = [by_name[w] for w in wrt]
    b = rebuild_from(g)
    b.inputs, b.params, b.nodes = list(g.inputs), dict(g.params), list(g.nodes)
    tr = Tracer(b)
    grads = gradients(tr, g.nodes, loss_v, targets)
    outs = [d if d is not None else zeros_like(tr.wrap(v)) for d, v in zip(grads, targets)]
    # Every output a distinct value (two gradients can be one value, e.g. both operands of an add).
    seen = set(g.outputs)
    values = []
    for o in outs:
        v = o.value
        if v in seen or v in g.params or v in g.inputs:
            v = b.op("identity", v)
        seen.add(v)
        values.append(v)
    return b.build(*g.outputs, *values).replace(meta=dict(g.meta))


@register_pass
@dataclass(frozen=True)
class Autodiff(Pass):
    """Appends gradients to ``g``: matches the ``loss`` output (default: the first output) and the
    ``wrt`` values (names of parameters or inputs; default: every float parameter); produces
    ``g``'s outputs followed by one gradient per ``wrt`` value (of its type; zeros where the loss
    does not depend on it); assumes a float loss (a non-scalar loss is differentiated as the
    sum of its elements)."""

    name: ClassVar[str] = "autodiff"
    loss: str | None = None
    wrt: Sequence[str] | None = None

    def run(self, g: Graph) -> Graph:
        return autodiff(g, loss=self.loss, wrt=self.wrt)
