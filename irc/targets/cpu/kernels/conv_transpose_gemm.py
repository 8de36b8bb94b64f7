"""Kernel of ``conv_transpose_gemm``: a strided conv_transpose (the data gradient of a strided
conv) as GEMM + col2im on the packed GEMM engine.

Per image and group: the columns col [M/g*kh*kw, H*W] = W_g @ x_g come out of the GEMM (W_g
packed, x_g's rows packed per K slice as for a 1x1 convolution), then col2im adds each column
row into the output plane of its channel at its tap's offset. The GEMM does the multiply-adds
(C/g per column element); col2im adds each column element once, so it costs a C/g-th of the
GEMM's work. Stride-1 conv_transposes are plain convolutions (im2col_gemm lowers them to
conv_gemm with flipped weights) and do not come here.

Threads: whole images per thread when the batch divides among them (as conv_gemm does, same
rule), each with its own column buffer; otherwise image by image, the GEMM split over its
column panels and col2im over output channels (the taps of one channel write the same
outputs, so a channel is never split).
"""

from __future__ import annotations

from llvmlite import ir

from irc.ir.graph import Node
from irc.targets.cpu import gemm
from irc.targets.cpu.kernel import KernelBuilder
from irc.targets.cpu.kernels.packed import _ceil_div, _clamp, _floor_div, _round64, tile_for_rows
from irc.targets.cpu.kernels.registry import CpuContext, cpu_kernel
from irc.targets.llvm import lltypes as T


class _Shape:
    """Static sizes of one conv_transpose_gemm node."""

    def __init__(self, node: Node):
        x, wp, y = node.inputs[0].type, node.inputs[1].type, node.outputs[0].type
        a = node.attrs
        self.n, self.c, self.h, self.w = x.shape
        self.m, self.oh, self.ow = y.shape[1:]
        self.group = a["group"]
        self.cg, self.mg = self.c // self.group, self.m // self.group
        self.kh, self.kw = a["kernel_shape"]
        self.sy, self.sx = a["strides"]
        self.dy, self.dx = a["dilations"]
        self.pt, self.pl = a["pads"][:2]
        self.p = self.h * self.w
        self.rows = self.mg * self.kh * self.kw
        self.mr = wp.shape[3]
        self.bias = len(node.inputs) > 2

    def plan(self, ctx: CpuContext, threads: int) -> gemm.GemmPlan:
        return gemm.GemmPlan(self.rows, self.p, self.cg, tile_for_rows(self.rows, self.p, self.mr, ctx.vector_bits),
                             threads)

    def per_image(self, ctx: CpuContext, threads: int) -> tuple[int, int]:
        """(GEMM scratch offset, bytes): the column buffer, then the GEMM's packing buffers."""
        col = _round64(self.rows * self.p * 4)
        return col, col + gemm.scratch_bytes(self.plan(ctx, threads), pack_a=False, pack_b=True)

    def batch_parallel(self, threads: int) -> bool:
        return threads > 1 and self.n >= threads and (self.n % threads == 0 or self.n >= 4 * threads)


def _scratch(node: Node, ctx: CpuContext) -> int:
    s = _Shape(node)
    if s.batch_parallel(ctx.threads):
        return s.per_image(ctx, 1)[1] * ctx.threads
    return s.per_image(ctx, ctx.threads)[1]


@cpu_kernel("conv_transpose_gemm", scratch=_scratch)
def _conv_transpose_gemm(k: KernelBuilder, node: Node) -> None:
    ctx = k.state.ctx
    s = _Shape(node)
    y, x, wp = k.outs[0], k.ins[0], k.ins[1]

    def image(img: ir.Value, region, threads: int) -> None:
        plan = s.plan(ctx, threads)
        gemm_at, _ = s.per_image(ctx, threads)

        def x_group(kb: KernelBuilder) -> ir.Value:
            i, g = kb.captured
            off = kb.b.mul(kb.b.add(kb.b.mul(i, kb.i64(s.group)), g), kb.i64(s.cg * s.p))
            return kb.b.gep(kb.ptr(x), [off], inbounds=True, source_etype=T.F32)

        def weights(kb: KernelBuilder) -> ir.Value:
            _, g = kb.captured
            off = kb.b.mul(g, kb.i64(wp.shape[1] * wp.shape[2] * wp.shape[3]))
            return kb.b.gep(kb.ptr(wp), [off], inbounds=True, source_etype=T.F32)

        with k.loop(s.group, name="grp") as g:
            gemm.emit_gemm(
                k, plan,
                a=gemm.packed_constant(wp.index, s.mr, s.cg, base=weights),
                b=gemm.pack_cols_of(x_group, s.p, s.p, plan.tile.nr),
                c_ptr=lambda kb: region(kb), ldc=s.p, epi=gemm.Epilogue(),
                scratch=lambda kb: kb.b.gep(region(kb), [kb.i64(gemm_at)], inbounds=True, source_etype=T.I8),
                captures=(img, g),
            )
            _col2im(k, s, y, img, g, region, threads)

    threads = ctx.threads
    if s.batch_parallel(threads):
        per_thread = s.per_image(ctx, 1)[1]
        with k.parallel_chunks(s.n, s.m * s.p * s.cg * s.kh * s.kw, max_workers=threads) as (lo, hi, tid, _):
            mine = k.b.gep(k.scratch_ptr(), [k.b.mul(tid, k.i64(per_thread))], inbounds=True, source_etype=T.I8)
            with k.loop(hi, start=lo, name="img") as img:
                image(img, lambda kb: mine, 1)
    else:
        with k.loop(s.n, name="img") as img:
            image(img, lambda kb: kb.scratch_ptr(), threads)


def _col2im(k: KernelBuilder, s: _Shape, y, img: ir.Value, g: ir.Value, col, workers: int) -> None:
    """y[img, g*Mg + m, iy*sy - pt + dy*ty, ix*sx - pl + dx*tx] += col[(m, ty, tx), iy*W + ix]
    (starting from the bias, or 0), for the output channels m of group g; channels in parallel."""
    plane = s.oh * s.ow
    with k.parallel_chunks(s.mg, s.kh * s.kw * s.p, captures=(img, g), max_workers=workers) as (lo, hi, _, caps):
        b = k.b
        img_, g_ = caps
        col_base = col(k)
        with k.loop(hi, start=lo, name="m") as m:
            chan = b.add(b.mul(g_, k.i64(s.mg)), m)
            out = b.gep(k.ptr(y), [b.mul(b.add(b.mul(img_, k.i64(s.m)), chan), k.i64(plane))], inbounds=True,
                        source_etype=T.F32)
            if s.bias:
                start = b.load(b.gep(k.ptr(k.ins[2]), [chan], inbounds=True, source_etype=T.F32), typ=T.F32)
                with k.loop(plane, name="fill") as i:
                    b.store(start, b.gep(out, [i], inbounds=True, source_etype=T.F32))
            else:
                k.memset(out, 0, plane * 4)
            with k.loop(s.kh, name="ty") as ty:
                with k.loop(s.kw, name="tx") as tx:
                    row = b.add(b.mul(b.add(b.mul(m, k.i64(s.kh)), ty), k.i64(s.kw)), tx)
                    src_row = b.gep(col_base, [b.mul(row, k.i64(s.p))], inbounds=True, source_etype=T.F32)
                    # Valid ix for this tap: 0 <= ix*sx + shift < OW.
                    shift = b.sub(b.mul(tx, k.i64(s.dx)), k.i64(s.pl))
                    ix_lo = _clamp(b, k, _ceil_div(b, k, b.sub(k.i64(0), shift), s.sx), 0, s.w)
                    ix_hi = _clamp(b, k, b.add(_floor_div(b, k, b.sub(k.i64(s.ow - 1), shift), s.sx), k.i64(1)), 0, s.w)
                    with k.loop(s.h, name="iy") as iy:
                        oy = b.add(b.sub(b.mul(iy, k.i64(s.sy)), k.i64(s.pt)), b.mul(ty, k.i64(s.dy)))
                        inside = b.and_(b.icmp_signed(">=", oy, k.i64(0)), b.icmp_signed("<", oy, k.i64(s.oh)))
                        with b.if_then(inside):
                            dst = b.gep(out, [b.add(b.mul(oy, k.i64(s.ow)), shift)], source_etype=T.F32)
                            src = b.gep(src_row, [b.mul(iy, k.i64(s.w))], inbounds=True, source_etype=T.F32)
                            with k.loop(ix_hi, start=ix_lo, name="ix") as ix:
                                p = b.gep(dst, [b.mul(ix, k.i64(s.sx))], source_etype=T.F32)
                                v = b.load(b.gep(src, [ix], inbounds=True, source_etype=T.F32), typ=T.F32)
                                b.store(b.fadd(b.load(p, typ=T.F32), v), p)

