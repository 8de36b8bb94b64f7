"""Constant folding."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from irc.ir.graph import Graph
from irc.ir.interp import run_node
from irc.ir.ops import get_op
from irc.passes.dead_code import eliminate_dead_code
from irc.passes.registry import Pass, register_pass


def fold_constants(g: Graph) -> Graph:
    """The fold_constants pass as a function (see FoldConstants)."""
    from irc.passes.inline_control import inline_constant_ifs  # (it folds with this module)

    g = _fold(g)
    inlined = inline_constant_ifs(g)
    return g if inlined is g else fold_constants(inlined)


def _fold(g: Graph) -> Graph:
    params = dict(g.params)
    outputs = set(g.outputs)
    nodes = []
    for n in g.nodes:
        if (n.inputs and get_op(n.op).foldable and all(v in params for v in n.inputs)
                and not outputs.intersection(n.outputs)):
            params.update(zip(n.outputs, run_node(n, [params[v] for v in n.inputs])))
        else:
            nodes.append(n)
    if len(nodes) == len(g.nodes):
        return g
    return eliminate_dead_code(g.replace(nodes=nodes, params=params))


@register_pass
@dataclass(frozen=True)
class FoldConstants(Pass):
    """Evaluates every node whose inputs are all parameters (and whose op is foldable) with the
    reference interpreter; its output values become parameters holding the results. An ``if``
    whose condition becomes a constant is replaced by its branch's nodes. Graph outputs stay
    node outputs; parameters nothing reads any more are dropped."""

    name: ClassVar[str] = "fold_constants"

    def run(self, g: Graph) -> Graph:
        return fold_constants(g)
