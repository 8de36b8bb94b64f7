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
from irc.targets.cpu import lltypes as T
from irc.targets.cuda import asm
from irc.targets.cuda.kernel import GpuKernel, Launch, grid1d
from irc.targets.cuda.kernels.conv import _geometry, _input_offset
from irc.targets.cuda.kernels.gemm import Tile, slice_elements
from irc.targets.cuda.kernels.registry import cuda_kernel
from irc.targets.cuda.kernels.rows import fold, rows, rows_launch

ONES = 0x01010101


@dataclass(frozen=True, slots=True)
class IntTile(Tile):
    """A GEMM tile over bytes: shared memory holds bk + 4 bytes per row (padding against bank
    conflicts) instead of bk floats."""

    @property
    def shared_bytes(self) -> int:
        return 2 * (self.bm + self.bn) * (self.bk + 4)


INT_TILES = (IntTile(64, 64, 32, 4, 4), IntTile(32, 64, 32, 2, 4))
INT_THIN = IntTile(8, 128, 32, 1, 4)


def choose_int_tile(m: int, n: int, batch: int) -> IntTile:
    if m <= 8:
        return INT_THIN
    for t in INT_TILES:
        if -(-m // t.bm) * -(-n // t.bn) * batch >= 256:
            return t
    return INT_TILES[-1]


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


def emit_int8_gemm(k: GpuKernel, m: int, n: int, kdim: int, batch: int, left: ByteOperand, right: ByteOperand,
                   zp_side: str, zero_point: int, store) -> Launch:
    """acc[b, i, j] = sum_k (L - zL) (R - zR) for the side ``zp_side`` ('L' or 'R') holding the
    activation with ``zero_point``; ``store(k, bz, i, j, acc_i32)`` is the epilogue."""
    t = choose_int_tile(m, n, batch)
    bld = k.b
    i8, i32 = T.I8, T.I32
    row_len = t.bk + 4
    nthreads = t.threads
    tid = k.tid()
    bz = k.ctaid("z") if batch > 1 else k.i(0)
    m0 = k.mul(k.ctaid("y"), t.bm)
    n0 = k.mul(k.ctaid("x"), t.bn)
    l_sh = k.shared("Lq", i8, 2 * t.bm * row_len)
    r_sh = k.shared("Rq", i8, 2 * t.bn * row_len)
    full_m, full_n, full_k = m % t.bm == 0, n % t.bn == 0, kdim % t.bk == 0
    ktiles = -(-kdim // t.bk)

    def fetch(op: ByteOperand, rows: int, base, extent: int, full_rows: bool, k0):
        out = []
        for inside, i_rel, kk_rel in slice_elements(k, tid, rows, t.bk, nthreads, op.k_contiguous):
            i_abs, kk_abs = k.add(base, i_rel), k.add(k0, kk_rel)
            ok = None if full_rows else k.lt(i_abs, extent)
            if not full_k:
                c = k.lt(kk_abs, kdim)
                ok = c if ok is None else bld.and_(ok, c)
            if ok is not None:
                i_abs = bld.select(ok, i_abs, k.i(0))
                kk_abs = bld.select(ok, kk_abs, k.i(0))
            v = op.load(k, bz, i_abs, kk_abs)
            if ok is not None:
                v = bld.select(ok, v, ir.Constant(i8, 0))
            out.append((inside, k.add(k.mul(i_rel, row_len), kk_rel), v))
        return out

    def put(sh, rows, buf_idx, vals):
        base = k.mul(buf_idx, rows * row_len)
        for inside, idx, v in vals:
            ptr = k.sgep(sh, i8, k.add(base, idx))
            if inside is None:
                bld.store(v, ptr)
            else:
                with k.if_(inside):
                    bld.store(v, ptr)

    def word(sh, idx):
        return bld.load(k.sgep(sh, i8, idx), typ=i32, align=4)

    cols_per_row = t.bn // t.tn
    tx, ty = k.urem(tid, cols_per_row), k.udiv(tid, cols_per_row)
    row0, col0 = k.mul(ty, t.tm), k.mul(tx, t.tn)
    wsum_n = t.tn if zp_side == "L" else t.tm  # weight sums: per column of R, or per row of L
    with bld.goto_entry_block():
        acc_slots = [[bld.alloca(i32) for _ in range(t.tn)] for _ in range(t.tm)]
        sum_slots = [bld.alloca(i32) for _ in range(wsum_n)]
    for s in [s for row in acc_slots for s in row] + sum_slots:
        bld.store(ir.Constant(i32, 0), s)
    ones = ir.Constant(i32, ONES)

    put(l_sh, t.bm, k.i(0), fetch(left, t.bm, m0, m, full_m, k.i(0)))
    put(r_sh, t.bn, k.i(0), fetch(right, t.bn, n0, n, full_n, k.i(0)))
    k.barrier()
    with k.loop(ktiles, name="kt") as kt:
        cur = k.urem(kt, 2)
        nxt = bld.sub(k.i(1), cur)
        has_next = k.lt(k.add(kt, 1), ktiles)
        k_load = bld.select(has_next, k.mul(k.add(kt, 1), t.bk), k.i(0))
        nl = fetch(left, t.bm, m0, m, full_m, k_load)
        nr = fetch(right, t.bn, n0, n, full_n, k_load)
        lb, rb = k.mul(cur, t.bm * row_len), k.mul(cur, t.bn * row_len)
        accs = [[bld.load(s, typ=i32) for s in row] for row in acc_slots]
        sums = [bld.load(s, typ=i32) for s in sum_slots]
        for q in range(0, t.bk, 4):
            lw = [word(l_sh, k.add(lb, k.add(k.mul(k.add(row0, i), row_len), q))) for i in range(t.tm)]
            rw = [word(r_sh, k.add(rb, k.add(k.mul(k.add(col0, j), row_len), q))) for j in range(t.tn)]
            accs = [[asm.dp4a(k, lw[i], rw[j], accs[i][j], left.signed, right.signed) for j in range(t.tn)]
                    for i in range(t.tm)]
            wts, wsigned = (rw, right.signed) if zp_side == "L" else (lw, left.signed)
            sums = [asm.dp4a(k, wts[j], ones, sums[j], wsigned, False) for j in range(wsum_n)]
        for i, row in enumerate(acc_slots):
            for j, s in enumerate(row):
                bld.store(accs[i][j], s)
        for s, v in zip(sum_slots, sums):
            bld.store(v, s)
        with k.if_(has_next):
            put(l_sh, t.bm, nxt, nl)
            put(r_sh, t.bn, nxt, nr)
        k.barrier()

    sums = [bld.load(s, typ=i32) for s in sum_slots]
    for i in range(t.tm):
        mi = k.add(m0, k.add(row0, i))
        for j in range(t.tn):
            nj = k.add(n0, k.add(col0, j))
            acc = bld.load(acc_slots[i][j], typ=i32)
            if zero_point:
                ws = sums[j] if zp_side == "L" else sums[i]
                acc = bld.sub(acc, bld.mul(ws, ir.Constant(i32, zero_point)))
            ok = None if full_m else k.lt(mi, m)
            if not full_n:
                c = k.lt(nj, n)
                ok = c if ok is None else bld.and_(ok, c)
            if ok is None:
                store(k, bz, mi, nj, acc)
            else:
                with k.if_(ok):
                    store(k, bz, mi, nj, acc)
    grid = (-(-n // t.bn), -(-m // t.bm), batch)
    return Launch(grid, (nthreads, 1, 1), t.shared_bytes, ((n, t.bn), (m, t.bm), (batch, 1)))


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
    group = geo["group"]
    mg, cin_g = geo["cout"] // group, geo["cin"] // group
    kprod = math.prod(geo["kernel"])
    kd = cin_g * kprod
    p = math.prod(geo["out_sp"])
    zx = node.attrs["x_zero_point"]
    zx_bits = ir.Constant(T.I8, zx if zx < 128 else zx - 256)

    def load_w(k, g, i, kk):
        row = k.add(k.mul(g, mg), i) if group > 1 else i
        return k.b.load(k.addr(w, k.add(k.mul(row, kd), kk)), typ=T.I8)

    def load_x(k, g, j, kk):
        img, pix = k.udiv(j, p), k.urem(j, p)
        oc = k.unravel(pix, geo["out_sp"])
        ci, r = k.udiv(kk, kprod), k.urem(kk, kprod)
        kc = k.unravel(r, geo["kernel"])
        if group > 1:
            ci = k.add(k.mul(g, cin_g), ci)
        off, ok = _input_offset(k, geo, img, ci, oc, kc)
        v = k.b.load(k.addr(x, off), typ=T.I8)
        return v if ok is None else k.b.select(ok, v, zx_bits)

    def store(k, g, i, j, acc):
        co = k.add(k.mul(g, mg), i) if group > 1 else i
        img, pix = k.udiv(j, p), k.urem(j, p)
        off = k.add(k.mul(k.add(k.mul(img, geo["cout"]), co), p), pix)
        _requant_store(k, node, out, bias, mult, shift, co, off, acc)

    return emit_int8_gemm(k, mg, geo["batch"] * p, kd, group, ByteOperand(load_w, True, True),
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
