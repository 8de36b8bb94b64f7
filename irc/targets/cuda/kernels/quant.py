"""int8 kernels for quantized graphs: the dp4a GEMM under ``qgemm`` and ``qconv``, and the
element-wise integer layers (``quantize_linear``, ``dequantize_linear``, ``qadd``,
``qglobal_average_pool``). Results equal the interpreter's bit for bit: the arithmetic is the
contract of irc.ir.quant_arith (exact 32-bit accumulation, 64-bit requantize, round half up,
saturation), written out here in GPU integer instructions.

The dp4a GEMM (sm_61+: every architecture irc targets): operands are bytes staged through shared
memory k-contiguous (rows padded by 4 bytes), so four consecutive k of a row are one 32-bit word
and one ``dp4a`` multiplies and sums them: a thread's TM x TN micro-tile costs TM x TN dp4a per
four k. The activation's zero point is taken out afterwards,

    sum_k (x - zx) w = sum_k x w - zx * sum_k w,

with the weight sums formed by the same instruction (dp4a of a weight word with 0x01010101),
one per output channel; so u8 activations with any zero point run on the unsigned-by-signed
form of dp4a directly. Convolution padding reads as zx (the real zero), which the correction
cancels exactly; K is padded with zero weights. Groups are the grid's z axis.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from llvmlite import ir

from irc.ir.graph import Node
from irc.ir.types import DType
from irc.targets.cuda import asm
from irc.targets.cuda.kernel import GpuKernel, Launch, grid1d
from irc.targets.cuda.kernels.conv import Im2col, _geometry
from irc.targets.cuda.kernels.gemm import MicroTile, Tile, emit_tiled
from irc.targets.cuda.kernels.registry import cuda_kernel
from irc.targets.cuda.kernels.rows import fold, rows, rows_launch
from irc.targets.llvm import lltypes as T

ONES = 0x01010101


INT_TILES = (Tile(64, 64, 32, 4, 4), Tile(32, 64, 32, 2, 4))
INT_THIN = Tile(8, 128, 32, 1, 4)


@dataclass(frozen=True)
class ByteOperand:
    """A byte reader ``load(k, batch, i, kk) -> i8`` (i: row of L / column of R) and its layout."""

    load: object
    k_contiguous: bool
    signed: bool


def requantize(k: GpuKernel, acc32, m0, shift, zp: int, lo: int, hi: int):
    """quant_arith.requantize of an i32 accumulator with i32 multiplier and shift: i64 result."""
    b = k.b
    i64 = T.I64
    c = lambda v: ir.Constant(i64, v)  # noqa: E731
    acc = b.sext(acc32, i64)
    m0 = b.sext(m0, i64) if m0.type != i64 else m0
    shift = b.sext(shift, i64) if shift.type != i64 else shift
    rnd = b.shl(c(1), b.sub(shift, c(1)))
    y = b.add(b.ashr(b.add(b.mul(acc, m0), rnd), shift), c(zp))
    y = b.select(b.icmp_signed("<", y, c(lo)), c(lo), y)
    return b.select(b.icmp_signed(">", y, c(hi)), c(hi), y)


class Dp4a(MicroTile):
    """Four byte products summed into an i32 per ``dp4a``, over bytes staged k-contiguous (rows
    padded by 4 bytes); with a nonzero activation zero point, the weight sums that take it out
    are formed by the same instruction, one per weight row or column this thread touches."""

    elem = T.I8
    acc = T.I32
    pad = 4
    names = ("Lq", "Rq")
    tiles = INT_TILES
    thin = INT_THIN

    def __init__(self, left_signed: bool, right_signed: bool, zp_side: str, zero_point: int):
        self.signed = (left_signed, right_signed)
        self.zp_side = zp_side
        self.zero_point = zero_point

    def _sums(self, t: Tile) -> int:
        """Weight sums: per column of R (activation on the left), or per row of L."""
        return t.tn if self.zp_side == "L" else t.tm

    def count(self, t: Tile) -> int:
        return t.tm * t.tn + self._sums(t)

    def step(self, k: GpuKernel, t: Tile, place, a_sh, b_sh, a_base, b_base, accs: list) -> list:
        row0, col0 = place
        row_len = t.bk + self.pad
        ls, rs = self.signed
        ones = ir.Constant(T.I32, ONES)
        prods, sums = accs[: t.tm * t.tn], accs[t.tm * t.tn:]

        def word(sh, idx):
            return k.b.load(k.sgep(sh, T.I8, idx), typ=T.I32, align=4)

        for q in range(0, t.bk, 4):
            lw = [word(a_sh, k.add(a_base, k.add(k.mul(k.add(row0, i), row_len), q))) for i in range(t.tm)]
            rw = [word(b_sh, k.add(b_base, k.add(k.mul(k.add(col0, j), row_len), q))) for j in range(t.tn)]
            prods = [asm.dp4a(k, lw[i], rw[j], prods[i * t.tn + j], ls, rs) for i in range(t.tm) for j in range(t.tn)]
            wts, wsigned = (rw, rs) if self.zp_side == "L" else (lw, ls)
            sums = [asm.dp4a(k, wts[j], ones, sums[j], wsigned, False) for j in range(self._sums(t))]
        return prods + sums

    def outputs(self, k: GpuKernel, t: Tile, place, accs: list):
        sums = accs[t.tm * t.tn:]
        for i, (mr, nc, acc) in enumerate(super().outputs(k, t, place, accs)):
            if self.zero_point:
                ws = sums[i % t.tn] if self.zp_side == "L" else sums[i // t.tn]
                acc = k.b.sub(acc, k.b.mul(ws, ir.Constant(T.I32, self.zero_point)))
            yield mr, nc, acc


def emit_int8_gemm(k: GpuKernel, m: int, n: int, kdim: int, batch: int, left: ByteOperand, right: ByteOperand,
                   zp_side: str, zero_point: int, store, tile: Tile | None = None) -> Launch:
    """acc[b, i, j] = sum_k (L - zL) (R - zR) for the side ``zp_side`` ('L' or 'R') holding the
    activation with ``zero_point``; ``store(k, bz, i, j, acc_i32)`` is the epilogue."""
    return emit_tiled(k, m, n, kdim, batch, left, right, store, Dp4a(left.signed, right.signed, zp_side, zero_point),
                      tile)


def _requant_store(k: GpuKernel, node: Node, out, bias, mult, shift, channel, off, acc) -> None:
    at = node.attrs
    acc = k.b.add(acc, k.load(bias, channel))
    y = requantize(k, acc, k.load(mult, channel), k.load(shift, channel), at["y_zero_point"], at["y_min"], at["y_max"])
    k.b.store(k.b.trunc(y, T.I8), k.addr(out, off))


def _byte_reader(buf, rows: int, cols: int, transposed: bool, signed: bool) -> ByteOperand:
    def load(k, bz, i, kk):
        r, c = (kk, i) if transposed else (i, kk)
        return k.b.load(k.addr(buf, k.add(k.mul(r, cols), c)), typ=T.I8)

    return ByteOperand(load, not transposed, signed)


@cuda_kernel("qgemm", kind="quant")
def _qgemm(k: GpuKernel, node: Node) -> Launch:
    a, b, bias, mult, shift = k.ins
    out = k.outs[0]
    m, kd = a.shape
    n = b.shape[1]

    def store(k, bz, i, j, acc):
        _requant_store(k, node, out, bias, mult, shift, j, k.add(k.mul(i, n), j), acc)

    return emit_int8_gemm(k, m, n, kd, 1, _byte_reader(a, m, kd, False, a.dtype is DType.i8),
                          _byte_reader(b, kd, n, True, True), "L", node.attrs["a_zero_point"], store)


@cuda_kernel("qconv", kind="quant")
def _qconv(k: GpuKernel, node: Node) -> Launch:
    geo = _geometry(k, node)
    x, w, out = geo["x"], geo["w"], geo["out"]
    bias, mult, shift = k.ins[2:5]
    im = Im2col(geo)
    zx = node.attrs["x_zero_point"]
    zx_bits = ir.Constant(T.I8, zx if zx < 128 else zx - 256)

    def load_w(k, g, i, kk):
        return k.b.load(k.addr(w, im.w_offset(k, g, i, kk)), typ=T.I8)

    def load_x(k, g, j, kk):
        off, ok = im.x_offset(k, g, j, kk)
        v = k.b.load(k.addr(x, off), typ=T.I8)
        return v if ok is None else k.b.select(ok, v, zx_bits)

    def store(k, g, i, j, acc):
        co, off = im.out_offset(k, g, i, j)
        _requant_store(k, node, out, bias, mult, shift, co, off, acc)

    return emit_int8_gemm(k, im.mg, im.ncols, im.kd, im.group, ByteOperand(load_w, True, True),
                          ByteOperand(load_x, False, x.dtype is DType.i8), "R", zx, store)


# ------------------------------------------------------------------------------ element-wise


def _axis_param(k: GpuKernel, buf, i, shape, axis: int):
    """Element of a per-axis parameter (or its only element) for flat output index i."""
    if buf.size <= 1:
        return k.load(buf, k.i(0))
    inner = math.prod(shape[axis + 1:])
    return k.load(buf, k.urem(k.udiv(i, inner), shape[axis]))


@cuda_kernel("quantize_linear", kind="quant")
def _quantize(k: GpuKernel, node: Node) -> Launch:
    x, scale, zp = k.ins
    out = k.outs[0]
    from irc.ir.quant_arith import qrange

    lo, hi = qrange(out.dtype)
    b = k.b
    f32 = T.F32
    axis = node.attrs["axis"]
    with k.grid_stride(out.size) as i:
        v = k.load(x, i)
        if v.type != f32:
            v = b.fpext(v, f32) if v.type == T.F16 else b.fptrunc(v, f32) if v.type == T.F64 else v
        s = _axis_param(k, scale, i, x.shape, axis)
        z = _axis_param(k, zp, i, x.shape, axis)
        zf = b.sitofp(z, f32) if out.dtype is DType.i8 else b.uitofp(z, f32)
        r = k.b.call(k.mod.declare_raw("llvm.roundeven.f32", f32, [f32]), [b.fdiv(v, s)])
        r = b.select(b.fcmp_unordered("uno", r, r), ir.Constant(f32, 0.0), r)
        y = b.fadd(r, zf)
        y = b.select(b.fcmp_ordered("<", y, ir.Constant(f32, lo)), ir.Constant(f32, lo), y)
        y = b.select(b.fcmp_ordered(">", y, ir.Constant(f32, hi)), ir.Constant(f32, hi), y)
        b.store(b.trunc(b.fptosi(y, T.I32), T.I8), k.addr(out, i))
    return grid1d(out.size)


@cuda_kernel("dequantize_linear", kind="quant")
def _dequantize(k: GpuKernel, node: Node) -> Launch:
    x, scale, *rest = k.ins
    out = k.outs[0]
    b = k.b
    axis = node.attrs["axis"]
    signed = x.dtype.is_signed
    with k.grid_stride(out.size) as i:
        q = k.load(x, i)
        q = b.sext(q, T.I64) if signed else b.zext(q, T.I64)
        if rest:
            z = _axis_param(k, rest[0], i, x.shape, axis)
            z = b.sext(z, T.I64) if rest[0].dtype.is_signed else b.zext(z, T.I64)
            q = b.sub(q, z)
        k.store(out, i, b.fmul(b.sitofp(q, T.F32), _axis_param(k, scale, i, x.shape, axis)))
    return grid1d(out.size)


def _widen64(k: GpuKernel, v, dt: DType):
    return k.b.sext(v, T.I64) if dt.is_signed else k.b.zext(v, T.I64)


@cuda_kernel("qadd", kind="quant")
def _qadd(k: GpuKernel, node: Node) -> Launch:
    a, b_ = k.ins
    out = k.outs[0]
    at = node.attrs
    b = k.b
    c = lambda v: ir.Constant(T.I64, v)  # noqa: E731
    with k.grid_stride(out.size) as i:
        va = b.sub(_widen64(k, k.load(a, i), a.dtype), c(at["a_zero_point"]))
        vb = b.sub(_widen64(k, k.load(b_, i), b_.dtype), c(at["b_zero_point"]))
        acc = b.add(b.mul(va, c(at["a_mult"])), b.mul(vb, c(at["b_mult"])))
        rnd = c(1 << (at["shift"] - 1))
        y = b.add(b.ashr(b.add(b.mul(acc, c(at["multiplier"])), rnd), c(at["shift"])), c(at["y_zero_point"]))
        y = b.select(b.icmp_signed("<", y, c(at["y_min"])), c(at["y_min"]), y)
        y = b.select(b.icmp_signed(">", y, c(at["y_max"])), c(at["y_max"]), y)
        b.store(b.trunc(y, T.I8), k.addr(out, i))
    return grid1d(out.size)


@cuda_kernel("qglobal_average_pool", kind="quant")
def _qgap(k: GpuKernel, node: Node) -> Launch:
    x = k.ins[0]
    out = k.outs[0]
    at = node.attrs
    b = k.b
    n_rows = x.shape[0] * x.shape[1]
    row_len = math.prod(x.shape[2:])
    c = lambda v: ir.Constant(T.I64, v)  # noqa: E731
    with rows(k, n_rows, row_len) as row:
        base = k.mul(row.index, row_len)
        (s,) = fold(k, row, row_len, [c(0)],
                    lambda acc, j: [b.add(acc[0], b.sub(_widen64(k, k.load(x, k.add(base, j)), x.dtype),
                                                        c(at["x_zero_point"])))],
                    lambda p, q: [b.add(p[0], q[0])])
        rnd = c(1 << (at["shift"] - 1))
        y = b.add(b.ashr(b.add(b.mul(s, c(at["multiplier"])), rnd), c(at["shift"])), c(at["y_zero_point"]))
        y = b.select(b.icmp_signed("<", y, c(at["y_min"])), c(at["y_min"]), y)
        y = b.select(b.icmp_signed(">", y, c(at["y_max"])), c(at["y_max"]), y)
        with k.if_(b.icmp_unsigned("==", row.lane, k.i(0))):
            b.store(b.trunc(y, T.I8), k.addr(out, row.index))
    return rows_launch(n_rows, row_len)
