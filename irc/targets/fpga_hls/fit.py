"""Choosing each kernel's parallelism factor and checking that the design fits the board.

``auto``: every kernel starts at P = 1; then, as long as the design fits the budget (a fraction
of every resource of the board, 80% by default), the kernel with the most cycles moves to its
next larger factor (the next divisor of its parallel loop extent). A kernel whose next step
would not fit is frozen; the search ends when every kernel is frozen or fully parallel, or when
the slowest kernel that can still grow takes under 5% of the slowest kernel's cycles. The
slowest kernel sets the pace of a layer pipeline, so the factors go where they shorten it.

A fixed factor (an int, or {kernel or node name: int}) is rounded down to the nearest factor the
kernel accepts. A design that does not fit raises TargetError naming the kernel that uses most
of the resource that overflows, or the kernel that finds no room on any SLR (slr.py: a kernel
cannot span the dies of a stacked device, so each SLR's share is a budget of its own).
"""

from __future__ import annotations

from collections.abc import Mapping

from irc.errors import InputError, TargetError
from irc.targets.fpga_hls.boards import RESOURCES, Board
from irc.targets.fpga_hls.kernels import Kernel
from irc.targets.fpga_hls.precision import Precision
from irc.targets.fpga_hls.resources import Estimate, estimate, totals
from irc.targets.fpga_hls.slr import Overflow, assign_slrs

#: kernels taking under 1/SMALL of the slowest kernel's cycles are not worth more lanes
SMALL = 20


def budget(board: Board, fraction: float) -> dict[str, float]:
    if not 0 < fraction <= 1:
        raise InputError(f"the fraction of the board to fill must be in (0, 1], got {fraction}")
    return {r: board.totals[r] * fraction for r in RESOURCES}


def _fits(total: dict[str, float], limit: dict[str, float], estimates: list[Estimate], board: Board,
          fraction: float) -> bool:
    """Within the device budget, and the kernels can be placed on SLRs within theirs."""
    return (all(total[r] <= limit[r] for r in RESOURCES)
            and not isinstance(assign_slrs(estimates, board, fraction), Overflow))


def check_fit(kernels: list[Kernel], estimates: list[Estimate], board: Board, fraction: float) -> None:
    """TargetError unless the estimates fit ``fraction`` of the board and of each of its SLRs."""
    limit = budget(board, fraction)
    total = totals(estimates)
    for r in RESOURCES:
        if total[r] > limit[r]:
            worst_i = max(range(len(estimates)), key=lambda i: estimates[i].cost[r])
            k, e = kernels[worst_i], estimates[worst_i]
            alone = " alone" if e.cost[r] > limit[r] else ""
            bufs = ", ".join(f"{n} {d:,}x{b} bits" for n, d, b, _ in e.buffers)
            raise TargetError(
                f"the design does not fit {fraction:.0%} of the {board.title}: it needs {int(total[r]):,} {r} of "
                f"{int(limit[r]):,}; {k.describe()}{alone} takes {int(e.cost[r]):,} {r} at parallelism "
                f"{e.parallelism}" + (f" (buffers: {bufs})" if bufs else "")
                + "; lower the parallelism, choose a narrower precision or a larger board",
                node=k.label, op=k.node.op)
    placed = assign_slrs(estimates, board, fraction)
    if isinstance(placed, Overflow):
        k, e = kernels[placed.index], estimates[placed.index]
        r = placed.resource
        where = ("it alone exceeds one SLR's share" if placed.alone > placed.room
                 else "the SLRs are full with the kernels before it")
        raise TargetError(
            f"the design does not fit the SLRs of the {board.title} at {fraction:.0%}: {k.describe()} needs "
            f"{int(e.cost[r]):,} {r} at parallelism {e.parallelism} and an SLR offers {int(placed.room):,} "
            f"({where}; a kernel cannot span SLRs); lower the parallelism or choose a larger board",
            node=k.label, op=k.node.op)


def _round_down(k: Kernel, p: int) -> int:
    return max(c for c in k.candidates() if c <= max(p, 1))


def assign_parallelism(kernels: list[Kernel], precision: Precision, board: Board, fraction: float,
                       parallelism) -> list[Estimate]:
    """Set ``k.parallelism`` on every kernel; return their estimates (checked to fit)."""
    if isinstance(parallelism, str) and parallelism.strip().lower() == "auto":
        return _auto(kernels, precision, board, fraction)
    if isinstance(parallelism, Mapping):
        for k in kernels:
            want = parallelism.get(k.name, parallelism.get(k.label, 1))
            k.parallelism = _round_down(k, _positive(want))
    else:
        p = _positive(parallelism)
        for k in kernels:
            k.parallelism = _round_down(k, p)
    est = [estimate(k, precision, board) for k in kernels]
    check_fit(kernels, est, board, fraction)
    return est


def _positive(p) -> int:
    if isinstance(p, bool) or not (isinstance(p, int) or (isinstance(p, str) and p.strip().isdigit())):
        raise InputError(f"parallelism must be 'auto' or a positive integer, got {p!r}")
    v = int(p)
    if v < 1:
        raise InputError(f"parallelism must be 'auto' or a positive integer, got {p!r}")
    return v


def _auto(kernels: list[Kernel], precision: Precision, board: Board, fraction: float) -> list[Estimate]:
    for k in kernels:
        k.parallelism = 1
    est = [estimate(k, precision, board) for k in kernels]
    check_fit(kernels, est, board, fraction)
    limit = budget(board, fraction)
    total = totals(est)
    frozen = [len(k.candidates()) == 1 for k in kernels]
    while not all(frozen):
        i = max((j for j in range(len(kernels)) if not frozen[j]), key=lambda j: est[j].cycles)
        if est[i].cycles * SMALL < max(e.cycles for e in est):
            break  # what can still grow is a sliver of the slowest kernel: more lanes buy nothing
        k = kernels[i]
        bigger = [c for c in k.candidates() if c > k.parallelism]
        trial = estimate(k, precision, board, bigger[0])
        new_total = {r: total[r] - est[i].cost[r] + trial.cost[r] for r in RESOURCES}
        if trial.cycles >= est[i].cycles or not _fits(new_total, limit, [*est[:i], trial, *est[i + 1:]], board,
                                                      fraction):
            frozen[i] = True  # more lanes buy nothing here (e.g. a loop bound by its memory port), or do not fit
            continue
        k.parallelism = bigger[0]
        est[i], total = trial, new_total
        if len(bigger) == 1:
            frozen[i] = True
    return est
