"""Element-wise chains fused into one loop."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from irc.ir.builder import GraphBuilder
from irc.ir.graph import Graph, Node, Value
from irc.ir.ops import get_op
from irc.passes.registry import Pass, register_pass


def _elementwise(n: Node) -> bool:
    return "elementwise" in get_op(n.op).traits and len(n.outputs) == 1


def fuse_elementwise(g: Graph) -> Graph:
    """The fuse_elementwise pass as a function (see FuseElementwise)."""
    uses: dict[Value, int] = {}
    for n in g.nodes:
        for v in n.inputs:
            uses[v] = uses.get(v, 0) + 1
    outputs = set(g.outputs)
    producer = {v: n for n in g.nodes for v in n.outputs}
    group: dict[Node, list[Node]] = {}  # node -> the list of its group (shared object)
    for n in g.nodes:
        if not _elementwise(n):
            continue
        members = [n]
        for v in n.inputs:
            p = producer.get(v)
            if (p is not None and p in group and uses[v] == 1 and v not in outputs
                    and v.shape == n.outputs[0].shape and group[p] is not members):
                absorbed = group[p]
                members[:0] = [m for m in absorbed if m not in members]
        for m in members:
            group[m] = members
    fused: dict[Node, Node] = {}  # last node of a group -> its chain node
    dropped: set[Node] = set()
    seen: set[int] = set()
    for members in group.values():
        if id(members) in seen or len(members) < 2:
            continue
        seen.add(id(members))
        ordered = sorted(members, key=g.nodes.index)
        last = ordered[-1]
        fused[last] = _chain(ordered)
        dropped.update(ordered[:-1])
    if not fused:
        return g
    nodes = [fused.get(n, n) for n in g.nodes if n not in dropped]
    return g.replace(nodes=nodes)


@register_pass
@dataclass(frozen=True)
class FuseElementwise(Pass):
    """Groups connected element-wise nodes whose intermediate values are read only inside the
    group and have the group's output shape, and replaces each group of two or more by one
    ``elementwise_chain`` node: one pass over memory instead of one per op. Inputs may
    broadcast; the chain computes at the output's resolution."""

    name: ClassVar[str] = "fuse_elementwise"

    def run(self, g: Graph) -> Graph:
        return fuse_elementwise(g)


def _chain(members: list[Node]) -> Node:
    """The elementwise_chain node computing ``members`` (topologically ordered)."""
    inside = {v for n in members for v in n.outputs}
    externals: list[Value] = []
    for n in members:
        for v in n.inputs:
            if v not in inside and v not in externals:
                externals.append(v)
    b = GraphBuilder("chain")
    env = {v: b.input(f"x{i}", v.type) for i, v in enumerate(externals)}
    for n in members:
        (out,) = b.add_node(n.op, [env[v] for v in n.inputs], n.attrs)
        env[n.outputs[0]] = out
    last = members[-1]
    body = b.build(env[last.outputs[0]])
    return Node("elementwise_chain", tuple(externals), last.outputs, {"body": body}, last.name)
