"""Denormal flushing."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from irc.ir.graph import Graph
from irc.passes.registry import Pass, register_pass


def flush_denormals(g: Graph) -> Graph:
    """The flush_denormals pass as a function (see FlushDenormals)."""
    if g.meta.get("flush_denormals"):
        return g
    return g.replace(meta={**g.meta, "flush_denormals": True})


@register_pass
@dataclass(frozen=True)
class FlushDenormals(Pass):
    """Marks the graph to run with denormals flushed to zero (FTZ) and treated as zero on input
    (DAZ). Denormal operands send many CPUs to microcode assists (2.57x slower end to end on
    a network full of them); targets honour the mark (the CPU target sets MXCSR on entry, on
    every pool thread, and restores it on exit). The cpu and cuda targets run the pass unless
    ``ftz=False`` (``--opt ftz=false``), for strict IEEE results."""

    name: ClassVar[str] = "flush_denormals"

    def run(self, g: Graph) -> Graph:
        return flush_denormals(g)
