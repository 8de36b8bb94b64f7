"""The one driver for local rewrites.

A pattern is ``fn(node, ctx) -> tuple of Values | None``: it looks at one node (and, through
``ctx``, at producers, users and constants around it), and either declines (None) or returns
the values that replace the node's outputs, having created any new nodes with ``ctx.make``.
``rewrite`` sweeps the graph applying the patterns registered for each op kind until a sweep
changes nothing, then drops dead nodes and parameters. New nodes take the matched node's place
in the order, so the graph stays topologically sorted; replaced graph outputs keep their names.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from irc.errors import IRCError
from irc.ir.builder import GraphBuilder
from irc.ir.graph import Graph, Node, Value
from irc.ir.ops import get_op
from irc.ir.verify import verify
from irc.passes.dead_code import eliminate_dead_code

Pattern = Callable[[Node, "RewriteContext"], "Sequence[Value] | None"]


class RewriteContext:
    """What a pattern may ask about the graph and how it makes new nodes."""

    def __init__(self, g: Graph, options: Mapping[str, Any]):
        self.graph = g
        self.options = dict(options)
        self.params: dict[Value, np.ndarray] = dict(g.params)
        self._producer = {v: n for n in g.nodes for v in n.outputs}
        self._users: dict[Value, int] = {}
        for n in g.nodes:
            for v in n.inputs:
                self._users[v] = self._users.get(v, 0) + 1
        for v in g.outputs:
            self._users[v] = self._users.get(v, 0) + 1
        self._outputs = set(g.outputs)
        self._names = GraphBuilder(g.name, taken=(v.name for v in g.values()))
        self.pending: list[Node] = []
        self._label = ""

    # -- questions
    def producer(self, v: Value) -> Node | None:
        return self._producer.get(v)

    def single_use(self, v: Value) -> bool:
        """True if ``v`` is read exactly once and is not a graph output (safe to fuse away).
        Values made during this sweep are not known yet: False, and the next sweep retries."""
        return self._users.get(v, 0) == 1 and v not in self._outputs and v in self._producer

    def is_const(self, v: Value) -> bool:
        return v in self.params

    def const(self, v: Value) -> np.ndarray | None:
        return self.params.get(v)

    # -- making
    def param(self, data: np.ndarray, name: str = "c") -> Value:
        data = np.ascontiguousarray(data)
        from irc.ir.types import TensorType

        v = Value(self._names.fresh(name), TensorType.of(data))
        self.params[v] = data
        return v

    def make(self, op: str, inputs: Sequence[Value], name: str | None = None, **attrs) -> Value:
        outs = self.make_multi(op, inputs, name=name, **attrs)
        assert len(outs) == 1
        return outs[0]

    def make_multi(self, op: str, inputs: Sequence[Value], name: str | None = None, **attrs) -> tuple[Value, ...]:
        try:
            attrs, types = get_op(op).type_check([v.type for v in inputs], attrs)
        except IRCError as e:
            raise e.at(self._label, op) from None
        outs = tuple(Value(self._names.fresh(name), t) for t in types)
        node = Node(op, tuple(inputs), outs, attrs, self._label)
        self.pending.append(node)
        for v in outs:
            self._producer[v] = node
        return outs


def rewrite(g: Graph, patterns: Mapping[str, Sequence[Pattern]], *, options: Mapping[str, Any] | None = None,
            max_sweeps: int = 64) -> Graph:
    """Apply ``patterns`` (op name -> patterns tried in order) to a fixed point."""
    for _ in range(max_sweeps):
        ctx = RewriteContext(g, options or {})
        remap: dict[Value, Value] = {}
        nodes: list[Node] = []
        changed = False
        for n in g.nodes:
            if any(v in remap for v in n.inputs):
                n = Node(n.op, tuple(remap.get(v, v) for v in n.inputs), n.outputs, n.attrs, n.name)
                for v in n.outputs:
                    ctx._producer[v] = n
            result = None
            for pattern in patterns.get(n.op, ()):
                ctx.pending = []
                ctx._label = n.label
                result = pattern(n, ctx)
                if result is not None:
                    break
                ctx.pending = []
            if result is None:
                nodes.append(n)
                continue
            changed = True
            nodes.extend(ctx.pending)
            ctx.pending = []
            for old, new in zip(n.outputs, result):
                remap[old] = new
        if not changed:
            return g
        g = _finish(g, nodes, remap, ctx.params)
    raise AssertionError("rewrite did not reach a fixed point")


def _finish(g: Graph, nodes: list[Node], remap: dict[Value, Value], params: dict[Value, np.ndarray]) -> Graph:
    """Resolve chains of replacements, keep graph output names, drop what is dead."""

    def final(v: Value) -> Value:
        while v in remap:
            v = remap[v]
        return v

    outputs = [final(v) for v in g.outputs]
    rename = {}
    for old, new in zip(g.outputs, outputs):
        if new is not old and new not in g.inputs and new not in params and new not in rename:
            rename[new] = Value(old.name, new.type)
    fixed = []
    for n in nodes:
        ins = tuple(rename.get(final(v), final(v)) for v in n.inputs)
        outs = tuple(rename.get(v, v) for v in n.outputs)
        fixed.append(Node(n.op, ins, outs, n.attrs, n.name))
    outputs = [rename.get(v, v) for v in outputs]
    out = eliminate_dead_code(g.replace(nodes=fixed, outputs=outputs, params=params))
    # A replaced output that is now a parameter or input must still be a node output.
    b = None
    fixed_outputs = []
    for old, v in zip(g.outputs, out.outputs):
        if v in out.params or v in out.inputs:
            b = b or GraphBuilder(g.name, taken=(x.name for x in out.values()))
            ident = Node("identity", (v,), (Value(b.fresh(old.name + "_out"), v.type),), {}, old.name)
            out.nodes.append(ident)
            v = ident.outputs[0]
        fixed_outputs.append(v)
    return verify(out.replace(outputs=fixed_outputs))
