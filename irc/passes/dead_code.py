"""Dead-code elimination."""

from __future__ import annotations

from irc.ir.graph import Graph
from irc.passes.registry import register_pass


@register_pass("dead_code")
def eliminate_dead_code(g: Graph) -> Graph:
    """Drops nodes none of whose outputs reach a graph output, and parameters nothing reads.
    Graph inputs stay (they are the model's signature) even when unused."""
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
