"""Resource and cycle model of the block library: what each RTL block costs at a parallelism.

A block's parallelism is (PI, PO, PP): input channels read at once, output channels computed at
once, and output pixels of one row computed at once (convolutions; the input stream's PP is its
pixels per beat; every other block has PP = 1). The figures follow the Verilog in ``rtl/``:

- **cycles per frame**: a conv issues one multiply-accumulate step per cycle over PI input x PO
  output channels x PP output pixels, so it takes ``HO*(WO/PP)*(M/PO)*KH*KW*(C/G)/PI`` cycles
  (depthwise: the PO lanes take one channel each: ``HO*(WO/PP)*(M/PO)*KH*KW``), plus nothing for
  its pipeline in steady state; no block runs faster than its input stream (``H*W*C/lanes``
  beats; a conv whose input lanes cover every channel takes several whole pixels per beat: see
  pixels_in). A max pool takes ``HO*WO*(C/P)*KH*KW``; per-element blocks one beat per cycle. The
  accelerator's throughput is set by its slowest block.
- **DSP blocks**: one Arria 10 DSP block holds two 18x19 multipliers, i.e. two int8
  multiply-accumulates (the device table's MAC/cycle is twice its DSP count); each requantize
  lane (PO x PP of them) is one 32x31-bit product, two DSP blocks. An element-wise sum lane
  weighs its two inputs (two small products: one DSP block) and requantizes (two).
- **M20K blocks** (20 Kbit, 512x40 ... 16Kx1): every memory is rounded up to whole blocks in its
  best aspect ratio: weight ROMs (``PI*PO`` bytes wide, shared by the PP pixels), per-channel
  parameter ROMs (72 bits per output lane), line buffers (``2*KH + SH - PT`` rows of the input,
  one copy per pixel read at once: an M20K has one read port), tables, row buffers, and the FIFOs
  that balance reconvergent paths. Memories of at most 640 bits go to MLABs (logic), as a fitter
  would place them.

A conv whose weights stream from external memory (``ddr_bpc``: the bytes per cycle the board's
memory gives; see offchip.py) has no weight ROM: dn_wstream's burst FIFO (``WSTREAM_FIFO`` words
of the ROM's width) takes its place, and the block reads its whole weight image once per output
pixel group, ``ddr_bytes`` per frame, so it takes at least ``ddr_bytes / ddr_bpc`` cycles.

Gearboxes, forks, counters, pipeline registers and the burst masters are logic only (not
modelled).
"""

from __future__ import annotations

import functools
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
#: Pipeline stages of dn_requant (inputs, partial products, sums, product, rounding, two shifts, saturation).
RQ_STAGES = 8
#: Pipeline depth of the blocks without arithmetic stages (edges from input to output register).
#: Words of dn_wstream's burst FIFO, and the longest burst it asks for (a quarter of it).
WSTREAM_FIFO = 256
WSTREAM_BURST = 64
PIPELINE_CYCLES = {"input": 0, "maxpool": 4, "concat": 0, "lut": 1, "upsample": 2, "argmax": 1,
                   "eltwise": 2 + RQ_STAGES + 1}


def tree_stages(n: int) -> int:
    """Stages of dn_addtree over n products."""
    return max(0, (n - 1).bit_length())


def conv_depth(ni: int) -> int:
    """dn_conv's edges from issue to its output register: addresses, memories, products, the
    adder tree, accumulate, requantize, output."""
    return 1 + 1 + 1 + tree_stages(ni) + 1 + RQ_STAGES + 1


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
        return _blocks(self.depth, self.width)


@functools.lru_cache(maxsize=65536)
def _blocks(depth: int, width: int) -> int:
    if depth * width <= MLAB_BITS:
        return 0
    return min(math.ceil(width / w) * math.ceil(depth / d) for d, w in M20K_MODES)


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
    pp: int = 1
    depth: int = 0  # pipeline stages (edges from issue to the output register), for latency
    ddr_bytes: int = 0  # weight bytes read from external memory per frame (streamed weights)

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


def options(layer: Layer, lg: LayerGraph) -> tuple[list[int], list[int], list[int]]:
    """The parallelism factors a block can take: (PI, PO, PP choices). Channel factors divide
    the channel count they split; PP divides the output row (a conv whose PO covers every output
    channel, so one result beat is PP whole pixels) or, for the input stream, the row."""
    if layer.kind == "conv":
        geo = conv_geometry(layer, lg)
        pos = divisors(geo["m"]) if geo["dw"] or geo["g"] == 1 else divisors(geo["mg"])
        pps = divisors(layer.shape.w) if pos[-1] == geo["m"] else [1]
        if geo["dw"]:
            return [1], pos, pps
        return divisors(geo["cg"]), pos, pps
    if layer.kind == "concat":
        p = divisors(math.gcd(*[lg[i].shape.c for i in layer.inputs]))
    elif layer.kind in ("argmax",):
        p = divisors(lg.in_shape(layer).c)
    else:
        p = divisors(layer.shape.c)
    return p, p, divisors(layer.shape.w) if layer.kind == "input" else [1]


def pixels_in(layer: Layer, lg: LayerGraph, pi: int, po: int, pp: int) -> int:
    """Whole pixels per input beat of a conv (Q: the line buffer's word): when its input lanes
    cover every input channel and PP > 1, the largest power of two dividing both PP and the input
    row (a power of two, so that a tap's word and its pixel in the word are a shift and a mask),
    else one."""
    if layer.kind != "conv" or pp == 1:
        return 1
    li = po if conv_geometry(layer, lg)["dw"] else pi
    src = lg.in_shape(layer)
    if li != src.c:
        return 1
    g = math.gcd(pp, src.w)
    return g & -g


def in_lanes(layer: Layer, lg: LayerGraph, pi: int, po: int, pp: int = 1) -> int:
    """Lanes of the block's input stream(s)."""
    if layer.kind == "conv":
        li = po if conv_geometry(layer, lg)["dw"] else pi
        return li * pixels_in(layer, lg, pi, po, pp)
    return pi


def out_lanes(layer: Layer, pi: int, po: int, pp: int = 1) -> int:
    """Lanes of the block's output stream (arg-max: one 16-bit index per frame)."""
    return 1 if layer.kind == "argmax" else po * pp


def line_rows(layer: Layer) -> int:
    """Rows of the input a windowed block keeps: the window (KH), the next SH rows, and the next
    frame's first KH - PT rows, so that neither row nor frame changes stall its producer."""
    kh, sh, pt = layer.attrs["kernel"][0], layer.attrs["stride"][0], layer.attrs["pads"][0]
    return 2 * kh + sh - pt


def layer_cost(layer: Layer, lg: LayerGraph, pi: int, po: int, pp: int = 1,
               ddr_bpc: float | None = None) -> LayerCost:
    """Cycles per frame and resources of ``layer`` at parallelism (pi, po, pp); with ``ddr_bpc``
    (a conv only), its weights stream from external memory at that many bytes per cycle."""
    c = _cost(layer, lg, pi, po, pp)
    if layer.kind != "conv":
        c.depth = PIPELINE_CYCLES[layer.kind]
    elif ddr_bpc is not None:
        rom = c.memories[0]
        passes = layer.shape.h * (layer.shape.w // pp)
        c.memories[0] = Memory("weight fifo", WSTREAM_FIFO, rom.width)
        c.ddr_bytes = rom.bits // 8 * passes
        c.cycles = max(c.cycles, math.ceil(c.ddr_bytes / ddr_bpc))
    return c


def _cost(layer: Layer, lg: LayerGraph, pi: int, po: int, pp: int) -> LayerCost:
    s = layer.shape
    kind = layer.kind
    if kind == "input":
        return LayerCost(layer.name, kind, pi, po, 0, s.size // (po * pp), 0, 0, pp=pp)
    src = lg.in_shape(layer)
    if kind == "conv":
        geo = conv_geometry(layer, lg)
        kh, kw = layer.attrs["kernel"]
        dw = geo["dw"]
        li = po if dw else pi
        q = pixels_in(layer, lg, pi, po, pp)
        cbg = 1 if dw else geo["cg"] // pi
        beats = geo["m"] // po
        compute = s.h * (s.w // pp) * beats * kh * kw * cbg
        cycles = max(compute, src.size // (li * q))
        lanes = po if dw else pi * po
        mults = lanes * pp
        macs = s.h * s.w * geo["m"] * kh * kw * geo["cg"]
        mems = [Memory("weights", beats * kh * kw * cbg, lanes * 8),
                Memory("params", beats, po * 72),
                *[Memory("line buffer", line_rows(layer) * src.w * src.c // (li * q), li * q * 8)
                  for _ in range(pp)]]
        return LayerCost(layer.name, kind, pi, po, macs, cycles, mults,
                         math.ceil(mults / 2) + REQUANT_DSP * po * pp, mems, pp, conv_depth(1 if dw else pi))
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


def join_fifos(lg: LayerGraph, lanes: dict[str, int], depths: dict[str, int] | None = None,
               join_lanes: dict[str, int] | None = None) -> dict[tuple[str, int], Memory]:
    """FIFO on each input of a join (eltwise, concat), in the join's input lanes (``join_lanes``;
    ``lanes`` gives each producer's output lanes), after the gearbox:

    - where the input's path buffers less than another input's: the difference in frames, plus
      one row, plus the difference in pipeline stages along the two paths (``depths``: each
      block's stages; a stage holds a beat in flight), plus 16 beats of margin;
    - on a concat input whose producer has fewer lanes than the concat: two pixels' beats, so
      that the beats of a pixel leave at one per cycle when the concat turns to that input (a
      gearbox alone would give one beat per IN/OUT cycles)."""
    lag = lags(lg)
    stages = lg.deepest(lambda ly: (depths or {}).get(ly.name, 0))
    fifos: dict[tuple[str, int], Memory] = {}
    for layer in lg:
        if len(layer.inputs) < 2:
            continue
        top = max(lag[i] for i in layer.inputs)
        deepest = max(stages[i] for i in layer.inputs)
        width = (join_lanes or {}).get(layer.name, 0)
        for k, i in enumerate(layer.inputs):
            s = lg[i].shape
            lw = width or lanes[i]
            deficit = top - lag[i]
            if deficit > 0:
                elems = math.ceil(deficit * s.size) + s.w * s.c + (16 + deepest - stages[i]) * max(lanes[i], lw)
                fifos[(layer.name, k)] = Memory(f"fifo {i}", math.ceil(elems / lw), lw * 8)
            elif layer.kind == "concat" and lanes[i] < lw:
                fifos[(layer.name, k)] = Memory(f"fifo {i}", 2 * (s.c // lw) + 2, lw * 8)
    return fifos
