"""The performance and resource model of a dataflow design, stage by stage.

Cycles: each stage is one pipelined loop at II=1 (read and write stages: II = the beats a pixel
takes through the port) whose trip count per frame is the constant irc_dataflow.h iterates over
(the tests read those constants back from the generated C++):

- convolution / max pooling:  TICKS, the length of the walk's schedule (fifos.walk_ticks): a
  shift per padded position and NF*SF MAC steps per window (pooling: SF = 1), one after the
  other (about HP*WP + OH*OW*NF*SF) or, with the overlapped walk, at once (about
  max(HP*WP, OH*OW*NF*SF), for a copy of the window in registers)
- dense:                      HW + NF*SF            (buffer the frame's pixels, then MAC steps)
- global pooling:             HW*NF                 (+ NF cycles to write the result)
- pixel-wise (quantize, dequantize, int8 add, element-wise): PIX*NF;  fork: PIX
- read / write:               PIX*BEATS

plus the loop's pipeline depth once per frame (DEPTH: fill and drain). A frame streams through
all stages at once, so the pipeline's interval is the slowest stage's cycles per frame and a
frame's latency the sum of the stages' fill times (cycles from a stage's first input to its
first output pixel).

Resources per stage, with resources.py's operator and memory figures:

- MACs: PE*SIMD multiply units at the precision's cost (resources.mac_cost: int8 and
  ap_fixed<=18 bits one DSP48 each, float32 five), the SIMD products of a PE summed in the
  DSPs' post-adder cascade when the accumulator fits its 48 bits (else SIMD-1 fabric adders;
  float32: adder cores), and ``acc_split`` accumulator registers per PE; the epilogue (activation, or int8's requantizer:
  4 DSP) once per PE, because a step finishes PE outputs;
- weights: NF*SF words of SIMD*bits in each of PE banks: a ROM in LUTs or BRAM36, or, for the
  large ones, a URAM the top loads from device memory once (rom_impl), never held twice;
- line buffers: KH-1 rows of WP pixels (C*bits wide), the KH*KW*C window in registers (twice
  with the overlapped walk: the copy the compute steps read while it shifts on) and a
  (TAPS/SIMD):1 multiplexer per SIMD lane to pick its taps;
- FIFOs: depth x pixel width each (SRL/LUTRAM when small, BRAM when deep);
- per stage its loop control, and once the top's AXI adapters (resources.py's interface figures).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from irc.targets.fpga_hls.boards import Board
from irc.targets.fpga_hls.dataflow.fifos import walk_ticks, window_ends, window_geometry
from irc.targets.fpga_hls.dataflow.plan import MAC_KINDS, Network, Stage, fold_dims, is_depthwise
from irc.targets.fpga_hls.dataflow.render import beats, gpool_ii
from irc.targets.fpga_hls.precision import FADD_LATENCY, Precision
from irc.targets.fpga_hls.resources import (
    AXI_LITE,
    AXI_MASTER,
    AXI_READ_BUFFER,
    CONTROL,
    F_ADD,
    F_CMP,
    F_MUL,
    REQUANT,
    _add,
    _c,
    _scale,
    activation_cost,
    mac_cost,
    memory_cost,
)

Cost = dict[str, float]

#: pipeline depth of a stage's loop (cycles from an iteration's start to its result): stream
#: read, the multiplier and adder tree, the accumulator, the epilogue and the stream write
DEPTH_BASE = 4
#: the requantizer (64-bit product, rounding shift, clamp), in the int8 epilogue
DEPTH_REQUANT = 4


@dataclass(slots=True)
class StageModel:
    """One stage's cycles per frame, fill latency and resources."""

    stage: str
    kind: str
    pe: int
    simd: int
    trips: int          # loop iterations per frame (the trip count in the C++)
    ii: int
    depth: int
    fill: int           # cycles until the first output pixel
    cost: Cost

    @property
    def cycles(self) -> int:
        return self.trips * self.ii + self.depth


def _bits(ctype: str, precision: Precision) -> int:
    return {"uint8_t": 8, "int8_t": 8, "int32_t": 32, "float": 32}.get(ctype, precision.bits)


def _is_float(ctype: str, precision: Precision) -> bool:
    return ctype == "float"


def trip_count(net: Network, s: Stage, precision: Precision) -> tuple[int, int]:
    """(iterations per frame, II) of the stage's main loop."""
    if s.kind in ("read", "write"):
        f = net.fifo_out(s) if s.kind == "read" else net.fifo_in(s)
        return f.pixels, beats(s.value, precision, f.channels)
    if s.kind == "fork":
        return net.fifo_in(s).pixels, 1
    outs, terms = fold_dims(s, net)
    nf, sf = outs // s.pe, terms // s.simd
    q = s.kernel.params
    if s.kind in ("conv", "qconv", "pool"):
        return walk_ticks(s, nf * sf, s.overlap), 1
    if s.kind in ("dense", "qdense"):
        return net.fifo_in(s).pixels + nf * sf, 1
    if s.kind in ("global_pool", "qgpool"):
        fin = net.fifo_in(s)
        # a float running sum waits for its adder: the same channel comes back every NF steps
        return fin.pixels * nf, gpool_ii(fin.ctype, bool(q.get("AVG")) and s.kind == "global_pool", nf)
    return net.fifo_in(s).pixels * nf, 1


def pipeline_depth(s: Stage, precision: Precision) -> int:
    d = DEPTH_BASE
    if s.kind in MAC_KINDS:
        d += 3 + math.ceil(math.log2(s.simd)) if s.simd > 1 else 3
        if precision.acc_split > 1:
            d += math.ceil(math.log2(precision.acc_split)) * FADD_LATENCY
        if s.kind in ("qconv", "qdense"):
            d += DEPTH_REQUANT
    elif s.kind in ("qadd", "qgpool"):
        d += DEPTH_REQUANT
    return d


def fill_cycles(net: Network, s: Stage, precision: Precision, trips: int, ii: int, depth: int) -> int:
    """Cycles from a stage's first input to its first output pixel."""
    if s.kind in ("dense", "qdense", "global_pool", "qgpool"):
        return trips * ii + depth  # the whole frame first
    if s.kind in ("conv", "qconv", "pool"):
        outs, terms = fold_dims(s, net)
        return int(window_ends(s)[0]) + 1 + (outs // s.pe) * (terms // s.simd) + depth
    return ii + depth


def stage_cost(net: Network, s: Stage, precision: Precision, board: Board | None) -> Cost:
    parts = [CONTROL]
    if s.kind in MAC_KINDS:
        outs, terms = fold_dims(s, net)
        int8 = s.kind in ("qconv", "qdense")
        acc_bits = 32 if int8 else precision.acc_bits(terms + 2)
        lanes = s.pe * s.simd
        parts.append(_scale(mac_cost(precision, acc_bits), lanes))
        if precision.kind == "float32":
            adders = _scale(F_ADD, s.pe * max(s.simd - 1, 0) + s.pe * max(precision.acc_split - 1, 0))
        elif acc_bits > 48:  # wider than a DSP48's post-adder: the SIMD sums in fabric adders
            adders = _scale(_c(0, acc_bits, acc_bits), s.pe * max(s.simd - 1, 0))
        else:  # products summed in the DSPs' post-adder cascade (mac_cost's figures)
            adders = _c()
        parts.append(adders)
        parts.append(_c(ff=s.pe * precision.acc_split * acc_bits))
        if int8:
            parts.append(_scale(REQUANT, s.pe))
        else:
            parts.append(_scale(activation_cost(s.kernel.extra["act"][0], precision), s.pe))
        parts.append(rom_cost(*weight_rom(net, s, precision), board))   # the weight ROM
        fin = net.fifo_in(s)
        xbits = _bits(fin.ctype, precision)
        if s.kind in ("conv", "qconv"):
            parts.append(_line_buffers(s, fin.channels, xbits, board))
            # each input lane picks its tap from the window: a (choices):1 multiplexer, 4 inputs a LUT
            if is_depthwise(s):
                lanes_in, choices = s.simd * s.pe, (terms // s.simd) * (outs // s.pe)
            else:
                lanes_in, choices = s.simd, terms // s.simd
            parts.append(_c(lut=lanes_in * xbits * math.ceil(choices / 4)))
        else:
            parts.append(ram_cost(fin.pixels, fin.channels * xbits, 1, board))      # the frame buffer
            parts.append(_c(lut=s.simd * xbits * math.ceil(max(fin.channels // s.simd, 1) / 4)))
        parts.append(_c(ff=net.fifo_out(s).channels * _bits(net.fifo_out(s).ctype, precision)))  # output pixel
    elif s.kind == "pool":
        fin = net.fifo_in(s)
        xbits = _bits(fin.ctype, precision)
        q = s.kernel.params
        parts.append(_line_buffers(s, fin.channels, xbits, board))
        parts.append(_scale(_c(0, xbits, 0) if xbits <= 16 else F_CMP, s.pe * (q["KH"] * q["KW"] - 1)))
        parts.append(_c(ff=fin.channels * xbits))
    elif s.kind in ("global_pool", "qgpool"):
        fin = net.fifo_in(s)
        xbits = _bits(fin.ctype, precision)
        acc = 64 if s.kind == "qgpool" else (32 if xbits == 32 else precision.acc_bits(fin.pixels))
        unit = F_ADD if _is_float(fin.ctype, precision) else _c(0, acc, 0)
        parts += [_scale(unit, s.pe), _c(ff=fin.channels * (acc + 2 * xbits))]
        if s.kind == "qgpool":
            parts.append(REQUANT)
    elif s.kind in ("quantize", "dequantize"):
        parts.append(_scale(_add(F_MUL, _c(0, 120, 100)), s.pe))
    elif s.kind == "qadd":
        parts.append(_scale(_add(_c(dsp=2, lut=40, ff=80), REQUANT), s.pe))
    elif s.kind == "elementwise":
        from irc.targets.fpga_hls.kernels import op_list
        from irc.targets.fpga_hls.resources import OPERATORS

        ops = [c for n in op_list(s.kernel.node) for c in OPERATORS.get(n.op, [F_ADD])]
        parts.append(_scale(_add(*ops) if ops else _c(), s.pe))
    elif s.kind in ("read", "write"):
        parts += [AXI_MASTER, AXI_READ_BUFFER if s.kind == "read" else _c()]
    for fi in s.outs:  # the FIFOs this stage writes
        f = net.fifos[fi]
        parts.append(fifo_cost(f.depth, f.channels * _bits(f.ctype, precision), board))
    return _add(*parts)


#: a weight ROM bank that would take more BRAM36 than this goes to URAM (resources.py's rule)
URAM_BRAMS = 16


def rom_impl(depth: int, width: int, banks: int, board: Board | None) -> str:
    """Where a stage's weights go, as Vitis HLS's BIND_STORAGE names it: "lutram" (distributed:
    up to 64 words, or 1 Kb, a bank) or "bram", a ROM initialised by the bitstream; or "uram"
    where a bank would take more than URAM_BRAMS BRAM36 and the board has URAM. An UltraRAM has
    no initial contents, so there the weights are a RAM that the top loads from device memory
    when called with load_weights set (render.py), once, before the frames."""
    if depth <= 64 or depth * width <= 1024:
        return "lutram"
    brams = memory_cost(depth, width, 1, None)["BRAM"]
    return "uram" if brams > URAM_BRAMS and board is not None and board.totals.get("URAM", 0) > 0 else "bram"


def rom_cost(depth: int, width: int, banks: int, board: Board | None) -> Cost:
    """``banks`` memories of ``depth`` words of ``width`` bits, implemented as rom_impl says
    (a LUT6 is a 64 x 1 ROM; a BRAM36 512 x 72 ... 32K x 1; a URAM 4K x 72)."""
    impl = rom_impl(depth, width, banks, board)
    if impl == "lutram":
        return _c(lut=banks * width * max(1, math.ceil(depth / 64)))
    if impl == "uram":
        return _c(uram=banks * math.ceil(depth / 4096) * math.ceil(width / 72))
    return _scale(memory_cost(depth, width, 1, None), banks)


def ram_cost(depth: int, width: int, banks: int, board: Board | None) -> Cost:
    """Buffers written at run time (line buffers, a dense layer's frame): distributed memory up
    to 64 words, else resources.memory_cost (BRAM36, or URAM for the large ones)."""
    if depth <= 64:
        return _c(lut=banks * width * max(1, math.ceil(depth / 64)))
    return memory_cost(depth * banks, width, banks, board)


def weight_rom(net: Network, s: Stage, precision: Precision) -> tuple[int, int, int]:
    """(words, bits a word, banks) of a MAC stage's weight ROM: NF*SF words of SIMD weights in
    each of PE banks."""
    outs, terms = fold_dims(s, net)
    bits = 8 if s.kind in ("qconv", "qdense") else precision.bits
    return (outs // s.pe) * (terms // s.simd), s.simd * bits, s.pe


def fifo_cost(depth: int, width: int, board: Board | None) -> Cost:
    """An hls::stream: shift registers (SRL32: a LUT per bit per 32 entries) when shallow, else
    a memory (resources.memory_cost)."""
    if depth <= 32:
        return _c(lut=width * math.ceil(depth / 32), ff=width)
    return _add(memory_cost(depth, width, 1, board), _c(ff=width))


def _line_buffers(s: Stage, channels: int, bits: int, board: Board | None) -> Cost:
    q = s.kernel.params
    wp = window_geometry(s)["WP"]
    rows = q["KH"] - 1
    mem = ram_cost(wp, channels * bits, 1, board)
    # the window, and (overlapped walk) the copy of it the compute steps read while the walk goes on
    return _add(_scale(mem, rows), _c(ff=(1 + s.overlap) * q["KH"] * q["KW"] * channels * bits))


def model_stage(net: Network, s: Stage, precision: Precision, board: Board | None) -> StageModel:
    trips, ii = trip_count(net, s, precision)
    depth = pipeline_depth(s, precision)
    return StageModel(s.name, s.kind, s.pe, s.simd, trips, ii, depth, fill_cycles(net, s, precision, trips, ii, depth),
                      {r: float(math.ceil(v)) for r, v in stage_cost(net, s, precision, board).items()})


def top_interface() -> Cost:
    """The top's AXI4-Lite control slave (its masters are costed with the read/write stages)."""
    return _add(AXI_LITE, CONTROL)


@dataclass(slots=True)
class DesignModel:
    stages: list[StageModel]
    clock_mhz: float

    @property
    def interval(self) -> int:
        """Cycles between frames in steady state: the slowest stage's cycles per frame."""
        return max(m.cycles for m in self.stages)

    @property
    def latency(self) -> int:
        """Cycles from a frame's first input to the network's first output pixel: the sum of the
        stages' fills (a classifier's only output: its dense and global pooling stages fill with
        the whole frame)."""
        return sum(m.fill for m in self.stages)

    @property
    def fps(self) -> float:
        return self.clock_mhz * 1e6 / self.interval

    @property
    def bottleneck(self) -> StageModel:
        return max(self.stages, key=lambda m: m.cycles)

    def total(self) -> Cost:
        return _add(top_interface(), *(m.cost for m in self.stages))


def model_design(net: Network, precision: Precision, board: Board | None, clock_mhz: float) -> DesignModel:
    return DesignModel([model_stage(net, s, precision, board) for s in net.stages], clock_mhz)


def macs_per_frame(net: Network) -> int:
    """Multiply-accumulates one frame takes (the work the device bound divides)."""
    total = 0
    for s in net.stages:
        if s.kind in ("conv", "qconv"):
            q = s.kernel.params
            taps = q["KH"] * q["KW"] * (1 if is_depthwise(s) else q["CI"])
            total += q["OH"] * q["OW"] * q["CO"] * taps
        elif s.kind in ("dense", "qdense"):
            total += s.kernel.params["K"] * s.kernel.params["N"]
    return total


def macs_per_dsp(precision: Precision) -> int:
    """MACs one DSP48 does a cycle in the generated code (no int8 packing is generated: 1)."""
    return 1 if precision.kind in ("int8", "fixed") and precision.bits <= 18 else 0


def device_bound_fps(net: Network, precision: Precision, board: Board, clock_mhz: float) -> float:
    """DSPs x MACs per DSP x clock / MACs per frame (float32: a MAC takes 5 DSPs)."""
    per = macs_per_dsp(precision) or 1 / 5
    return board.totals["DSP"] * per * clock_mhz * 1e6 / max(macs_per_frame(net), 1)
