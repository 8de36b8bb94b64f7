"""Parallelism tuning: the per-layer parallelism of an accelerator, raised where it is slowest
until the budget is spent.

The tuner walks one path of designs that does not depend on the budget. It starts with every
block at its minimum parallelism (one channel, one pixel at a time); each step takes the slowest
block (the one that sets the frame rate; see below for weights in external memory) and applies
the cheapest one-factor raise that makes it faster (the next divisor of its input channels, of
its output channels, of both, or of the output pixels it computes at once; cheapest: the
smallest share of the device's DSP plus M20K blocks the block adds, then the fastest; a raise
that would not fit the whole device is passed over for the next cheapest). The path ends when
the slowest block is at its maximum parallelism, when no faster setting of it fits the device,
or when the frame rate reaches ``target_fps``.

``tune`` returns the last design of that path before the first step that exceeds the budget
(``max_dsp`` and ``max_m20k``: fractions of the device's DSP and M20K blocks). Along the path the
slowest block only gets faster, so the frame rate never drops; a larger budget stops the walk at
the same step or a later one, so **a larger budget never gives fewer frames/s** (a greedy search
that picks the fastest raise that fits does not have that property: with more room it can spend
it on one layer early and be stuck at another). The design returned never exceeds the budget.

Layers whose weights stream from external memory (offchip.py: chosen once per model and device,
before the walk) are bounded by the memory's bandwidth on their own and together: a frame
period is at least the slowest block's cycles and at least the streamed bytes of a frame over
the bytes per cycle the memory gives. Raises never add streamed bytes (PP > 1 divides them), so
the frame rate still never drops along the path; once the memory sets the period, the path raises
the streamed block that reads the most, taking only raises that cut its bytes (or raise its PO
towards all output channels, where PP can follow), and ends when there are none.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from irc.errors import InputError
from irc.targets.dneuro.devices import M20K_BITS, Device
from irc.targets.dneuro.layers import Layer, LayerGraph
from irc.targets.dneuro.offchip import choose
from irc.targets.dneuro.resources import (
    LayerCost,
    Memory,
    in_lanes,
    join_fifos,
    layer_cost,
    options,
    out_lanes,
)

Parallelism = dict[str, tuple[int, int, int]]  # (PI, PO, PP) per layer


@dataclass(slots=True)
class Design:
    """An accelerator at one parallelism: per-block costs, join FIFOs and totals."""

    lg: LayerGraph
    device: Device
    clock_mhz: float
    par: Parallelism
    costs: dict[str, LayerCost]
    fifos: dict[tuple[str, int], Memory]
    streamed: frozenset[str] = frozenset()  # layers whose weights stream from external memory
    ddr_bpc: float = 0.0  # external-memory bytes per cycle (0: none used)

    @property
    def dsp(self) -> int:
        return sum(c.dsp for c in self.costs.values())

    @property
    def m20k(self) -> int:
        return sum(c.m20k for c in self.costs.values()) + sum(f.m20k for f in self.fifos.values())

    @property
    def m20k_bits(self) -> int:
        return self.m20k * M20K_BITS

    @property
    def memory_bits(self) -> int:
        """Bits actually stored (before rounding to blocks)."""
        return sum(c.bits for c in self.costs.values()) + sum(f.bits for f in self.fifos.values())

    @property
    def macs(self) -> int:
        return sum(c.macs for c in self.costs.values())

    @property
    def multipliers(self) -> int:
        return sum(c.multipliers for c in self.costs.values())

    @property
    def slowest(self) -> LayerCost:
        return max(self.costs.values(), key=lambda c: c.cycles)  # the first of equals

    @property
    def ddr_bytes(self) -> int:
        """Weight bytes read from external memory per frame (all streamed layers)."""
        return sum(c.ddr_bytes for c in self.costs.values())

    @property
    def ddr_cycles(self) -> int:
        """Cycles the external memory needs for a frame's weights (0 when nothing streams)."""
        return math.ceil(self.ddr_bytes / self.ddr_bpc) if self.ddr_bytes else 0

    @property
    def cycles(self) -> int:
        """Cycles per frame in steady state: the slowest block's, or the external memory's when
        the streamed weights take longer."""
        return max(self.slowest.cycles, self.ddr_cycles)

    @property
    def fps(self) -> float:
        return self.clock_mhz * 1e6 / self.cycles

    @property
    def latency_cycles(self) -> int:
        """One frame from its first input beat to its last output: the pipeline fills at the
        slowest block's pace (one frame period), then each block on the deepest path finishes its
        last output row (its frame time over its output rows) through its pipeline."""
        def tail(layer: Layer) -> float:
            c = self.costs[layer.name]
            return c.cycles / max(1, layer.shape.h) + c.depth if layer.kind != "input" else 0

        return int(math.ceil(self.cycles + self.lg.deepest(tail)[self.lg.output.name]))

    @property
    def latency_ms(self) -> float:
        return self.latency_cycles / (self.clock_mhz * 1e3)

    def within(self, dsp: int, m20k: int) -> bool:
        return self.dsp <= dsp and self.m20k <= m20k


class _Evaluator:
    """Designs for parallelism maps, with layer costs cached."""

    def __init__(self, lg: LayerGraph, device: Device, clock_mhz: float, streamed: frozenset[str] = frozenset()):
        self.lg, self.device, self.clock_mhz = lg, device, clock_mhz
        self.streamed = frozenset(streamed)
        self.ddr_bpc = device.ddr_bytes_per_cycle(clock_mhz) if self.streamed else 0.0
        self.cache: dict[tuple[str, int, int, int], LayerCost] = {}

    def cost(self, name: str, pi: int, po: int, pp: int) -> LayerCost:
        key = (name, pi, po, pp)
        c = self.cache.get(key)
        if c is None:
            c = self.cache[key] = layer_cost(self.lg[name], self.lg, pi, po, pp,
                                             self.ddr_bpc if name in self.streamed else None)
        return c

    def design(self, par: Parallelism) -> Design:
        costs = {ly.name: self.cost(ly.name, *par[ly.name]) for ly in self.lg}
        lanes = {ly.name: out_lanes(ly, *par[ly.name]) for ly in self.lg}
        depths = {name: c.depth for name, c in costs.items()}
        joins = {ly.name: in_lanes(ly, self.lg, *par[ly.name]) for ly in self.lg if len(ly.inputs) > 1}
        return Design(self.lg, self.device, self.clock_mhz, dict(par), costs, join_fifos(self.lg, lanes, depths, joins),
                      self.streamed, self.ddr_bpc)


def minimum(lg: LayerGraph) -> Parallelism:
    """Every block at its smallest parallelism."""
    out = {}
    for ly in lg:
        pis, pos, pps = options(ly, lg)
        out[ly.name] = (pis[0], pos[0], pps[0])
    return out


def raises(lg: LayerGraph, name: str, pi: int, po: int, pp: int = 1) -> list[tuple[int, int, int]]:
    """One-factor raises of a block's parallelism: the next PI, the next PO, or both; once PO
    covers every output channel, the next PP (blocks with one channel factor raise it as a
    whole; the input stream raises its pixels per beat once a beat holds a whole pixel)."""
    layer = lg[name]
    pis, pos, pps = options(layer, lg)
    npi = next((p for p in pis if p > pi), None)
    npo = next((p for p in pos if p > po), None)
    npp = next((p for p in pps if p > pp), None) if po == pos[-1] else None
    out = []
    if layer.kind != "conv":
        if npi is not None:
            out.append((npi, npi, pp))
        elif npp is not None:
            out.append((pi, po, npp))
        return out
    if npi is not None:
        out.append((npi, po, pp))
    if npo is not None:
        out.append((pi, npo, pp))
    if npi is not None and npo is not None:
        out.append((npi, npo, pp))
    if npp is not None:
        out.append((pi, po, npp))
    return out


@dataclass(slots=True)
class Tuning:
    """What the tuner did: the design, the budget, each step, and why it stopped."""

    design: Design
    dsp_budget: int
    m20k_budget: int
    fits: bool
    stop: str
    steps: list[tuple[str, tuple[int, int, int], int]] = field(default_factory=list)  # (layer, par, fps)


def budgets(device: Device, max_dsp: float, max_m20k: float) -> tuple[int, int]:
    for what, v in (("max_dsp", max_dsp), ("max_m20k", max_m20k)):
        if not (isinstance(v, (int, float)) and 0 < v <= 1):
            raise InputError(f"{what} must be a fraction of the device in (0, 1], got {v!r}")
    return int(math.floor(device.dsp * max_dsp)), int(math.floor(device.m20k_blocks * max_m20k))


class Tuner:
    """The tuner's path for one model, device, clock and target (see the module docstring),
    extended as budgets need it, so that many budgets (a trade-off curve) share one walk."""

    def __init__(self, lg: LayerGraph, device: Device, clock_mhz: float = 200.0, target_fps: float | None = None,
                 streamed: frozenset[str] | None = None):
        """``streamed``: the layers whose weights stream from external memory; None lets
        offchip.choose pick them (none when the minimum design fits on chip)."""
        if not (isinstance(clock_mhz, (int, float)) and clock_mhz > 0):
            raise InputError(f"clock_mhz must be positive, got {clock_mhz!r}")
        if target_fps is not None and not target_fps > 0:
            raise InputError(f"target_fps must be positive, got {target_fps!r}")
        self.lg, self.device, self.target_fps = lg, device, target_fps
        self.par = minimum(lg)
        if streamed is None:
            streamed = choose(_Evaluator(lg, device, float(clock_mhz)).design(self.par), device)
        self.ev = _Evaluator(lg, device, float(clock_mhz), streamed)
        #: The designs of the path so far; ``end`` says why it ends (None: not walked to the end).
        self.designs: list[Design] = [self.ev.design(self.par)]
        self.steps: list[str] = []  # the layer raised by each step
        self.end: str | None = None

    def extend(self) -> bool:
        """Take one more step of the path; False (and ``end`` set) when it has ended."""
        if self.end is not None:
            return False
        d = self.designs[-1]
        if self.target_fps is not None and d.fps >= self.target_fps:
            self.end = f"reached the target of {self.target_fps:g} frames/s"
            return False
        dev = self.device
        # Once the external memory sets the frame period, the block to raise is the streamed one
        # that reads the most, and only raises that cut its bytes (PP > 1) or lead to one (PO
        # towards all output channels, where PP can follow) are taken.
        ddr_bound = d.ddr_cycles >= d.slowest.cycles
        slow = max((d.costs[ly.name] for ly in self.lg if ly.name in d.streamed), key=lambda c: c.ddr_bytes) \
            if ddr_bound else d.slowest
        pps = options(self.lg[slow.name], self.lg)[2] if ddr_bound else []
        cands = []
        for p in raises(self.lg, slow.name, slow.pi, slow.po, slow.pp):
            c = self.ev.cost(slow.name, *p)
            if (c.cycles <= slow.cycles and (c.ddr_bytes < slow.ddr_bytes or (len(pps) > 1 and p[1] > slow.po))
                    if ddr_bound else c.cycles < slow.cycles):
                # The block's own added share of the device (join FIFOs follow lanes, not cost).
                extra = (c.dsp - slow.dsp) / dev.dsp + (c.m20k - slow.m20k) / dev.m20k_blocks
                cands.append((extra, c.ddr_bytes if ddr_bound else c.cycles, p))
        if not cands:
            self.end = (f"the external memory sets the frame rate ({d.ddr_bytes:,} bytes of weights per frame)"
                        if ddr_bound else f"the slowest layer '{slow.name}' is at its maximum parallelism")
            return False
        for _, _, p in sorted(cands):
            trial = self.ev.design({**self.par, slow.name: p})
            if trial.within(dev.dsp, dev.m20k_blocks):
                break
        else:
            self.end = (f"no parallelism of '{slow.name}' that cuts its external-memory reads fits the device"
                        if ddr_bound else f"no faster parallelism of the slowest layer '{slow.name}' fits the device")
            return False
        self.par[slow.name] = p
        self.designs.append(trial)
        self.steps.append(slow.name)
        return True

    def tune(self, max_dsp: float = 1.0, max_m20k: float = 1.0, max_steps: int = 100_000) -> Tuning:
        """The last design of the path before the first one that exceeds the budget."""
        dsp, m20k = budgets(self.device, max_dsp, max_m20k)
        if not self.designs[0].within(dsp, m20k):
            return Tuning(self.designs[0], dsp, m20k, False, "the design does not fit even at minimum parallelism")
        k = 0
        while True:
            if k + 1 == len(self.designs) and not self.extend():
                stop = self.end
                break
            if k >= max_steps:
                stop = "step limit"
                break
            if not self.designs[k + 1].within(dsp, m20k):
                stop = f"the next raise of the slowest layer '{self.steps[k]}' does not fit the budget"
                break
            k += 1
        steps = [(n, self.designs[j + 1].par[n], int(self.designs[j + 1].fps)) for j, n in enumerate(self.steps[:k])]
        return Tuning(self.designs[k], dsp, m20k, True, stop, steps)


def tune(lg: LayerGraph, device: Device, *, max_dsp: float = 1.0, max_m20k: float = 1.0, clock_mhz: float = 200.0,
         target_fps: float | None = None, max_steps: int = 100_000, streamed: frozenset[str] | None = None) -> Tuning:
    """The last design of the tuner's path within the budget (see the module docstring)."""
    budgets(device, max_dsp, max_m20k)
    return Tuner(lg, device, clock_mhz, target_fps, streamed).tune(max_dsp, max_m20k, max_steps)


def evaluate(lg: LayerGraph, device: Device, par: Parallelism, clock_mhz: float = 200.0,
             streamed: frozenset[str] = frozenset()) -> Design:
    """The design of a given parallelism map (checked against each block's options), the layers
    in ``streamed`` reading their weights from external memory."""
    convs = {ly.name for ly in lg if ly.kind == "conv"}
    for name in streamed:
        if name not in convs:
            raise InputError(f"only conv layers can stream their weights; '{name}' is not one")
    for ly in lg:
        pis, pos, pps = options(ly, lg)
        p = tuple(par[ly.name]) + (1,) * (3 - len(par[ly.name]))
        pi, po, pp = p
        if pi not in pis or po not in pos or pp not in pps or (pp > 1 and po != pos[-1]) or (
                ly.kind != "conv" and pi != po):
            raise InputError(f"parallelism {p} of layer '{ly.name}' is not one of PI {pis}, PO {pos}, PP {pps} "
                             f"(PP > 1 once PO is {pos[-1]})")
        par = {**par, ly.name: p}
    return _Evaluator(lg, device, clock_mhz, frozenset(streamed)).design(par)
