"""Inlining of control flow (``if``, ``loop``) for the compiled targets, whose graphs are
straight-line code over static shapes.

- An ``if`` whose condition is a constant becomes its branch's nodes (fold_constants does this
  too, through :func:`inline_constant_ifs`).
- An ``if`` whose condition is known only at run time becomes both branches' nodes and one
  ``where(cond, then, else)`` per output: both branches are computed, and the condition picks.
  That is sound because irc ops have no side effects and both branches give the same types (the
  ``if`` op requires it); its cost is both branches'.
- A ``loop`` whose trip count and condition are constants, and whose body computes its condition
  from the iteration number alone (or passes it through), is unrolled: the body once per
  iteration, the iteration number a constant, scan outputs stacked. At most MAX_UNROLLED_NODES
  nodes (iterations x body nodes) are made.
- Anything else (a loop that stops on its data, or whose trip count is known only at run time)
  is refused with an UnsupportedOpError naming the node and why; the interp target runs it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from irc.errors import UnsupportedOpError
from irc.ir.builder import GraphBuilder, rebuild_from
from irc.ir.graph import Graph, Node, Value
from irc.ir.ops.control import condition_slice, scalar, static_trips
from irc.passes.dead_code import eliminate_dead_code
from irc.passes.fold_constants import fold_constants
from irc.passes.registry import Pass, register_pass

#: The most nodes unrolling one loop may make (iterations x body nodes).
MAX_UNROLLED_NODES = 4096

CONTROL_OPS = ("if", "loop")


def splice(b: GraphBuilder, g: Graph, inputs: list[Value], prefix: str) -> list[Value]:
    """``g``'s nodes appended to ``b``, reading ``inputs`` for ``g``'s inputs (its params copied
    into ``b``); returns the values standing for ``g``'s outputs. Node names get ``prefix/``."""
    env: dict[Value, Value] = dict(zip(g.inputs, inputs))
    for v, a in g.params.items():
        env[v] = b.param(v.name, a)
    for n in g.nodes:
        outs = b.add_node(n.op, [env[v] for v in n.inputs], n.attrs, names=[v.name for v in n.outputs],
                          node_name=f"{prefix}/{n.label}")
        env.update(zip(n.outputs, outs))
    return [env[v] for v in g.outputs]


def replace_node(g: Graph, index: int, rewrite) -> Graph:
    """``g`` with node ``index`` replaced by what ``rewrite(builder, node)`` adds to the builder;
    it returns one value per output of the node. Graph outputs keep their values (an identity
    node defines them where the replacement is an input, a parameter or another output)."""
    n = g.nodes[index]
    b = rebuild_from(g)
    b.inputs, b.params, b.nodes = list(g.inputs), dict(g.params), list(g.nodes[:index])
    subst = dict(zip(n.outputs, rewrite(b, n)))
    for m in g.nodes[index + 1:]:
        if any(v in subst for v in m.inputs):
            m = Node(m.op, tuple(subst.get(v, v) for v in m.inputs), m.outputs, m.attrs, m.name)
        b.nodes.append(m)
    made = {v for m in b.nodes for v in m.outputs}
    outputs: list[Value] = []
    for o in g.outputs:
        v = subst.get(o, o)
        if v is not o and (v not in made or v in outputs or v in g.outputs):
            b.nodes.append(Node("identity", (v,), (o,), {}, o.name))
            v = o
        outputs.append(v)
    return eliminate_dead_code(g.replace(inputs=b.inputs, params=b.params, nodes=b.nodes, outputs=outputs))


def inline_constant_ifs(g: Graph) -> Graph:
    """``g`` with every ``if`` whose condition is a parameter replaced by its branch's nodes."""
    while True:
        i = next((k for k, n in enumerate(g.nodes) if n.op == "if" and n.inputs[0] in g.params), None)
        if i is None:
            return g
        g = replace_node(g, i, lambda b, n: _branch(b, n, bool(scalar(b.params[n.inputs[0]]))))


def _branch(b: GraphBuilder, n: Node, taken: bool) -> list[Value]:
    body = n.attrs["then_branch" if taken else "else_branch"]
    return splice(b, body, list(n.inputs[1:]), n.label)


def _select(b: GraphBuilder, n: Node) -> list[Value]:
    """Both branches, and where(cond, then, else) per output."""
    cond = n.inputs[0]
    if cond.type.rank:
        cond = b.op("reshape", cond, shape=())
    then = _branch(b, n, True)
    other = _branch(b, n, False)
    return [b.op("where", cond, t, e) for t, e in zip(then, other)]


def _unroll(b: GraphBuilder, n: Node) -> list[Value]:
    body, k = n.attrs["body"], n.attrs["carried"]
    m, cond = (b.params.get(v) for v in n.inputs[:2])
    refuse = _refusal(n)
    if m is None or cond is None:
        raise refuse("its trip count or initial condition is known only at run time")
    if condition_slice(body) is None:
        raise refuse("it stops on a condition computed from its data, so its trip count is known only as it runs")
    per = max(len(body.nodes), 1)
    trips = static_trips(body, int(scalar(m)), bool(scalar(cond)), MAX_UNROLLED_NODES // per)
    if trips is None:
        raise refuse(f"unrolled it would take over {MAX_UNROLLED_NODES} nodes")
    values, captured = list(n.inputs[2:2 + k]), list(n.inputs[2 + k:])
    scans: list[list[Value]] = [[] for _ in body.outputs[1 + k:]]
    for i in range(trips):
        ins = [b.const(np.array(i, np.int64)), b.const(np.array(True)), *values, *captured]
        outs = splice(b, body, ins, f"{n.label}/{i}")
        values = outs[1:1 + k]
        for acc, s in zip(scans, outs[1 + k:]):
            acc.append(b.op("reshape", s, shape=(1, *s.shape)))
    stacked = []
    for acc, v in zip(scans, n.outputs[k:]):
        if not acc:
            stacked.append(b.const(np.zeros(v.shape, v.dtype.numpy)))
        else:
            stacked.append(acc[0] if len(acc) == 1 else b.op("concat", *acc, axis=0))
    return values + stacked


def _refusal(n: Node):
    def make(why: str) -> UnsupportedOpError:
        return UnsupportedOpError(f"this loop cannot be compiled: {why}. Compiled targets unroll loops whose trip "
                                  "count is known at compile time; the interp target runs any loop",
                                  node=n.label, op=n.op)
    return make


def inline_control(g: Graph) -> Graph:
    """The inline_control pass as a function (see InlineControl)."""
    while True:
        g = fold_constants(g)
        i = next((k for k, n in enumerate(g.nodes) if n.op in CONTROL_OPS), None)
        if i is None:
            return g
        g = replace_node(g, i, _select if g.nodes[i].op == "if" else _unroll)


@register_pass
@dataclass(frozen=True)
class InlineControl(Pass):
    """Replaces every ``if`` and ``loop`` by straight-line nodes (see the module docstring):
    constant conditions pick a branch, run-time ones compute both and select with ``where``,
    loops with a compile-time trip count are unrolled; other loops are refused (interp runs
    them). Constants are folded between rewrites, so nested control flow resolves too."""

    name: ClassVar[str] = "inline_control"

    def run(self, g: Graph) -> Graph:
        return inline_control(g)
