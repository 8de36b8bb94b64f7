"""int8 kernels of the CPU target: conversions, the integer layers and their GEMM drivers.

Every kernel computes exactly what its op's reference computes (irc.ir.ops.quant), the
requantization as irc.ir.quant_arith defines it, so results equal the interpreter's bit for bit.

- ``qconv_gemm``: per image and group, im2col straight into the GEMM's layout: four rows of the
  im2col matrix (k = 4*k4 .. 4*k4+3) are formed in a per-thread buffer (padding is the zero
  point; a stride-1 "same" conv copies each row in one piece), then interleaved into
  col[k4][p][4] with one byte shuffle per 16 positions, i8 bytes made unsigned (+128) on the way
  (a 1x1, stride-1, unpadded conv interleaves the image itself); then the micro-kernel
  (irc.targets.cpu.gemm_int8) runs every MR x NR tile, tiles split over the thread pool, the
  requantize fused as its epilogue.
- ``qgemm_packed``: the activation rows are copied with K padded to a multiple of 4 (and +128
  for i8), then the micro-kernel runs over (row panel, column panel) tiles.
- ``quantize_linear``, ``dequantize_linear``, ``qadd``, ``qglobal_average_pool``: loops over
  the elements with the scalar arithmetic written out (round half to even of x / scale in
  float32; the 64-bit requantize).
"""

from __future__ import annotations

import math

from llvmlite import ir

from irc.ir.graph import Node
from irc.ir.types import DType
from irc.targets.cpu.gemm_int8 import MicroKernel, micro_kernel
from irc.targets.cpu.kernel import KernelBuilder
from irc.targets.cpu.kernels.registry import CpuContext, cpu_kernel
from irc.targets.cpu.lowering.int8_gemm import tile_of
from irc.targets.llvm import lltypes as T
from irc.targets.llvm.scalar import convert

#: Output positions of the im2col matrix are padded to a multiple of this (the widest tile).
COLUMN_ALIGN = 64


def _align(n: int, a: int = 64) -> int:
    return (n + a - 1) // a * a


def requantize_scalar(k: KernelBuilder, acc: ir.Value, m0: int | ir.Value, shift: int | ir.Value, zp: int, lo: int,
                      hi: int) -> ir.Value:
    """quant_arith.requantize on one i64 accumulator; returns i64 in [lo, hi]."""
    b = k.b
    c = k.i64
    m0 = c(m0) if isinstance(m0, int) else m0
    shift = c(shift) if isinstance(shift, int) else shift
    rnd = b.shl(c(1), b.sub(shift, c(1)))
    y = b.add(b.ashr(b.add(b.mul(acc, m0), rnd), shift), c(zp))
    y = b.select(b.icmp_signed("<", y, c(lo)), c(lo), y)
    return b.select(b.icmp_signed(">", y, c(hi)), c(hi), y)


def _i64(k: KernelBuilder, v: ir.Value, dt: DType) -> ir.Value:
    return convert(k, v, dt, DType.i64)


def _channel_loop(k: KernelBuilder, shape, axis: int, per_axis: bool, cost: int):
    """Yields (flat element offset, channel index) over an array of ``shape``."""
    size = math.prod(shape)
    if not per_axis:
        with k.parallel_loop(size, work_per_iter=cost) as i:
            yield i, k.i64(0)
        return
    outer, ch, inner = math.prod(shape[:axis]), shape[axis], math.prod(shape[axis + 1:])
    with k.parallel_loop(outer * ch, work_per_iter=inner * cost) as oc:
        c = k.b.srem(oc, k.i64(ch))
        with k.loop(inner, name="in") as j:
            yield k.b.add(k.b.mul(oc, k.i64(inner)), j), c


# ---------------------------------------------------------------------------- conversions


@cpu_kernel("quantize_linear")
def _quantize(k: KernelBuilder, node: Node) -> None:
    y, x, scale, zp = k.outs[0], *k.ins
    b = k.b
    axis = node.attrs["axis"]
    per_axis = scale.size > 1 or zp.size > 1
    lo, hi = (-128, 127) if y.dtype is DType.i8 else (0, 255)
    roundeven = k.state.declare("llvm.roundeven.f32", T.F32, [T.F32])
    for off, c in _channel_loop(k, x.shape, axis, per_axis, 4):
        b = k.b
        xf = convert(k, k.load(x, off), x.dtype, DType.f32)
        s = k.load(scale, c if scale.size > 1 else k.i64(0))
        z = convert(k, k.load(zp, c if zp.size > 1 else k.i64(0)), zp.dtype, DType.f32)
        r = b.call(roundeven, [b.fdiv(xf, s)])
        r = b.select(b.fcmp_unordered("uno", r, r), ir.Constant(T.F32, 0.0), r)
        r = b.fadd(r, z)
        r = b.select(b.fcmp_ordered("<", r, ir.Constant(T.F32, lo)), ir.Constant(T.F32, lo), r)
        r = b.select(b.fcmp_ordered(">", r, ir.Constant(T.F32, hi)), ir.Constant(T.F32, hi), r)
        k.store(y, off, b.trunc(b.fptosi(r, T.I32), T.I8))


@cpu_kernel("dequantize_linear")
def _dequantize(k: KernelBuilder, node: Node) -> None:
    y, x, scale = k.outs[0], k.ins[0], k.ins[1]
    zp = k.ins[2] if len(k.ins) > 2 else None
    per_axis = scale.size > 1 or (zp is not None and zp.size > 1)
    for off, c in _channel_loop(k, x.shape, node.attrs["axis"], per_axis, 2):
        b = k.b
        q = _i64(k, k.load(x, off), x.dtype)
        if zp is not None:
            q = b.sub(q, _i64(k, k.load(zp, c if zp.size > 1 else k.i64(0)), zp.dtype))
        s = k.load(scale, c if scale.size > 1 else k.i64(0))
        k.store(y, off, b.fmul(b.sitofp(q, T.F32), s))


# ---------------------------------------------------------------------------- element-wise layers


@cpu_kernel("qadd")
def _qadd(k: KernelBuilder, node: Node) -> None:
    y, a, bb = k.outs[0], *k.ins
    at = node.attrs
    with k.parallel_loop(y.size, work_per_iter=4) as i:
        b = k.b
        da = b.sub(_i64(k, k.load(a, i), a.dtype), k.i64(at["a_zero_point"]))
        db = b.sub(_i64(k, k.load(bb, i), bb.dtype), k.i64(at["b_zero_point"]))
        acc = b.add(b.mul(da, k.i64(at["a_mult"])), b.mul(db, k.i64(at["b_mult"])))
        q = requantize_scalar(k, acc, at["multiplier"], at["shift"], at["y_zero_point"], at["y_min"], at["y_max"])
        k.store(y, i, b.trunc(q, T.I8))


@cpu_kernel("qglobal_average_pool")
def _qgap(k: KernelBuilder, node: Node) -> None:
    y, x = k.outs[0], k.ins[0]
    at = node.attrs
    hw = math.prod(x.shape[2:])
    with k.parallel_loop(y.size, work_per_iter=hw) as nc:
        b = k.b
        acc_slot = _entry_alloca(k, T.I64)
        b.store(k.i64(0), acc_slot)
        base = b.mul(nc, k.i64(hw))
        with k.loop(hw, name="s") as s:
            v = _i64(k, k.load(x, b.add(base, s)), x.dtype)
            b.store(b.add(b.load(acc_slot, typ=T.I64), v), acc_slot)
        acc = b.sub(b.load(acc_slot, typ=T.I64), k.i64(hw * at["x_zero_point"]))
        q = requantize_scalar(k, acc, at["multiplier"], at["shift"], at["y_zero_point"], at["y_min"], at["y_max"])
        k.store(y, nc, b.trunc(q, T.I8))


def _entry_alloca(k: KernelBuilder, t: ir.Type) -> ir.Value:
    with k.b.goto_entry_block():
        return k.b.alloca(t)


# ---------------------------------------------------------------------------- dense


class _Dense:
    def __init__(self, node: Node):
        a, wp = node.inputs[0].type, node.inputs[1].type
        self.isa = node.attrs["isa"]
        self.m, self.k = a.shape
        self.n = node.attrs["n"]
        self.k4 = wp.shape[1]
        self.np = wp.shape[0]
        _, _, self.mr, self.nr = tile_of(self.isa)
        self.mp = -(-self.m // self.mr)
        self.offset = node.attrs["a_offset"]

    @property
    def packed_bytes(self) -> int:
        return _align(self.m * self.k4 * 4)


@cpu_kernel("qgemm_packed", scratch=lambda n, ctx: _Dense(n).packed_bytes)
def _qgemm_packed(k: KernelBuilder, node: Node) -> None:
    d = _Dense(node)
    y, a, wp, bias, m0, shift = k.outs[0], *k.ins
    at = node.attrs
    row = d.k4 * 4
    with k.parallel_loop(d.m, work_per_iter=row) as i:
        b = k.b
        src = b.gep(k.ptr(a), [b.mul(i, k.i64(d.k))], inbounds=True, source_etype=T.I8)
        dst = b.gep(k.scratch_ptr(), [b.mul(i, k.i64(row))], inbounds=True, source_etype=T.I8)
        with k.loop(d.k, name="kk") as kk:
            v = b.load(b.gep(src, [kk], inbounds=True, source_etype=T.I8), typ=T.I8)
            if d.offset:
                v = b.xor(v, ir.Constant(T.I8, 0x80))
            b.store(v, b.gep(dst, [kk], inbounds=True, source_etype=T.I8))
        with k.loop(row, start=d.k, name="kz") as kk:
            b.store(ir.Constant(T.I8, 0), b.gep(dst, [kk], inbounds=True, source_etype=T.I8))

    def uk(rows: int, cols: int) -> ir.Function:
        return micro_kernel(k.state, MicroKernel(
            d.isa, rows, cols, d.k4, vec_k4_stride=d.nr * 4, bc_k4_stride=4, bc_row_stride=row, vec_unsigned=False,
            ldo=d.n, per_row=False, zero_point=at["y_zero_point"], lo=at["y_min"], hi=at["y_max"]))

    rows_rem, cols_rem = d.m - (d.mp - 1) * d.mr, d.n - (d.np - 1) * d.nr
    tiles = d.np * d.mp
    with k.parallel_chunks(tiles, d.mr * d.nr * d.k4 * 4) as (lo, hi, _tid, _):
        with k.loop(hi, start=lo, name="t") as t:
            b = k.b
            jp, ip = b.sdiv(t, k.i64(d.mp)), b.srem(t, k.i64(d.mp))
            col0, row0 = b.mul(jp, k.i64(d.nr)), b.mul(ip, k.i64(d.mr))

            def at_(buf, off, et=T.I8):
                return b.gep(k.ptr(buf), [off], inbounds=True, source_etype=et)

            args = [at_(wp, b.mul(jp, k.i64(d.k4 * d.nr * 4))),
                    b.gep(k.scratch_ptr(), [b.mul(row0, k.i64(row))], inbounds=True, source_etype=T.I8),
                    at_(y, b.add(b.mul(row0, k.i64(d.n)), col0)),
                    at_(bias, col0, T.I32), at_(m0, col0, T.I32), at_(shift, col0, T.I32)]
            _dispatch(k, uk, d.mr, d.nr, rows_rem, cols_rem, b.icmp_signed("==", ip, k.i64(d.mp - 1)),
                      b.icmp_signed("==", jp, k.i64(d.np - 1)), args)


def _dispatch(k: KernelBuilder, uk, mr: int, nr: int, rows_rem: int, cols_rem: int, last_row, last_col, args) -> None:
    """Call the micro-kernel variant for this tile (edge variants only where a panel is partial)."""
    b = k.b

    def by_cols(rows: int) -> None:
        if cols_rem == nr:
            b.call(uk(rows, nr), args)
            return
        with b.if_else(last_col) as (then, other):
            with then:
                b.call(uk(rows, cols_rem), args)
            with other:
                b.call(uk(rows, nr), args)

    if rows_rem == mr:
        by_cols(mr)
        return
    with b.if_else(last_row) as (then, other):
        with then:
            by_cols(rows_rem)
        with other:
            by_cols(mr)


# ---------------------------------------------------------------------------- convolution


class _Conv:
    """Static sizes of one qconv_gemm node."""

    def __init__(self, node: Node, ctx: CpuContext):
        x, wp = node.inputs[0].type, node.inputs[1].type
        a = node.attrs
        self.isa = a["isa"]
        self.n, self.c, self.h, self.w = x.shape
        self.oh, self.ow = node.outputs[0].shape[2:]
        self.group, self.cout = a["group"], a["cout"]
        self.cin_g, self.cout_g = self.c // self.group, self.cout // self.group
        self.kh, self.kw = a["kernel_shape"]
        self.sh, self.sw = a["strides"]
        self.dh, self.dw = a["dilations"]
        self.pt, self.pl, self.pb, self.pr = a["pads"]
        self.k = self.cin_g * self.kh * self.kw
        self.k4 = wp.shape[2]
        self.p = self.oh * self.ow
        self.p_pad = _align(self.p, COLUMN_ALIGN)
        _, _, self.mr, self.nr = tile_of(self.isa)
        self.mp = wp.shape[1]
        self.npt = -(-self.p // self.nr)
        self.offset, self.pad_value = a["x_offset"], a["pad_value"]
        self.threads = max(1, ctx.threads)

    @property
    def direct(self) -> bool:
        """1x1, stride 1, unpadded: the image's channel planes are the im2col rows."""
        return (self.kh, self.kw, self.sh, self.sw, self.pt, self.pl, self.pb, self.pr) == (1, 1, 1, 1, 0, 0, 0, 0)

    @property
    def col_bytes(self) -> int:
        return _align(self.k4 * self.p_pad * 4)

    @property
    def scratch_bytes(self) -> int:
        return self.col_bytes + (0 if self.direct else self.threads * 4 * self.p_pad)


@cpu_kernel("qconv_gemm", scratch=lambda n, ctx: _Conv(n, ctx).scratch_bytes)
def _qconv_gemm(k: KernelBuilder, node: Node) -> None:
    s = _Conv(node, k.state.ctx)
    y, x, wp, bias, m0, shift = k.outs[0], *k.ins
    at = node.attrs

    def uk(rows: int, cols: int) -> ir.Function:
        return micro_kernel(k.state, MicroKernel(
            s.isa, rows, cols, s.k4, vec_k4_stride=s.p_pad * 4, bc_k4_stride=s.mr * 4, bc_row_stride=4,
            vec_unsigned=True, ldo=s.p, per_row=True, zero_point=at["y_zero_point"], lo=at["y_min"], hi=at["y_max"]))

    rows_rem, cols_rem = s.cout_g - (s.mp - 1) * s.mr, s.p - (s.npt - 1) * s.nr
    with k.loop(s.n, name="img") as img:
        with k.loop(s.group, name="grp") as g:
            _emit_columns(k, s, x, (img, g))
            with k.parallel_chunks(s.npt * s.mp, s.mr * s.nr * s.k4 * 4, captures=(img, g)) as (lo, hi, _t, caps):
                img_, g_ = caps
                with k.loop(hi, start=lo, name="t") as t:
                    b = k.b
                    pt, mp = b.sdiv(t, k.i64(s.mp)), b.srem(t, k.i64(s.mp))
                    row0 = b.add(b.mul(g_, k.i64(s.cout_g)), b.mul(mp, k.i64(s.mr)))
                    out = b.add(b.mul(b.add(b.mul(img_, k.i64(s.cout)), row0), k.i64(s.p)), b.mul(pt, k.i64(s.nr)))
                    panel = b.add(b.mul(g_, k.i64(s.mp)), mp)

                    def at_(buf, off, et=T.I8):
                        return b.gep(k.ptr(buf), [off], inbounds=True, source_etype=et)

                    args = [b.gep(k.scratch_ptr(), [b.mul(pt, k.i64(s.nr * 4))], inbounds=True, source_etype=T.I8),
                            at_(wp, b.mul(panel, k.i64(s.k4 * s.mr * 4))), at_(y, out),
                            at_(bias, row0, T.I32), at_(m0, row0, T.I32), at_(shift, row0, T.I32)]
                    _dispatch(k, uk, s.mr, s.nr, rows_rem, cols_rem, b.icmp_signed("==", mp, k.i64(s.mp - 1)),
                              b.icmp_signed("==", pt, k.i64(s.npt - 1)), args)


def _emit_columns(k: KernelBuilder, s: _Conv, x, captures) -> None:
    """col[k4][p][t] = u[k = 4*k4 + t][p] (the im2col matrix of u = x + offset, padding = pad
    value, rows k >= K zero), in parallel over k4. Rows are formed in x's own bytes (padding is
    the zero point) and made unsigned while interleaving."""
    chunks = -(-s.p // 16)
    tail = s.p - (chunks - 1) * 16
    v16 = ir.VectorType(T.I8, 16)
    zero16 = ir.Constant(v16, None)
    flip = ir.Constant(v16, [0x80] * 16)
    mask_tail = ir.Constant(ir.VectorType(T.I1, 16), [1 if i < tail else 0 for i in range(16)])
    maskload = k.state.declare("llvm.masked.load.v16i8.p0", v16, [T.PTR, T.I32, mask_tail.type, v16])
    with k.parallel_chunks(s.k4, 4 * s.p, captures=captures, max_workers=s.threads) as (lo, hi, tid, caps):
        img, g = caps
        b = k.b
        xbase = b.gep(k.ptr(x), [b.mul(b.add(b.mul(img, k.i64(s.c)), b.mul(g, k.i64(s.cin_g))), k.i64(s.h * s.w))],
                      inbounds=True, source_etype=T.I8)
        rows = None if s.direct else b.gep(k.scratch_ptr(), [b.add(k.i64(s.col_bytes), b.mul(tid, k.i64(4 * s.p_pad)))],
                                           inbounds=True, source_etype=T.I8)
        with k.loop(hi, start=lo, name="k4") as k4:
            srcs, valid = [], []
            for t in range(4):
                kk = b.add(b.mul(k4, k.i64(4)), k.i64(t))
                ok = b.icmp_signed("<", kk, k.i64(s.k))
                valid.append(ok)
                if s.direct:
                    plane = b.gep(xbase, [b.mul(b.select(ok, kk, k.i64(0)), k.i64(s.h * s.w))], inbounds=True,
                                  source_etype=T.I8)
                    srcs.append(plane)
                    continue
                dst = b.gep(rows, [k.i64(t * s.p_pad)], inbounds=True, source_etype=T.I8)
                with b.if_then(ok):
                    _emit_row(k, s, xbase, kk, dst)
                srcs.append(dst)
            col = b.gep(k.scratch_ptr(), [b.mul(k4, k.i64(s.p_pad * 4))], inbounds=True, source_etype=T.I8)

            def chunk(c: ir.Value, masked: bool) -> None:
                vals = []
                for t in range(4):
                    ptr = b.gep(srcs[t], [b.mul(c, k.i64(16))], inbounds=True, source_etype=T.I8)
                    if masked:
                        v = b.call(maskload, [ptr, ir.Constant(T.I32, 1), mask_tail, zero16])
                    else:
                        v = b.load(ptr, typ=v16, align=1)
                    if s.offset:
                        v = b.xor(v, flip)
                    vals.append(b.select(valid[t], v, zero16))
                lo2 = b.shuffle_vector(vals[0], vals[1], ir.Constant(ir.VectorType(T.I32, 32), list(range(32))))
                hi2 = b.shuffle_vector(vals[2], vals[3], ir.Constant(ir.VectorType(T.I32, 32), list(range(32))))
                order = [t * 16 + p for p in range(16) for t in range(4)]
                inter = b.shuffle_vector(lo2, hi2, ir.Constant(ir.VectorType(T.I32, 64), order))
                b.store(inter, b.gep(col, [b.mul(c, k.i64(64))], inbounds=True, source_etype=T.I8), align=1)

            direct_tail = s.direct and tail < 16
            with k.loop(chunks - 1 if direct_tail else chunks, name="pc") as c:
                chunk(c, False)
            if direct_tail:
                chunk(k.i64(chunks - 1), True)


def _emit_row(k: KernelBuilder, s: _Conv, xbase: ir.Value, kk: ir.Value, dst: ir.Value) -> None:
    """dst[oy*OW + ox] = x[ci, oy*sh - pt + dy*dh, ox*sw - pl + dx*dw] for im2col row kk, the
    zero point where that is padding (bytes of x; the offset is applied later).

    Stride 1 with OW == W (a "same" convolution): the row is the channel plane shifted by one
    constant, so it is one contiguous copy, then the few border bytes are overwritten. Otherwise
    each output row is copied in three runs (padding, input, padding)."""
    from irc.targets.cpu.kernels.packed import _ceil_div, _clamp, _floor_div

    b = k.b
    khw = s.kh * s.kw
    ci, rem = b.sdiv(kk, k.i64(khw)), b.srem(kk, k.i64(khw))
    dy, dx = b.sdiv(rem, k.i64(s.kw)), b.srem(rem, k.i64(s.kw))
    plane = b.gep(xbase, [b.mul(ci, k.i64(s.h * s.w))], inbounds=True, source_etype=T.I8)
    shift = b.sub(b.mul(dx, k.i64(s.dw)), k.i64(s.pl))
    ox_lo = _clamp(b, k, _ceil_div(b, k, b.sub(k.i64(0), shift), s.sw), 0, s.ow)
    ox_hi = _clamp(b, k, b.add(_floor_div(b, k, b.sub(k.i64(s.w - 1), shift), s.sw), k.i64(1)), 0, s.ow)
    ox_hi = b.select(b.icmp_signed("<", ox_hi, ox_lo), ox_lo, ox_hi)
    pad_byte = (s.pad_value - s.offset) & 0xFF
    pad = ir.Constant(T.I8, pad_byte)

    def iy_of(oy):
        return b.add(b.sub(b.mul(oy, k.i64(s.sh)), k.i64(s.pt)), b.mul(dy, k.i64(s.dh)))

    def inside(iy):
        return b.and_(b.icmp_signed(">=", iy, k.i64(0)), b.icmp_signed("<", iy, k.i64(s.h)))

    if s.sh == 1 and s.sw == 1 and s.ow == s.w:
        # row[p] = plane[p + start] wherever the plane has that element: one copy. Positions
        # before or after the plane, whole rows above or below it, and (for a border tap) the
        # border columns of the rows inside are padding.
        start = b.add(b.mul(iy_of(k.i64(0)), k.i64(s.w)), shift)
        lo = _clamp(b, k, b.sub(k.i64(0), start), 0, s.p)
        hi = _clamp(b, k, b.sub(k.i64(s.h * s.w), start), 0, s.p)
        hi = b.select(b.icmp_signed("<", hi, lo), lo, hi)
        memcpy = k.state.declare("llvm.memcpy.p0.p0.i64", T.VOID, [T.PTR, T.PTR, T.I64, T.I1])
        memset = k.state.declare("llvm.memset.p0.i64", T.VOID, [T.PTR, T.I8, T.I64, T.I1])
        no = ir.Constant(T.I1, 0)
        b.call(memcpy, [b.gep(dst, [lo], source_etype=T.I8), b.gep(plane, [b.add(lo, start)], source_etype=T.I8),
                        b.sub(hi, lo), no])
        b.call(memset, [dst, pad, lo, no])
        b.call(memset, [b.gep(dst, [hi], source_etype=T.I8), pad, b.sub(k.i64(s.p), hi), no])
        # Rows inside the plane: iy = oy - pt + dy*dh in [0, H).
        first = b.sub(k.i64(s.pt), b.mul(dy, k.i64(s.dh)))
        oy_lo = _clamp(b, k, first, 0, s.oh)
        oy_hi = _clamp(b, k, b.add(first, k.i64(s.h)), 0, s.oh)
        oy_hi = b.select(b.icmp_signed("<", oy_hi, oy_lo), oy_lo, oy_hi)
        b.call(memset, [dst, pad, b.mul(oy_lo, k.i64(s.ow)), no])
        tail_at = b.mul(oy_hi, k.i64(s.ow))
        b.call(memset, [b.gep(dst, [tail_at], source_etype=T.I8), pad, b.sub(k.i64(s.p), tail_at), no])
        border = b.or_(b.icmp_signed(">", ox_lo, k.i64(0)), b.icmp_signed("<", ox_hi, k.i64(s.ow)))
        with b.if_then(border):
            with k.loop(oy_hi, start=oy_lo, name="oy") as oy:
                out_row = b.gep(dst, [b.mul(oy, k.i64(s.ow))], inbounds=True, source_etype=T.I8)
                with k.loop(ox_lo, name="z0") as ox:
                    b.store(pad, b.gep(out_row, [ox], source_etype=T.I8))
                with k.loop(s.ow, start=ox_hi, name="z1") as ox:
                    b.store(pad, b.gep(out_row, [ox], source_etype=T.I8))
        return
    with k.loop(s.oh, name="oy") as oy:
        iy = iy_of(oy)
        out_row = b.gep(dst, [b.mul(oy, k.i64(s.ow))], inbounds=True, source_etype=T.I8)
        with b.if_else(inside(iy)) as (then, other):
            with then:
                src = b.gep(plane, [b.add(b.mul(iy, k.i64(s.w)), shift)], source_etype=T.I8)
                with k.loop(ox_lo, name="z0") as ox:
                    b.store(pad, b.gep(out_row, [ox], source_etype=T.I8))
                with k.loop(ox_hi, start=ox_lo, name="cp") as ox:
                    v = b.load(b.gep(src, [b.mul(ox, k.i64(s.sw))], source_etype=T.I8), typ=T.I8)
                    b.store(v, b.gep(out_row, [ox], source_etype=T.I8))
                with k.loop(s.ow, start=ox_hi, name="z1") as ox:
                    b.store(pad, b.gep(out_row, [ox], source_etype=T.I8))
            with other:
                k.memset(out_row, pad_byte, s.ow)


# ---------------------------------------------------------------------------- ONNX integer ops


def _zero_point(k: KernelBuilder, node: Node, i: int, index: ir.Value) -> ir.Value:
    """Input ``i`` (a zero point: scalar or one per ``index``) as i32, 0 when absent."""
    if len(node.inputs) <= i:
        return ir.Constant(T.I32, 0)
    buf = k.ins[i]
    v = k.load(buf, index if buf.size > 1 else k.i64(0))
    return convert(k, v, buf.dtype, DType.i32)


@cpu_kernel("matmul_integer")
def _matmul_integer(k: KernelBuilder, node: Node) -> None:
    """(a - a_zero_point) @ (b - b_zero_point) in wrapping int32, a plain loop nest."""
    y, a, bm = k.outs[0], k.ins[0], k.ins[1]
    m, kk = a.shape
    n = bm.shape[1]
    with k.parallel_loop(m, work_per_iter=n * kk) as i:
        b = k.b
        za = _zero_point(k, node, 2, i)
        acc_slot = _entry_alloca(k, T.I32)
        with k.loop(n, name="j") as j:
            zb = _zero_point(k, node, 3, j)
            b.store(ir.Constant(T.I32, 0), acc_slot)
            with k.loop(kk, name="k") as t:
                av = b.sub(convert(k, k.load(a, b.add(b.mul(i, k.i64(kk)), t)), a.dtype, DType.i32), za)
                bv = b.sub(convert(k, k.load(bm, b.add(b.mul(t, k.i64(n)), j)), bm.dtype, DType.i32), zb)
                b.store(b.add(b.load(acc_slot, typ=T.I32), b.mul(av, bv)), acc_slot)
            k.store(y, b.add(b.mul(i, k.i64(n)), j), b.load(acc_slot, typ=T.I32))


@cpu_kernel("conv_integer")
def _conv_integer(k: KernelBuilder, node: Node) -> None:
    """ONNX ConvInteger (2-D) as a direct loop nest in wrapping int32; padding contributes 0."""
    y, x, w = k.outs[0], k.ins[0], k.ins[1]
    if x.type.rank != 4:
        from irc.errors import UnsupportedOpError

        raise UnsupportedOpError("the cpu target's conv_integer is 2-D", node=node.label, op=node.op)
    a = node.attrs
    nb, c, h, wd = x.shape
    m, cg, kh, kw = w.shape
    oh, ow = y.shape[2:]
    mg = m // a["group"]
    (sh, sw), (dh, dw), pads = a["strides"], a["dilations"], a["pads"]
    with k.parallel_loop(nb * m, work_per_iter=oh * ow * cg * kh * kw) as nm:
        b = k.b
        img, oc = b.sdiv(nm, k.i64(m)), b.srem(nm, k.i64(m))
        g = b.sdiv(oc, k.i64(mg))
        zx = _zero_point(k, node, 2, k.i64(0))
        zw = _zero_point(k, node, 3, oc)
        acc_slot = _entry_alloca(k, T.I32)
        with k.nest((oh, ow), name="o") as (oy, ox):
            b.store(ir.Constant(T.I32, 0), acc_slot)
            with k.nest((cg, kh, kw), name="t") as (ci, ky, kx):
                iy = b.add(b.sub(b.mul(oy, k.i64(sh)), k.i64(pads[0])), b.mul(ky, k.i64(dh)))
                ix = b.add(b.sub(b.mul(ox, k.i64(sw)), k.i64(pads[1])), b.mul(kx, k.i64(dw)))
                inside = b.and_(b.and_(b.icmp_signed(">=", iy, k.i64(0)), b.icmp_signed("<", iy, k.i64(h))),
                                b.and_(b.icmp_signed(">=", ix, k.i64(0)), b.icmp_signed("<", ix, k.i64(wd))))
                with b.if_then(inside):
                    chan = b.add(b.mul(g, k.i64(cg)), ci)
                    xo = b.add(b.mul(b.add(b.mul(b.add(b.mul(img, k.i64(c)), chan), k.i64(h)), iy), k.i64(wd)), ix)
                    wo = b.add(b.mul(b.add(b.mul(b.add(b.mul(oc, k.i64(cg)), ci), k.i64(kh)), ky), k.i64(kw)), kx)
                    xv = b.sub(convert(k, k.load(x, xo), x.dtype, DType.i32), zx)
                    wv = b.sub(convert(k, k.load(w, wo), w.dtype, DType.i32), zw)
                    b.store(b.add(b.load(acc_slot, typ=T.I32), b.mul(xv, wv)), acc_slot)
            k.store(y, b.add(b.mul(b.add(b.mul(nm, k.i64(oh)), oy), k.i64(ow)), ox), b.load(acc_slot, typ=T.I32))
