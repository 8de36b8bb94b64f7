"""Which SLR (super logic region: one die of a stacked-silicon device) each kernel goes on.

A kernel cannot span SLRs, and each SLR holds its own share of the device (the boards here split
their resources evenly over their SLRs: a U200 SLR has 2,280 of the 6,840 DSPs and 720 of the
2,160 BRAMs). So a design fits only if its kernels can be packed into the SLRs with every SLR
within the budget's fraction of its share, not merely if the device totals allow it.

Kernels are placed in execution order: on the previous kernel's SLR while it stays within
budget (every crossing costs routing and a register stage), else on the emptiest SLR that still
has room. The same assignment decides the parallelism search (fit.py) and the ``slr=`` lines of
the link configuration (connectivity.py), so the design the report shows is the one placed.
"""

from __future__ import annotations

from dataclasses import dataclass

from irc.targets.fpga_hls.boards import RESOURCES, Board
from irc.targets.fpga_hls.resources import Estimate


def slr_share(board: Board, fraction: float = 1.0) -> dict[str, float]:
    """What one SLR offers: its even share of the device, times the budget's fraction."""
    return {r: board.totals[r] / board.slrs * fraction for r in RESOURCES}


@dataclass(frozen=True, slots=True)
class Overflow:
    """Why no assignment exists: kernel ``index`` needs ``need`` of ``resource`` on some SLR
    that can offer at most ``room`` (its own cost alone is ``alone``)."""

    index: int
    resource: str
    need: float
    room: float
    alone: float


def assign_slrs(estimates: list[Estimate], board: Board, fraction: float) -> list[int] | Overflow:
    """The SLR of each kernel, or the first kernel that fits on no SLR."""
    share = slr_share(board, fraction)
    used = [dict.fromkeys(RESOURCES, 0.0) for _ in range(board.slrs)]
    out: list[int] = []
    prev = 0

    def fits(s: int, e: Estimate) -> bool:
        return all(used[s][r] + e.cost[r] <= share[r] for r in RESOURCES)

    def fullness(s: int) -> float:
        return max((used[s][r] / share[r]) for r in RESOURCES if share[r] > 0)

    for i, e in enumerate(estimates):
        if fits(prev, e):
            s = prev
        else:
            room = [s for s in range(board.slrs) if fits(s, e)]
            if not room:
                # the resource that blocks it on the SLR where it comes closest to fitting
                best = min(range(board.slrs), key=lambda s: max((used[s][r] + e.cost[r]) / share[r]
                                                                 for r in RESOURCES if share[r] > 0))
                r = max((r for r in RESOURCES if share[r] > 0),
                        key=lambda r: (used[best][r] + e.cost[r]) / share[r])
                return Overflow(i, r, used[best][r] + e.cost[r], share[r], e.cost[r])
            s = min(room, key=fullness)
        for r in RESOURCES:
            used[s][r] += e.cost[r]
        out.append(s)
        prev = s
    return out
