"""Choosing every stage's folding (PE x SIMD) so the pipeline is balanced within the board.

The pipeline runs at its slowest stage's pace, so the tuner repeatedly takes the slowest stage
and gives it its next folding: among the foldings that make it faster with the fewest MAC
lanes (up to twice that many; the window stages' overlapped walk, a window copy that lets the
walk go on while an output is computed, counts as a step too), the one taking the least of an
SLR, so weights keep packing memory words (a SIMD that leaves URAM words half empty loses to a
PE). The step is kept when the design still fits; when it does not, the
slowest stage cannot be made faster and neither can the pipeline, so the search ends. Every
step lowers (or keeps) the slowest stage's cycles and the steps do not depend on the budget, so
a larger budget follows the same steps further: it never gives a slower design.

Fit: the stages are placed on the SLRs in pipeline order, in contiguous runs (a stream crosses
a die boundary at most once per run): each run fills an SLR up to the budget's fraction of its
share of every resource (slr.slr_share), the next stage that would overflow it starts the next
SLR. Placing contiguously is monotone too: cheaper stages or a larger share never push a stage
to a later SLR, so a design that fits keeps fitting.
"""

from __future__ import annotations

from collections.abc import Mapping

from irc.errors import InputError, TargetError
from irc.targets.fpga_hls.boards import RESOURCES, Board
from irc.targets.fpga_hls.dataflow.model import StageModel, model_stage, pipeline_depth, top_interface, trip_count
from irc.targets.fpga_hls.dataflow.plan import WINDOW_KINDS, Network, Stage, pe_choices, simd_choices
from irc.targets.fpga_hls.precision import Precision
from irc.targets.fpga_hls.slr import slr_share


def place_slrs(models: list[StageModel], board: Board, fraction: float) -> list[int] | None:
    """The SLR of each stage (contiguous runs in pipeline order), or None if they do not fit."""
    share = slr_share(board, fraction)
    used = dict(top_interface())
    slr = 0
    out = []
    for m in models:
        if any(m.cost[r] > share[r] for r in RESOURCES):
            return None
        if any(used[r] + m.cost[r] > share[r] for r in RESOURCES):
            slr += 1
            if slr >= board.slrs:
                return None
            used = dict.fromkeys(RESOURCES, 0.0)
        for r in RESOURCES:
            used[r] += m.cost[r]
        out.append(slr)
    return out


def cycles_of(net: Network, s: Stage, precision: Precision) -> int:
    trips, ii = trip_count(net, s, precision)
    return trips * ii + pipeline_depth(s, precision)


def smallest(net: Network, s: Stage, precision: Precision, board: Board, fraction: float) -> tuple[int, int, int]:
    """The folding that takes the least of an SLR (its largest share of any resource; then the
    fewest lanes): the start of the search. Not always (1, 1): a ROM one weight wide fills
    deep BRAMs a bit at a time, where SIMD weights a word pack a URAM's 72-bit words."""
    share = slr_share(board, fraction)
    best, key = (1, 1, 0), None
    for f in foldings(s, net):
        if f[0] * f[1] > 64:
            break
        if f[2]:
            continue
        _set(s, f)
        m = model_stage(net, s, precision, board)
        k = (max(m.cost[r] / share[r] for r in RESOURCES if share[r] > 0), f[0] * f[1])
        if key is None or k < key:
            best, key = f, k
    return best


def foldings(s: Stage, net: Network) -> list[tuple[int, int, int]]:
    """Every (PE, SIMD, overlap) the stage accepts (overlap: window stages), by lanes, then
    without the window copy first, then by PE."""
    ov = (0, 1) if s.kind in WINDOW_KINDS else (0,)
    return sorted(((p, d, o) for p in pe_choices(s, net) for d in simd_choices(s, net) for o in ov),
                  key=lambda c: (c[0] * c[1], c[2], c[0]))


def _set(s: Stage, f: tuple[int, int, int]) -> None:
    s.pe, s.simd, s.overlap = f


def tune(net: Network, precision: Precision, board: Board, fraction: float, clock_mhz: float,
         folding="auto") -> tuple[list[StageModel], list[int]]:
    """Set every stage's PE and SIMD; return the stage models and their SLRs (TargetError when
    even the fully folded design does not fit)."""
    if not 0 < fraction <= 1:
        raise InputError(f"the fraction of the board to fill must be in (0, 1], got {fraction}")
    auto = isinstance(folding, str) and folding.strip().lower() == "auto"
    for s in net.stages:
        _set(s, smallest(net, s, precision, board, fraction) if auto else (1, 1, 0))
    if not auto:
        _fixed(net, folding)
    models = [model_stage(net, s, precision, board) for s in net.stages]
    slrs = place_slrs(models, board, fraction)
    if slrs is None:
        worst = max(range(len(models)), key=lambda i: max(models[i].cost[r] / board.totals[r] for r in RESOURCES))
        m = models[worst]
        r = max(RESOURCES, key=lambda r: m.cost[r] / board.totals[r])
        total = {r: sum(x.cost[r] for x in models) for r in RESOURCES}
        raise TargetError(
            f"the dataflow design does not fit {fraction:.0%} of the SLRs of the {board.title} even "
            f"{'at its smallest folding' if auto else 'at the folding given'}: it needs {int(total[r]):,} {r} "
            f"in all; stage {m.stage} ({m.kind}) alone takes {int(m.cost[r]):,} {r}; choose a narrower precision or "
            f"a larger board", node=net.stages[worst].label)
    if not auto:
        return models, slrs
    done = [len(foldings(s, net)) == 1 for s in net.stages]
    while True:
        order = sorted(range(len(models)), key=lambda i: -models[i].cycles)
        i = order[0]
        if done[i]:
            break  # the slowest stage is as fast as it gets (or could not grow): so is the pipeline
        s = net.stages[i]
        cur = models[i].cycles
        old = (s.pe, s.simd, s.overlap)
        step = None
        share = slr_share(board, fraction)
        first = None
        for f in foldings(s, net):
            if (f[0] * f[1], f[2]) <= (old[0] * old[1], old[2]):
                continue  # no more lanes and no overlap gained: no fewer cycles
            if first is not None and f[0] * f[1] > 2 * first:
                break
            _set(s, f)
            if cycles_of(net, s, precision) >= cur:
                continue
            first = first or f[0] * f[1]
            trial = model_stage(net, s, precision, board)
            key = (max(trial.cost[r] / share[r] for r in RESOURCES if share[r] > 0), trial.cycles)
            if step is None or key < step[0]:
                step = (key, f, trial)
        if step is not None:
            _set(s, step[1])
            step = step[2]
        if step is None:
            _set(s, old)
            done[i] = True
            continue
        placed = place_slrs([*models[:i], step, *models[i + 1:]], board, fraction)
        if placed is None:
            _set(s, old)
            done[i] = True
            break  # the slowest stage cannot grow within the budget: the pipeline's pace is set
        models[i], slrs = step, placed
    return models, slrs


def _fixed(net: Network, folding) -> None:
    """A folding given by hand: {stage or layer name: (PE, SIMD)}, rounded down to accepted values."""
    if not isinstance(folding, Mapping):
        raise InputError(f"folding must be 'auto' or {{stage or layer name: (PE, SIMD)}}, got {folding!r}")
    for s in net.stages:
        want = folding.get(s.name, folding.get(s.label))
        if want is None:
            continue
        try:
            pe, simd = (int(want[0]), int(want[1]))
        except (TypeError, ValueError, IndexError):
            raise InputError(f"folding of {s.label}: expected (PE, SIMD), got {want!r}") from None
        s.pe = max(c for c in pe_choices(s, net) if c <= max(pe, 1))
        s.simd = max(c for c in simd_choices(s, net) if c <= max(simd, 1))
