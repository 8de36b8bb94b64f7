"""The resource and latency model of the HLS kernels: per kernel DSP, LUT, FF, BRAM (36 Kb
blocks), URAM (288 Kb blocks) and cycles, from what the kernel instantiates.

A kernel costs the sum of
- its datapath: ``lanes x operator cost``. Lanes are the parallelism factor P (the unrolled inner
  loop); the operators per lane depend on the kind (a multiply-accumulate for dense and conv, a
  window's comparators or adders for pooling, exp/add/compare for softmax, the op chain of an
  element-wise kernel) and their cost on the precision (table OPERATORS);
- one epilogue unit on its output path (the activation: outputs leave one per cycle);
- its on-chip buffers: each array, split into the banks its partitioning makes, mapped to LUTRAM
  (at most 1 Kb per bank), else BRAM36 (the best of its aspect ratios 512x72 ... 32Kx1), else URAM
  (4Kx72) when a bank would take more than 16 BRAM36 and the board has URAM;
- its interface: an AXI4 master adapter per argument (a read adapter keeps its burst buffer in
  one BRAM), the AXI4-Lite control slave, the loop FSMs. These are calibrated on a measured
  kernel: a float32 vector add (two read masters, one write master) placed and routed on a U200
  takes 2,105 LUT, 2,755 FF and 2 BRAM, which the model gives within 2% (tested).

Operator costs (UltraScale+/Versal, pipelined for II=1):
- float32 multiply 3 DSP + 70 LUT + 140 FF and add 2 DSP + 200 LUT + 320 FF (full-DSP floating
  point cores), so a float MAC is 5 DSP; exp 7 DSP + 400 LUT + 600 FF; divide 800 LUT + 1400 FF.
- ap_fixed<W,I> multiply: ceil(W/27) x ceil(W/18) DSP48 (one for W <= 18); the accumulation runs in
  the DSP's 48-bit post-adder when the accumulator fits 48 bits, else in LUTs (one per bit).
  Fixed-point kernels compute transcendental functions and element-wise chains in float (plus a
  conversion each way, 120 LUT + 100 FF).
- int8 multiply-accumulate: one DSP48E2. Two int8 products can share one DSP (the packing of
  Xilinx's WP486), but irc_hls.h writes plain ``a * b`` products, which Vitis maps one per DSP, so
  the model does not assume it. The int8 layers' requantizer (a 32 x 31-bit product, rounding,
  shift, clamp) is 4 DSP + 150 LUT + 250 FF.
So a dense layer of N MACs per cycle costs 5N DSP in float32, N DSP in ap_fixed<W<=18,I> and in int8.

Cycles are those of the loop nests in irc_hls.h at II=1 (loads and stores one element per
cycle, the compute loop P lanes per cycle), plus 100 cycles of start-up per kernel. Float MAC
loops reach II=1 through ``acc_split`` partial sums per lane (a float add takes FADD_LATENCY
cycles); their store loop adds the partials in a tree, log2(acc_split) adders deep, which the
model counts per output row (dense) or pixel (conv), with the tree's adders and registers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from irc.targets.fpga_hls.boards import RESOURCES, Board
from irc.targets.fpga_hls.kernels import Kernel, op_list
from irc.targets.fpga_hls.precision import FADD_LATENCY, Precision

Cost = dict[str, float]


def _c(dsp=0.0, lut=0.0, ff=0.0, bram=0.0, uram=0.0) -> Cost:
    return {"DSP": dsp, "LUT": lut, "FF": ff, "BRAM": bram, "URAM": uram}


def _add(*costs: Cost) -> Cost:
    out = _c()
    for c in costs:
        for k, v in c.items():
            out[k] += v
    return out


def _scale(c: Cost, n: float) -> Cost:
    return {k: v * n for k, v in c.items()}


# float32 operators (Xilinx floating-point cores, full DSP usage)
F_MUL = _c(3, 70, 140)
F_ADD = _c(2, 200, 320)
F_EXP = _c(7, 400, 600)
F_DIV = _c(0, 800, 1400)
F_CMP = _c(0, 40, 32)
F_LOG = _c(4, 700, 900)
F_SQRT = _c(0, 500, 800)
CONVERT = _c(0, 120, 100)

#: requantize: 32 x 31-bit product (4 DSP48), rounding add, shift, clamp
REQUANT = _c(4, 150, 250)
#: an AXI4 master adapter (its burst buffer: one BRAM for a read adapter, see _interface)
AXI_MASTER = _c(0, 450, 500)
AXI_READ_BUFFER = _c(bram=1)
AXI_LITE = _c(0, 250, 350)
CONTROL = _c(0, 300, 400)
#: the measured kernel the interface figures are calibrated on (a float32 vector add, U200)
MEASURED_VECTOR_ADD = {"LUT": 2105, "FF": 2755, "DSP": 5, "BRAM": 2}
START_CYCLES = 100

#: element-wise op -> the float operators it takes (per lane)
OPERATORS: dict[str, list[Cost]] = {
    "relu": [F_CMP], "leaky_relu": [F_CMP, F_MUL], "clip": [F_CMP, F_CMP], "identity": [], "neg": [_c(0, 1, 0)],
    "abs": [_c(0, 1, 0)], "sigmoid": [F_EXP, F_ADD, F_DIV], "tanh": [F_EXP, F_ADD, F_ADD, F_DIV],
    "hard_sigmoid": [F_MUL, F_ADD, F_CMP, F_CMP], "hard_swish": [F_MUL, F_ADD, F_CMP, F_CMP, F_MUL],
    "elu": [F_CMP, F_EXP, F_ADD, F_MUL], "softplus": [F_EXP, F_ADD, F_LOG, F_CMP], "exp": [F_EXP],
    "log": [F_LOG], "sqrt": [F_SQRT], "reciprocal": [F_DIV], "add": [F_ADD], "sub": [F_ADD], "mul": [F_MUL],
    "div": [F_DIV], "max": [F_CMP], "min": [F_CMP], "prelu": [F_CMP, F_MUL],
    # erf costs about what exp does (a polynomial and an exponential)
    "gelu": [F_MUL, F_MUL, F_EXP, F_ADD, F_MUL], "gelu_tanh": [F_MUL, F_MUL, F_ADD, F_MUL, F_EXP, F_ADD, F_DIV, F_MUL],
    "silu": [F_EXP, F_ADD, F_DIV, F_MUL],
}


def mac_cost(precision: Precision, acc_bits: int) -> Cost:
    """One multiply-accumulate lane."""
    if precision.kind == "float32":
        return _add(F_MUL, F_ADD)
    if precision.kind == "int8":
        return _c(1, 16, 48)  # one DSP48E2 per product: the templates do not pack two into one
    w = precision.width
    dsp = math.ceil(w / 27) * math.ceil(w / 18)
    return _c(dsp, (acc_bits if acc_bits > 48 else 0) + w, w + acc_bits)


def _fixed_cmp(precision: Precision) -> Cost:
    return F_CMP if precision.is_float else _c(0, precision.bits, precision.bits)


def _fixed_add(precision: Precision, bits: int) -> Cost:
    return F_ADD if precision.is_float else _c(0, bits, bits)


def activation_cost(act: str, precision: Precision) -> Cost:
    if act == "none":
        return _c()
    if act == "relu":
        return _fixed_cmp(precision)
    conv = _c() if precision.is_float else _scale(CONVERT, 2)
    return _add(conv, *OPERATORS.get(act, [F_CMP]))


def memory_cost(depth: int, width: int, banks: int, board: Board | None) -> Cost:
    """``banks`` memories of ceil(depth/banks) x width bits each."""
    if depth <= 0 or width <= 0:
        return _c()
    d = math.ceil(depth / banks)
    if d * width <= 1024:
        return _c(lut=banks * math.ceil(d / 64) * width, ff=0)
    configs = ((32768, 1), (16384, 2), (8192, 4), (4096, 9), (2048, 18), (1024, 36), (512, 72))
    bram = min(math.ceil(d / cd) * math.ceil(width / cw) for cd, cw in configs)
    if bram > 16 and board is not None and board.totals.get("URAM", 0) > 0:
        return _c(uram=banks * math.ceil(d / 4096) * math.ceil(width / 72))
    return _c(bram=banks * bram)


@dataclass(slots=True)
class Estimate:
    """What one kernel costs at its parallelism."""

    kernel: str
    op: str
    node: str
    parallelism: int
    cost: Cost
    cycles: int
    buffers: list[tuple[str, int, int, int]] = field(default_factory=list)  # (name, depth, bits, banks)

    def __getitem__(self, key: str) -> float:
        return self.cost[key]


def pool_ii(k: Kernel) -> int:
    """II of pool2d's pixel loop: each lane reads its window's KH x KW values from its own
    plane, one memory bank with two ports, so a window takes ceil(KH*KW / 2) cycles."""
    return math.ceil(k.params["KH"] * k.params["KW"] / 2)


def global_pool_ii(k: Kernel, precision: Precision, lanes: int) -> int:
    """II of global_pool's reduce loop: its P lanes read P values per cycle through one AXI port
    (one read per cycle), and a float average carries its running sum through an adder of
    FADD_LATENCY cycles; so more lanes do not make it faster."""
    carry = FADD_LATENCY if precision.is_float and k.kind == "global_pool" and k.params["AVG"] else 1
    return max(lanes, carry)


def _tree_latency(precision: Precision) -> int:
    """Cycles the store loop's pipeline gains from adding a lane's partial sums in a tree."""
    split = precision.acc_split
    return math.ceil(math.log2(split)) * FADD_LATENCY if split > 1 else 0


def _partial_sums(precision: Precision, lanes: int, acc_bits: int, bits: int) -> Cost:
    """The accumulator registers (``acc_split`` per lane) and the one tree that adds them."""
    split = precision.acc_split
    return _add(_c(ff=lanes * (split * acc_bits + bits)), _scale(F_ADD, split - 1))


def _terms(k: Kernel) -> int:
    """Products summed into one output (the reduction length of dense and conv, float or int8)."""
    if k.kind in ("dense", "qdense"):
        return k.params["K"]
    if k.kind in ("conv", "qconv"):
        return k.params["CI"] // k.params["G"] * k.params["KH"] * k.params["KW"]
    return 1


def estimate(k: Kernel, precision: Precision, board: Board | None, parallelism: int | None = None) -> Estimate:
    """Resources and cycles of kernel ``k`` at ``parallelism`` (default: its own factor)."""
    p = parallelism or k.parallelism
    q = k.params
    bits = precision.bits
    acc_bits = precision.acc_bits(_terms(k) + 2)
    buffers: list[tuple[str, int, int, int]] = []
    datapath = _c()
    # the residual add of a fused epilogue: one adder on the output path
    residual = _fixed_add(precision, acc_bits) if any(a.name == "res" for a in k.args) else _c()
    tree = _tree_latency(precision)
    if k.kind == "dense":
        m, kk, n = q["M"], q["K"], q["N"]
        datapath = _add(_scale(mac_cost(precision, acc_bits), p), activation_cost(k.extra["act"][0], precision),
                        residual, _partial_sums(precision, p, acc_bits, bits))
        buffers = [("xbuf", m * kk, bits, 1), ("wbuf", kk * p, bits, p)]
        cycles = (n // p) * (kk * p + p + m * (kk + p + 2 + tree)) + m * kk
    elif k.kind == "conv":
        taps = _terms(k)
        img = q["CI"] * q["H"] * q["W"]
        pixels = q["OH"] * q["OW"]
        datapath = _add(_scale(mac_cost(precision, acc_bits), p), activation_cost(k.extra["act"][0], precision),
                        residual, _partial_sums(precision, p, acc_bits, bits))
        buffers = [("img", img, bits, 1), ("wt", taps * p, bits, p)]
        cycles = q["NB"] * (img + (q["CO"] // p) * (p * taps + p + pixels * (taps + p + 2 + tree)))
    elif k.kind == "pool":
        taps = q["KH"] * q["KW"]
        unit = _fixed_add(precision, acc_bits) if q["AVG"] else _fixed_cmp(precision)
        datapath = _add(_scale(unit, p * max(taps - 1, 1)), F_DIV if q["AVG"] else _c())
        buffers = [("plane", q["H"] * q["W"] * p, bits, p)]
        cycles = q["NB"] * (q["C"] // p) * (p * q["H"] * q["W"] + q["OH"] * q["OW"] * pool_ii(k))
    elif k.kind == "global_pool":
        unit = _fixed_add(precision, acc_bits) if q["AVG"] else _fixed_cmp(precision)
        datapath = _add(_scale(unit, p), F_DIV if q["AVG"] else _c(), _c(ff=p * (acc_bits + bits)))
        cycles = q["NB"] * (q["C"] // p) * (q["HW"] * global_pool_ii(k, precision, p) + p)
    elif k.kind == "softmax":
        conv = _c() if precision.is_float else _scale(CONVERT, 2)
        datapath = _add(_scale(_add(F_EXP, F_ADD, F_CMP), p), F_DIV, conv)
        buffers = [("buf", q["LEN"], 32, p)]
        cycles = q["OUTER"] * q["INNER"] * (2 * q["LEN"] + 2 * (q["LEN"] // p))
    elif k.kind in ("qdense", "qconv"):
        # int8 x int8 products into int32, then one requantizer (64-bit multiply, shift, clamp) per kernel
        acc_bits = 32
        datapath = _add(_scale(mac_cost(precision, acc_bits), p), REQUANT, _c(ff=p * (acc_bits + 8)))
        if k.kind == "qdense":
            m, kk, n = q["M"], q["K"], q["N"]
            buffers = [("xbuf", m * kk, 16, 1), ("wbuf", kk * p, 8, p)]
            cycles = (n // p) * (kk * p + p + m * (kk + p + 2)) + m * kk  # the dense template's loops
        else:
            taps = _terms(k)
            img = q["CI"] * q["H"] * q["W"]
            pixels = q["OH"] * q["OW"]
            buffers = [("img", img, 16, 1), ("wt", taps * p, 8, p)]
            cycles = q["NB"] * (img + (q["CO"] // p) * (p * taps + p + pixels * (taps + p + 2)))  # conv2d's loops
    elif k.kind == "qadd":
        datapath = _scale(_add(_c(dsp=2, lut=40, ff=80), REQUANT), p)
        cycles = q["TOTAL"] // p + 8
    elif k.kind == "qgpool":
        datapath = _add(_scale(_c(lut=40, ff=64), p), REQUANT)
        cycles = q["NB"] * (q["C"] // p) * (q["HW"] * global_pool_ii(k, precision, p) + p)
    elif k.kind in ("quantize", "dequantize"):
        unit = _add(F_DIV if k.kind == "quantize" else F_MUL, CONVERT)
        datapath = _scale(unit, p)
        cycles = q["TOTAL"] // p + 8
    elif k.kind == "argmax":
        datapath = _scale(_fixed_cmp(precision), p)
        cycles = q["OUTER"] * q["INNER"] * (q["LEN"] // p + 1)
    else:  # elementwise
        ops = [c for n in op_list(k.node) for c in OPERATORS.get(n.op, [F_ADD])]
        conv = _c() if precision.is_float else _scale(CONVERT, len(k.inputs) + 1)
        datapath = _scale(_add(conv, *ops), p)
        # read/compute/write run concurrently (DATAFLOW); FIFOs of depth 2 between them
        datapath = _add(datapath, _c(ff=2 * p * bits * (len(k.inputs) + 1)))
        cycles = q["TOTAL"] // p + 3 * 8
    mem = _add(*(memory_cost(d, w, b, board) for _, d, w, b in buffers))
    iface = _interface(k)
    cost = _add(datapath, mem, iface)
    cost = {r: float(math.ceil(cost[r])) for r in RESOURCES}
    return Estimate(k.name, k.node.op, k.label, p, cost, int(cycles) + START_CYCLES, buffers)


def _interface(k: Kernel) -> Cost:
    """AXI4 masters (read adapters with their burst buffer), the control slave and the FSMs."""
    return _add(_scale(AXI_MASTER, len(k.args)), _scale(AXI_READ_BUFFER, len(k.inputs)), AXI_LITE, CONTROL)


def totals(estimates: list[Estimate]) -> Cost:
    return _add(*(e.cost for e in estimates)) if estimates else _c()


def format_table(estimates: list[Estimate], board: Board, fraction: float, clock_mhz: float,
                 precision: Precision) -> str:
    """The report: one row per kernel, the totals, and the share of the board."""
    head = f"{'kernel':<28}{'op':<20}{'P':>6}" + "".join(f"{r:>10}" for r in RESOURCES) + f"{'cycles':>12}"
    lines = [f"resource estimate: {board.title}, {precision.name}, clock {clock_mhz:g} MHz, "
             f"budget {fraction:.0%} of the device", head, "-" * len(head)]
    for e in estimates:
        lines.append(f"{e.kernel[:27]:<28}{e.op[:19]:<20}{e.parallelism:>6}"
                     + "".join(f"{int(e.cost[r]):>10,}" for r in RESOURCES) + f"{e.cycles:>12,}")
    tot = totals(estimates)
    lines.append("-" * len(head))
    cycles = sum(e.cycles for e in estimates)
    lines.append(f"{'total':<54}" + "".join(f"{int(tot[r]):>10,}" for r in RESOURCES) + f"{cycles:>12,}")
    lines.append(f"{'device':<54}" + "".join(f"{board.totals[r]:>10,}" for r in RESOURCES))
    lines.append(f"{'used':<54}" + "".join(f"{tot[r] / board.totals[r]:>10.1%}" for r in RESOURCES))
    slowest = max(estimates, key=lambda e: e.cycles) if estimates else None
    ms = cycles / (clock_mhz * 1e3)
    tail = f"latency {cycles:,} cycles = {ms:.3f} ms per run at {clock_mhz:g} MHz"
    if slowest is not None:
        tail += f"; slowest kernel {slowest.kernel} ({slowest.cycles:,} cycles)"
    lines.append(tail)
    return "\n".join(lines) + "\n"
