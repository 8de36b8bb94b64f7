"""Dead-code elimination."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from irc.ir.graph import Graph
from irc.passes.registry import Pass, register_pass


def eliminate_dead_code(g: Graph) -> Graph:
    """The dead_code pass as a function (see DeadCode)."""
    live = set(g.outputs)
    kept = []
    for n in reversed(g.nodes):
        if any(v in live for v in n.outputs):
            kept.append(n)
            live.update(n.inputs)
    kept.reverse()
    params = {v: a for v, a in g.params.items() if v in live}
    if len(kept) == len(g.nodes) and len(params) == len(g.params):
        return g
    return g.replace(nodes=kept, params=params)


@register_pass
@dataclass(frozen=True)
class DeadCode(Pass):
    """Drops nodes none of whose outputs reach a graph output, and parameters nothing reads.
    Graph inputs stay (they are the model's signature) even when unused."""

    name: ClassVar[str] = "dead_code"

    def run(self, g: Graph) -> Graph:
        return eliminate_dead_code(g)
