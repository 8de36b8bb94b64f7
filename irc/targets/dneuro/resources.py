"""Resource and cycle model of the block library: what each RTL block costs at a parallelism.

The figures follow the Verilog in ``rtl/`` block by block:

- **cycles per frame**: a conv issues one multiply-accumulate step per cycle over PI input x PO
  output channels, so it takes ``HO*WO*(M/PO)*KH*KW*(C/G)/PI`` cycles (depthwise: the PO lanes
  take one channel each: ``HO*WO*(M/PO)*KH*KW``); no block runs faster than its input stream
  (``H*W*C/lanes`` beats). A max pool takes ``HO*WO*(C/P)*KH*KW``; per-element blocks one beat
  per cycle. The accelerator's throughput is set by its slowest block.
- **DSP blocks**: one Arria 10 DSP block holds two 18x19 multipliers, i.e. two int8
  multiply-accumulates (the device table's MAC/cycle is twice its DSP count); each requantize
  lane is one 32x31-bit product, two DSP blocks. An element-wise sum lane weighs its two inputs
  (two small products: one DSP block) and requantizes (two).
- **M20K blocks** (20 Kbit, 512x40 ... 16Kx1): every memory is rounded up to whole blocks in its
  best aspect ratio: weight ROMs (``PI*PO`` bytes wide), per-channel parameter ROMs (72 bits per
  output lane), line buffers (``2*KH + SH - PT`` rows of the input), tables, row buffers, and the FIFOs
  that balance reconvergent paths. Memories of at most 640 bits go to MLABs (logic), as a fitter
  would place them.

Gearboxes, forks, counters and pipeline registers are logic only (not modelled).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from irc.targets.dneuro.devices import M20K_BITS
from irc.targets.dneuro.layers import Layer, LayerGraph

#: M20K aspect ratios (depth, width) on Arria 10.
M20K_MODES = ((512, 40), (1024, 20), (2048, 10), (4096, 5), (8192, 2), (16384, 1))
#: Largest memory left to MLABs (one MLAB: 32 x 20 bits).
MLAB_BITS = 640
#: DSP blocks per requantize lane (a 32 x 31-bit product).
REQUANT_DSP = 2
#: Per-block pipeline depth (issue, memory, accumulate, requantize, output), for latency.
PIPELINE_CYCLES = 5


@dataclass(frozen=True, slots=True)
class Memory:
    """One RAM or ROM of a block: ``depth`` words of ``width`` bits."""

    what: str
    depth: int
    width: int

    @property
    def bits(self) -> int:
        return self.depth * self.width

    @property
    def m20k(self) -> int:
        """M20K blocks it takes (0 for an MLAB-sized memory)."""
        if self.bits <= MLAB_BITS or self.bits == 0:
            return 0
        return min(math.ceil(self.width / w) * math.ceil(self.depth / d) for d, w in M20K_MODES)


@dataclass(slots=True)
class LayerCost:
    """A block at one parallelism: work, time, resources."""

    name: str
    kind: str
    pi: int
    po: int
    macs: int
    cycles: int
    multipliers: int
    dsp: int
    memories: list[Memory] = field(default_factory=list)

    @property
    def m20k(self) -> int:
        return sum(m.m20k for m in self.memories)

    @property
    def bits(self) -> int:
        return sum(m.bits for m in self.memories)

    @property
    def m20k_bits(self) -> int:
        """Bits of the M20K blocks it occupies (whole blocks)."""
        return self.m20k * M20K_BITS


def conv_geometry(layer: Layer, lg: LayerGraph) -> dict:
    """Channel counts of a conv block: C, M, CG (inputs per group), MG, depthwise or not."""
    src = lg.in_shape(layer)
    g = layer.attrs["group"]
    c, m = src.c, layer.shape.c
    cg, mg = c // g, m // g
    return {"c": c, "m": m, "g": g, "cg": cg, "mg": mg, "dw": cg == 1 and mg == 1}


def divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


def options(layer: Layer, lg: LayerGraph) -> tuple[list[int], list[int]]:
    """The parallelism factors a block can take: (PI choices, PO choices). Every factor divides
    the channel count it splits, so stream beats never straddle pixels."""
    if layer.kind == "conv":
        geo = conv_geometry(layer, lg)
        if geo["dw"]:
            return [1], divisors(geo["m"])
        return divisors(geo["cg"]), divisors(geo["mg"] if geo["g"] > 1 else geo["m"])
    if layer.kind == "concat":
        p = divisors(math.gcd(*[lg[i].shape.c for i in layer.inputs]))
    elif layer.kind in ("argmax",):
        p = divisors(lg.in_shape(layer).c)
    else:
        p = divisors(layer.shape.c)
    return p, p


def in_lanes(layer: Layer, lg: LayerGraph, pi: int, po: int) -> int:
    """Lanes of the block's input stream(s)."""
    if layer.kind == "conv" and conv_geometry(layer, lg)["dw"]:
        return po
    return pi


def out_lanes(layer: Layer, pi: int, po: int) -> int:
    """Lanes of the block's output stream (arg-max: one 16-bit index per frame)."""
    return 1 if layer.kind == "argmax" else po


def line_rows(layer: Layer) -> int:
    """Rows of the input a windowed block keeps: the window (KH), the next SH rows, and the next
    frame's first KH - PT rows, so that neither row nor frame changes stall its producer."""
    kh, sh, pt = layer.attrs["kernel"][0], layer.attrs["stride"][0], layer.attrs["pads"][0]
    return 2 * kh + sh - pt


def layer_cost(layer: Layer, lg: LayerGraph, pi: int, po: int) -> LayerCost:
    """Cycles per frame and resources of ``layer`` at parallelism (pi, po)."""
    s = layer.shape
    kind = layer.kind
    if kind == "input":
        return LayerCost(layer.name, kind, pi, po, 0, s.size // po, 0, 0)
    src = lg.in_shape(layer)
    if kind == "conv":
        geo = conv_geometry(layer, lg)
        kh, kw = layer.attrs["kernel"]
        dw = geo["dw"]
        li = po if dw else pi
        cbg = 1 if dw else geo["cg"] // pi
        beats = geo["m"] // po
        compute = s.h * s.w * beats * kh * kw * cbg
        cycles = max(compute, src.size // li)
        mults = po if dw else pi * po
        macs = s.h * s.w * geo["m"] * kh * kw * geo["cg"]
        mems = [Memory("weights", beats * kh * kw * cbg, mults * 8),
                Memory("params", beats, po * 72),
                Memory("line buffer", line_rows(layer) * src.w * src.c // li, li * 8)]
        return LayerCost(layer.name, kind, pi, po, macs, cycles, mults,
                         math.ceil(mults / 2) + REQUANT_DSP * po, mems)
    if kind == "maxpool":
        kh, kw = layer.attrs["kernel"]
        compute = s.h * s.w * (s.c // pi) * kh * kw
        mems = [Memory("line buffer", line_rows(layer) * src.w * src.c // pi, pi * 8)]
        return LayerCost(layer.name, kind, pi, po, 0, max(compute, src.size // pi), 0, 0, mems)
    if kind == "eltwise":
        return LayerCost(layer.name, kind, pi, po, 0, s.size // pi, 2 * pi, pi * (1 + REQUANT_DSP))
    if kind == "concat":
        return LayerCost(layer.name, kind, pi, po, 0, s.size // pi, 0, 0)
    if kind == "lut":
        # One 256 x 8 table per lane pair (a dual-port M20K serves two lanes).
        mems = [Memory(f"table {k}", 256, 8) for k in range(math.ceil(pi / 2))]
        return LayerCost(layer.name, kind, pi, po, 0, s.size // pi, 0, 0, mems)
    if kind == "upsample":
        mems = [Memory("row buffers", 2 * src.w * src.c // pi, pi * 8)]
        return LayerCost(layer.name, kind, pi, po, 0, max(src.size, s.size) // pi, 0, 0, mems)
    if kind == "argmax":
        return LayerCost(layer.name, kind, pi, po, 0, src.size // pi, 0, 0)
    raise AssertionError(kind)


# ----------------------------------------------------------------------------------------
# Reconvergent paths: FIFOs that keep joins from deadlocking


def lags(lg: LayerGraph) -> dict[str, float]:
    """How far (in frames) each block's output can trail the data it has absorbed: the sum,
    along its deepest path from the input, of the buffering of each block (a windowed block
    holds line_rows of its H input rows; an upsample two input rows)."""
    def own(layer: Layer) -> float:
        if layer.kind in ("conv", "maxpool"):
            return line_rows(layer) / lg.in_shape(layer).h
        if layer.kind == "upsample":
            return 2.0 / lg.in_shape(layer).h
        return 0.0

    return lg.deepest(own)


def join_fifos(lg: LayerGraph, lanes: dict[str, int]) -> dict[tuple[str, int], Memory]:
    """FIFO (depth in beats of the producer's lanes) on each input of a join (eltwise, concat)
    whose path buffers less than another input's: the difference in frames, plus one row and
    16 beats of margin. ``lanes`` gives each producer's output lanes."""
    lag = lags(lg)
    fifos: dict[tuple[str, int], Memory] = {}
    for layer in lg:
        if len(layer.inputs) < 2:
            continue
        top = max(lag[i] for i in layer.inputs)
        for k, i in enumerate(layer.inputs):
            deficit = top - lag[i]
            if deficit <= 0:
                continue
            s = lg[i].shape
            elems = math.ceil(deficit * s.size) + s.w * s.c + 16 * lanes[i]
            depth = math.ceil(elems / lanes[i])
            fifos[(layer.name, k)] = Memory(f"fifo {i}", depth, lanes[i] * 8)
    return fifos
