"""Parallelism tuning: the per-layer parallelism of an accelerator, raised where it is slowest
until the device is full.

Start with every block at its minimum parallelism (one channel at a time). Then repeat: find the
slowest block (the one that sets the frame rate); raise its parallelism by one factor (the next
divisor of the input channels read, of the output channels computed and written, or of both),
taking, among the raises that make it faster, the fastest one that keeps the whole design within
the budget (``max_dsp`` and ``max_m20k``: fractions of the device's DSP and M20K blocks). Stop
when no raise of the slowest block fits, when it is at its maximum parallelism, or when the
frame rate reaches ``target_fps``. Each step only speeds up the slowest block, so the frame rate
never drops along the way; the design that comes out never exceeds the budget.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from irc.errors import InputError
from irc.targets.dneuro.devices import M20K_BITS, Device
from irc.targets.dneuro.layers import Layer, LayerGraph
from irc.targets.dneuro.resources import (
    PIPELINE_CYCLES,
    LayerCost,
    Memory,
    join_fifos,
    layer_cost,
    options,
    out_lanes,
)

Parallelism = dict[str, tuple[int, int]]


@dataclass(slots=True)
class Design:
    """An accelerator at one parallelism: per-block costs, join FIFOs and totals."""

    lg: LayerGraph
    device: Device
    clock_mhz: float
    par: Parallelism
    costs: dict[str, LayerCost]
    fifos: dict[tuple[str, int], Memory]

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
    def cycles(self) -> int:
        """Cycles per frame in steady state: the slowest block's."""
        return self.slowest.cycles

    @property
    def fps(self) -> float:
        return self.clock_mhz * 1e6 / self.cycles

    @property
    def latency_cycles(self) -> int:
        """One frame from its first input beat to its last output: the pipeline fills at the
        slowest block's pace (one frame period), then each block on the deepest path finishes its
        last output row (its frame time over its output rows) through its pipeline."""
        def tail(layer: Layer) -> float:
            return self.costs[layer.name].cycles / max(1, layer.shape.h) + PIPELINE_CYCLES if layer.kind != "input" else 0

        return int(math.ceil(self.cycles + self.lg.deepest(tail)[self.lg.output.name]))

    @property
    def latency_ms(self) -> float:
        return self.latency_cycles / (self.clock_mhz * 1e3)

    def within(self, dsp: int, m20k: int) -> bool:
        return self.dsp <= dsp and self.m20k <= m20k


class _Evaluator:
    """Designs for parallelism maps, with layer costs cached."""

    def __init__(self, lg: LayerGraph, device: Device, clock_mhz: float):
        self.lg, self.device, self.clock_mhz = lg, device, clock_mhz
        self.cache: dict[tuple[str, int, int], LayerCost] = {}

    def cost(self, name: str, pi: int, po: int) -> LayerCost:
        key = (name, pi, po)
        c = self.cache.get(key)
        if c is None:
            c = self.cache[key] = layer_cost(self.lg[name], self.lg, pi, po)
        return c

    def design(self, par: Parallelism) -> Design:
        costs = {ly.name: self.cost(ly.name, *par[ly.name]) for ly in self.lg}
        lanes = {ly.name: out_lanes(ly, *par[ly.name]) for ly in self.lg}
        return Design(self.lg, self.device, self.clock_mhz, dict(par), costs, join_fifos(self.lg, lanes))


def minimum(lg: LayerGraph) -> Parallelism:
    """Every block at its smallest parallelism."""
    out = {}
    for ly in lg:
        pis, pos = options(ly, lg)
        out[ly.name] = (pis[0], pos[0])
    return out


def raises(lg: LayerGraph, name: str, pi: int, po: int) -> list[tuple[int, int]]:
    """One-factor raises of a block's parallelism: the next PI, the next PO, or both (blocks
    with one factor raise it as a whole)."""
    layer = lg[name]
    pis, pos = options(layer, lg)
    npi = next((p for p in pis if p > pi), None)
    npo = next((p for p in pos if p > po), None)
    if layer.kind != "conv":
        return [(npi, npi)] if npi is not None else []
    out = []
    if npi is not None:
        out.append((npi, po))
    if npo is not None:
        out.append((pi, npo))
    if npi is not None and npo is not None:
        out.append((npi, npo))
    return out


@dataclass(slots=True)
class Tuning:
    """What the tuner did: the design, the budget, each step, and why it stopped."""

    design: Design
    dsp_budget: int
    m20k_budget: int
    fits: bool
    stop: str
    steps: list[tuple[str, tuple[int, int], int]] = field(default_factory=list)  # (layer, (pi, po), fps)


def budgets(device: Device, max_dsp: float, max_m20k: float) -> tuple[int, int]:
    for what, v in (("max_dsp", max_dsp), ("max_m20k", max_m20k)):
        if not (isinstance(v, (int, float)) and 0 < v <= 1):
            raise InputError(f"{what} must be a fraction of the device in (0, 1], got {v!r}")
    return int(math.floor(device.dsp * max_dsp)), int(math.floor(device.m20k_blocks * max_m20k))


def tune(lg: LayerGraph, device: Device, *, max_dsp: float = 1.0, max_m20k: float = 1.0, clock_mhz: float = 200.0,
         target_fps: float | None = None, max_steps: int = 100_000) -> Tuning:
    """The greedy tuning described in the module docstring."""
    if not (isinstance(clock_mhz, (int, float)) and clock_mhz > 0):
        raise InputError(f"clock_mhz must be positive, got {clock_mhz!r}")
    if target_fps is not None and not target_fps > 0:
        raise InputError(f"target_fps must be positive, got {target_fps!r}")
    dsp, m20k = budgets(device, max_dsp, max_m20k)
    ev = _Evaluator(lg, device, float(clock_mhz))
    par = minimum(lg)
    d = ev.design(par)
    if not d.within(dsp, m20k):
        return Tuning(d, dsp, m20k, False, "the design does not fit even at minimum parallelism")
    steps: list[tuple[str, tuple[int, int], int]] = []
    stop = "step limit"
    for _ in range(max_steps):
        if target_fps is not None and d.fps >= target_fps:
            stop = f"reached the target of {target_fps:g} frames/s"
            break
        slow = d.slowest
        cands = []
        for p in raises(lg, slow.name, slow.pi, slow.po):
            c = ev.cost(slow.name, *p)
            if c.cycles < slow.cycles:
                cands.append((c.cycles, c.dsp, c.m20k, p))
        if not cands:
            stop = f"the slowest layer '{slow.name}' is at its maximum parallelism"
            break
        cands.sort()
        for *_, p in cands:
            trial = ev.design({**par, slow.name: p})
            if trial.within(dsp, m20k):
                par[slow.name] = p
                d = trial
                steps.append((slow.name, p, int(d.fps)))
                break
        else:
            stop = f"no faster parallelism of the slowest layer '{slow.name}' fits the remaining resources"
            break
    return Tuning(d, dsp, m20k, True, stop, steps)


def evaluate(lg: LayerGraph, device: Device, par: Parallelism, clock_mhz: float = 200.0) -> Design:
    """The design of a given parallelism map (checked against each block's options)."""
    for ly in lg:
        pis, pos = options(ly, lg)
        pi, po = par[ly.name]
        if pi not in pis or po not in pos:
            raise InputError(f"parallelism ({pi}, {po}) of layer '{ly.name}' is not one of PI {pis}, PO {pos}")
    return _Evaluator(lg, device, clock_mhz).design(par)
