"""One accelerator over several FPGAs: the layer graph cut into a pipeline of devices joined by
serial links (``irc dneuro partition``).

The layer graph is a networkx DiGraph (``layer_network``): a node per block with its MACs, weight
bits and output bits per frame, an edge per tensor read with the bits it carries per frame. A
split cuts the dataflow (topological) order into ``count`` contiguous parts, one per device; the
devices form a chain, device i streaming to device i+1 over one link of ``link_gbps`` Gb/s of
payload. A tensor made before a cut and read after it crosses that cut, skip connections
included (a tensor read two parts later is forwarded and crosses both cuts); a cut's link
carries every tensor crossing it once per frame, so its rate is ``link_gbps * 1e9 / bits``
frames/s.

Each part is tuned on its own device by the single-device tuner (tune.Tuner: the whole device,
or the ``max_dsp``/``max_m20k`` budget); the pipeline runs at the slowest of its device stages and
links. The split chosen maximises that rate, then minimises the latency (the parts' latencies
plus each link's transfer time of one frame). The search is a dynamic programme over cut
positions, run twice: the first finds the best bottleneck rate R, the second the least latency
among splits whose stages and links all reach R. With m usable cut positions it considers at most
(m + 1)(m + 2) / 2 parts and does O(count * m^2) steps; a part's tuner walks its path only as
far as it could still raise the best rate found (the path's rate never drops, so the walk
stopped there decides exactly), and only parts that reach R in pass 2 are tuned to the end.

Usable cuts: the generated top has one input stream and one output stream, which carry the
link, so a cut is offered only where a single tensor crosses it (between residual blocks, not
inside one); ``cuts`` lists every position with the tensors crossing it and their bits, usable
or not. The tensor crosses as the int8/uint8 codes it has on chip, pixel by pixel in raster
order, the channels of a pixel in order: exactly the sending device's output stream.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from irc.errors import InputError, TargetError
from irc.ir import quant_arith as qa
from irc.ir.types import DType
from irc.targets.dneuro.devices import Device
from irc.targets.dneuro.emulator import Emulator
from irc.targets.dneuro.layers import Layer, LayerGraph
from irc.targets.dneuro.resources import layer_cost
from irc.targets.dneuro.tune import Tuner, Tuning, budgets, minimum

#: Bits of one code on the link.
CODE_BITS = 8


def layer_network(lg: LayerGraph):
    """The layer graph as a networkx DiGraph: node attributes ``kind``, ``index`` (dataflow
    order), ``macs``, ``weight_bits`` and ``out_bits`` (per frame); edge attribute ``bits`` (the
    producer's output, per frame, per read)."""
    try:
        import networkx as nx
    except ImportError:
        raise InputError("splitting over several FPGAs needs networkx (pip install networkx)") from None
    g = nx.DiGraph(name=lg.name)
    par = minimum(lg)
    for i, ly in enumerate(lg):
        c = layer_cost(ly, lg, *par[ly.name])
        g.add_node(ly.name, kind=ly.kind, index=i, macs=c.macs, out_bits=ly.shape.size * CODE_BITS,
                   weight_bits=weight_count(ly, lg) * CODE_BITS)
    for ly in lg:
        for src in ly.inputs:
            g.add_edge(src, ly.name, bits=g.nodes[src]["out_bits"])
    return g


def weight_count(layer: Layer, lg: LayerGraph) -> int:
    """Weights of a convolution (fully connected layers included): M x C/G x KH x KW; 0 for the
    other blocks."""
    if layer.kind != "conv":
        return 0
    kh, kw = layer.attrs["kernel"]
    return layer.shape.c * (lg.in_shape(layer).c // layer.attrs["group"]) * kh * kw


@dataclass(frozen=True, slots=True)
class Cut:
    """The cut before layer ``position`` of the dataflow order: the tensors (producer names)
    crossing it and the bits per frame the link carries."""

    position: int
    tensors: tuple[str, ...]
    bits: int

    @property
    def usable(self) -> bool:
        return len(self.tensors) == 1


def cuts(lg: LayerGraph, network=None) -> list[Cut]:
    """Every cut position 1 .. len(lg) - 1 with the tensors crossing it (edges of the network
    from a node before the cut to one after it; one entry per tensor, however many read it)."""
    g = layer_network(lg) if network is None else network
    order = [ly.name for ly in lg]
    out = []
    for k in range(1, len(order)):
        crossing = tuple(n for n in order[:k] if any(g.nodes[s]["index"] >= k for s in g.successors(n)))
        out.append(Cut(k, crossing, sum(g.nodes[n]["out_bits"] for n in crossing)))
    return out


def part_graph(lg: LayerGraph, start: int, stop: int, index: int) -> LayerGraph:
    """Layers ``start .. stop - 1`` as an accelerator of their own. A part after the first
    starts with an input block named after the tensor crossing its cut (so its readers are
    unchanged); the host's input quantization stays with the first part, the output's
    dequantization (and shape) with the last."""
    body = lg.layers[start:stop]
    if start > 0:
        src = lg.layers[start - 1]
        body = [Layer(src.name, "input", [], src.shape, src.signed, nodes=list(src.nodes))] + body
    host = {k: v for k, v in lg.host.items()
            if (k.startswith("input_") and start == 0) or (k.startswith("output_") and stop == len(lg))}
    return LayerGraph(f"{lg.name}_dev{index}", body, host)


@dataclass(slots=True)
class Stage:
    """One device of a split: its layers (``start .. stop - 1`` of the whole graph) and tuning."""

    index: int
    start: int
    stop: int
    lg: LayerGraph
    tuning: Tuning

    @property
    def fps(self) -> float:
        return self.tuning.design.fps if self.tuning.fits else 0.0

    @property
    def latency_ms(self) -> float:
        return self.tuning.design.latency_ms


@dataclass(slots=True)
class Link:
    """The link from device ``index`` to ``index + 1`` at one cut."""

    index: int
    cut: Cut
    gbps: float

    @property
    def fps(self) -> float:
        return self.gbps * 1e9 / self.cut.bits

    @property
    def latency_ms(self) -> float:
        """The transfer time of one frame's bits."""
        return self.cut.bits / (self.gbps * 1e6)


@dataclass(slots=True)
class Split:
    """A tuned split: device stages, the links between them, the end-to-end rate and latency."""

    lg: LayerGraph
    device: Device
    link_gbps: float
    stages: list[Stage]
    links: list[Link]
    single: Tuning  # the whole graph on one device of the same kind, for comparison
    searched: dict = field(default_factory=dict)

    @property
    def fps(self) -> float:
        return min([s.fps for s in self.stages] + [k.fps for k in self.links])

    @property
    def latency_ms(self) -> float:
        return sum(s.latency_ms for s in self.stages) + sum(k.latency_ms for k in self.links)

    @property
    def bottleneck(self) -> str:
        rates = [(s.fps, f"device {s.index}") for s in self.stages] + [(k.fps, f"link {k.index}") for k in self.links]
        return min(rates, key=lambda r: r[0])[1]


def _check(count, link_gbps, lg: LayerGraph) -> None:
    if not (isinstance(count, int) and count >= 1):
        raise InputError(f"the device count must be a positive integer, got {count!r}")
    if not (isinstance(link_gbps, (int, float)) and math.isfinite(link_gbps) and link_gbps > 0):
        raise InputError(f"the link bandwidth must be a positive number of Gb/s, got {link_gbps!r}")
    if len(lg) < 2:
        raise InputError(f"the layer graph of '{lg.name}' has no block to place")


class _Part:
    """One candidate part and its tuner's path, walked only as far as the search needs: the path's
    frame rate never drops, so a walk stopped once it reaches ``cap`` decides ``min(rate, cap)``
    exactly, and the full tuning continues the same walk."""

    def __init__(self, lg: LayerGraph, start: int, stop: int, device: Device, clock_mhz: float, max_dsp: float,
                 max_m20k: float):
        self.start, self.stop = start, stop
        self.lg = part_graph(lg, start, stop, 0)
        self.tuner = Tuner(self.lg, device, clock_mhz)
        self.budget = (max_dsp, max_m20k)
        self.dsp, self.m20k = budgets(device, max_dsp, max_m20k)
        self.k = 0  # the furthest design of the path known to be within the budget
        self._full: Tuning | None = None

    def rate_upto(self, cap: float) -> float:
        """The tuned frame rate if below ``cap``, else some rate >= ``cap`` (0: does not fit)."""
        if self._full is not None:
            return self.fps
        t, designs = self.tuner, self.tuner.designs
        if not designs[0].within(self.dsp, self.m20k):
            return 0.0
        while designs[self.k].fps < cap:
            if self.k + 1 == len(designs) and not t.extend():
                break
            if not designs[self.k + 1].within(self.dsp, self.m20k):
                break
            self.k += 1
        return designs[self.k].fps

    @property
    def tuning(self) -> Tuning:
        if self._full is None:
            self._full = self.tuner.tune(*self.budget)
        return self._full

    @property
    def fps(self) -> float:
        return self.tuning.design.fps if self.tuning.fits else 0.0


def split(lg: LayerGraph, device: Device, count: int, link_gbps: float, *, clock_mhz: float = 200.0,
          max_dsp: float = 1.0, max_m20k: float = 1.0) -> Split:
    """The best split of ``lg`` over ``count`` devices of one kind (see the module docstring);
    InputError when the graph has too few usable cuts or no split fits the devices."""
    _check(count, link_gbps, lg)
    budgets(device, max_dsp, max_m20k)
    n = len(lg)
    usable = {c.position: c for c in cuts(lg) if c.usable and c.position >= 2}
    bounds = [0, *sorted(usable), n]
    last = len(bounds) - 1
    if count > last:
        raise InputError(f"'{lg.name}' can be cut in {last - 1} place(s) where one tensor crosses, too few "
                         f"for {count} devices")
    parts: dict[tuple[int, int], _Part] = {}

    def part(a: int, b: int) -> _Part:
        if (a, b) not in parts:
            parts[a, b] = _Part(lg, bounds[a], bounds[b], device, clock_mhz, max_dsp, max_m20k)
        return parts[a, b]

    def link_fps(a: int) -> float:
        return math.inf if a == 0 else link_gbps * 1e9 / usable[bounds[a]].bits

    def link_ms(a: int) -> float:
        return 0.0 if a == 0 else usable[bounds[a]].bits / (link_gbps * 1e6)

    # Pass 1: rate[j][b] = the best bottleneck of j parts covering layers bounds[0] .. bounds[b];
    # a part is walked only while it could raise the best found so far (shortest parts first).
    rate = [[0.0] * (last + 1) for _ in range(count + 1)]
    rate[0][0] = math.inf
    def ends(j: int) -> range:  # where part j may end: room for the rest, the last at the end
        return range(last, last + 1) if j == count else range(j, last + 1 - (count - j))

    for j in range(1, count + 1):
        for b in ends(j):
            for a in range(b - 1, j - 2, -1):
                cap = min(rate[j - 1][a], link_fps(a))
                if cap > rate[j][b]:
                    rate[j][b] = max(rate[j][b], min(cap, part(a, b).rate_upto(cap)))
    best = rate[count][last]
    if best <= 0:
        raise InputError(f"no split of '{lg.name}' over {count} x {device.name} fits: each part must fit its device "
                         f"(on one device: {part(0, last).tuning.stop})")
    # Pass 2: the least latency among splits whose every part and link reaches the best rate.
    lat = [[math.inf] * (last + 1) for _ in range(count + 1)]
    back = [[-1] * (last + 1) for _ in range(count + 1)]
    lat[0][0] = 0.0
    for j in range(1, count + 1):
        for b in ends(j):
            for a in range(j - 1, b):
                if lat[j - 1][a] == math.inf or link_fps(a) < best or part(a, b).rate_upto(best) < best:
                    continue
                t = lat[j - 1][a] + link_ms(a) + part(a, b).tuning.design.latency_ms
                if t < lat[j][b]:
                    lat[j][b], back[j][b] = t, a
    chosen, b = [], last
    for j in range(count, 0, -1):
        chosen.append((back[j][b], b))
        b = back[j][b]
    stages, links = [], []
    for i, (a, b) in enumerate(reversed(chosen)):
        sub = part_graph(lg, bounds[a], bounds[b], i)
        stages.append(Stage(i, bounds[a], bounds[b], sub, Tuner(sub, device, clock_mhz).tune(max_dsp, max_m20k)))
        if i:
            links.append(Link(i - 1, usable[bounds[a]], float(link_gbps)))
    single = part(0, last).tuning if (0, last) in parts else Tuner(lg, device, clock_mhz).tune(max_dsp, max_m20k)
    searched = {"cut_positions": n - 1, "usable_cuts": last - 1, "parts_walked": len(parts),
                "parts_tuned_fully": sum(1 for p in parts.values() if p._full is not None)}
    return Split(lg, device, float(link_gbps), stages, links, single, searched)


def link_codes(codes: np.ndarray, signed: bool) -> np.ndarray:
    """A tensor as the link carries it: one byte per code (int8 or uint8); TargetError if a code
    does not fit one."""
    dt = DType.i8 if signed else DType.u8
    lo, hi = qa.qrange(dt)
    if codes.size and (codes.min() < lo or codes.max() > hi):
        raise TargetError(f"codes outside [{lo}, {hi}] cannot cross the link")
    return np.asarray(codes).astype(dt.numpy)


def emulate(stages: list[Stage], codes: np.ndarray) -> list[np.ndarray]:
    """Each device's output codes for input codes [N, C, H, W], the devices run one after the
    other with each cut's tensor handed over as the bytes the link carries."""
    outs = []
    x = np.asarray(codes)
    for st in stages:
        y = Emulator(st.lg).run_codes(x)[st.lg.output.name]
        outs.append(y)
        x = link_codes(y, st.lg.output.signed).astype(np.int64)
    return outs
