"""Kernels of the lowered GEMM ops: ``gemm_packed`` (dense layers) and ``conv_gemm``
(convolution as im2col + GEMM), both running the packed GEMM engine (irc.targets.cpu.gemm).

``conv_gemm`` works image by image and group by group: the im2col matrix [K, OH*OW] of the
image is written into scratch with row copies split at the padding borders (so the copies
vectorise); then the GEMM (packed weights x im2col) writes NCHW output with the epilogue
fused. A 1x1, stride 1, unpadded convolution skips im2col: the image already is its im2col
matrix. Threads share the work in one of two ways, by this rule:

- batch-parallel, when there are at least as many images as threads and they divide evenly
  (or there are four or more per thread, so the imbalance is at most a quarter): each thread
  takes whole images, with its own im2col buffer, in one parallel region per convolution.
  No thread waits on another inside the layer and each image's data stays in one core's
  cache; per-image parallelism would open two regions per image, each a few tens of
  microseconds of work on small images (LeNet's second conv: 128 regions of 0.2 M MACs).
- otherwise (batch 1, say) inside each image: im2col in parallel over its rows, the GEMM in
  parallel over column panels (or row panels when those are few).

im2col writes the GEMM's packed column panels directly (each row is built in a small buffer,
then cut into panels), so the matrix is written once and read once; a separate im2col and
packing step would stream it through memory three times.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

from llvmlite import ir

from irc.ir.graph import Node
from irc.targets.cpu import gemm
from irc.targets.cpu.kernel import KernelBuilder
from irc.targets.cpu.kernels.registry import CpuContext, cpu_kernel
from irc.targets.cpu.lowering.ops import conv_matrix_shape
from irc.targets.llvm import lltypes as T


def _epilogue(node: Node, bias: str) -> gemm.Epilogue:
    a = node.attrs
    return gemm.Epilogue(bias=bias if len(node.inputs) > 2 else "none", residual=len(node.inputs) > 3,
                         act=a["act"], alpha=a["act_alpha"], beta=a["act_beta"])


def tile_for(m: int, n: int, nr: int, vector_bits: int) -> gemm.Tile:
    """The cost rule's tile among those with the panel width ``nr`` the weights were packed with."""
    cands = [t for t, _ in gemm.tile_candidates(vector_bits) if t.nr == nr]
    if not cands:
        return gemm.Tile(6, nr, vector_bits // 32)
    best = min(cands, key=lambda t: math.ceil(m / t.mr) * t.mr)
    return best


def tile_for_rows(m: int, n: int, mr: int, vector_bits: int) -> gemm.Tile:
    cands = [t for t, _ in gemm.tile_candidates(vector_bits) if t.mr == mr]
    if not cands:
        return gemm.Tile(mr, vector_bits // 32 * 4, vector_bits // 32)
    return min(cands, key=lambda t: math.ceil(n / t.nr) * t.nr)


# ---------------------------------------------------------------------------- dense


def _dense_plan(node: Node, ctx: CpuContext) -> gemm.GemmPlan:
    a, bp = node.inputs[0].type, node.inputs[1].type
    m, kdim = a.shape
    n = node.attrs["n"]
    return gemm.GemmPlan(m, n, kdim, tile_for(m, n, bp.shape[2], ctx.vector_bits), ctx.threads)


def _dense_scratch(node: Node, ctx: CpuContext) -> int:
    return gemm.scratch_bytes(_dense_plan(node, ctx), pack_a=True, pack_b=False)


@cpu_kernel("gemm_packed", scratch=_dense_scratch)
def _gemm_packed(k: KernelBuilder, node: Node) -> None:
    plan = _dense_plan(node, k.state.ctx)
    y, a, bp = k.outs[0], k.ins[0], k.ins[1]
    gemm.emit_gemm(
        k, plan,
        a=gemm.pack_rows_of(lambda kb: kb.ptr(a), plan.m, plan.k, plan.tile.mr),
        b=gemm.packed_constant(bp.index, plan.tile.nr, plan.k),
        c_ptr=lambda kb: kb.ptr(y), ldc=plan.n, epi=_epilogue(node, "col"),
        bias_ptr=(lambda kb: kb.ptr(k.ins[2])) if len(k.ins) > 2 else None,
        residual_ptr=(lambda kb: kb.ptr(k.ins[3])) if len(k.ins) > 3 else None,
        scratch=lambda kb: kb.scratch_ptr(),
    )


# ---------------------------------------------------------------------------- convolution


class _ConvShape:
    """Static sizes of one conv_gemm node."""

    def __init__(self, node: Node):
        x, wp = node.inputs[0].type, node.inputs[1].type
        y = node.outputs[0].type
        a = node.attrs
        self.n, self.c, self.h, self.w = x.shape
        self.oh, self.ow = y.shape[2:]
        self.group = a["group"]
        self.cout = a["cout"]
        self.cin_g = self.c // self.group
        self.cout_g = self.cout // self.group
        self.kh, self.kw = a["kernel_shape"]
        self.sh, self.sw = a["strides"]
        self.dh, self.dw = a["dilations"]
        self.pt, self.pl = a["pads"][0], a["pads"][1]
        self.pb, self.pr = a["pads"][2], a["pads"][3]
        self.k = self.cin_g * self.kh * self.kw
        self.p = self.oh * self.ow
        self.mr = wp.shape[3]

    @property
    def direct(self) -> bool:
        """1x1, stride 1, no padding: the image is its own im2col matrix."""
        return (self.kh, self.kw, self.sh, self.sw, self.pt, self.pl, self.pb, self.pr) == (1, 1, 1, 1, 0, 0, 0, 0)

    def plan(self, ctx: CpuContext) -> gemm.GemmPlan:
        return gemm.GemmPlan(self.cout_g, self.p, self.k, tile_for_rows(self.cout_g, self.p, self.mr, ctx.vector_bits),
                             ctx.threads)

    def col_bytes(self, plan: gemm.GemmPlan) -> int:
        """The im2col matrix, already in the GEMM's packed layout [panels, K, nr] (the columns
        past P of the last panel zero)."""
        return 0 if self.direct else _round64(plan.n_panels * plan.tile.nr * self.k * 4)

    def row_bytes(self, plan: gemm.GemmPlan) -> int:
        """One im2col row, built contiguously before it is cut into panels."""
        return 0 if self.direct else _round64(plan.n_panels * plan.tile.nr * 4)

    def layout(self, plan: gemm.GemmPlan, row_buffers: int) -> tuple[int, int, int]:
        """Offsets of the row buffers and the GEMM's scratch in a region that starts with the
        im2col matrix, and the region's size."""
        rows_at = self.col_bytes(plan)
        gemm_at = rows_at + self.row_bytes(plan) * row_buffers
        return rows_at, gemm_at, gemm_at + gemm.scratch_bytes(plan, pack_a=False, pack_b=self.direct)


def _round64(n: int) -> int:
    return (n + 63) // 64 * 64


def batch_parallel(s: _ConvShape, threads: int) -> bool:
    """The rule of the module docstring: whole images per thread?"""
    return threads > 1 and s.n >= threads and (s.n % threads == 0 or s.n >= 4 * threads)


def _conv_scratch(node: Node, ctx: CpuContext) -> int:
    s = _ConvShape(node)
    if batch_parallel(s, ctx.threads):
        return s.layout(dataclasses.replace(s.plan(ctx), threads=1), 1)[2] * ctx.threads
    return s.layout(s.plan(ctx), ctx.threads)[2]


@cpu_kernel("conv_gemm", scratch=_conv_scratch)
def _conv_gemm(k: KernelBuilder, node: Node) -> None:
    s = _ConvShape(node)
    plan = s.plan(k.state.ctx)
    y, x, wp = k.outs[0], k.ins[0], k.ins[1]
    in_image = s.c * s.h * s.w
    out_image = s.cout * s.p

    def x_group(kb: KernelBuilder) -> ir.Value:
        img, g = kb.captured
        off = kb.b.add(kb.b.mul(img, kb.i64(in_image)), kb.b.mul(g, kb.i64(s.cin_g * s.h * s.w)))
        return kb.b.gep(kb.ptr(x), [off], inbounds=True, source_etype=T.F32)

    def y_group(kb: KernelBuilder, buf) -> ir.Value:
        img, g = kb.captured
        off = kb.b.add(kb.b.mul(img, kb.i64(out_image)), kb.b.mul(g, kb.i64(s.cout_g * s.p)))
        return kb.b.gep(kb.ptr(buf), [off], inbounds=True, source_etype=T.F32)

    def weights(kb: KernelBuilder) -> ir.Value:
        _, g = kb.captured
        off = kb.b.mul(g, kb.i64(wp.shape[1] * wp.shape[2] * wp.shape[3]))
        return kb.b.gep(kb.ptr(wp), [off], inbounds=True, source_etype=T.F32)

    def bias(kb: KernelBuilder) -> ir.Value:
        _, g = kb.captured
        return kb.b.gep(kb.ptr(k.ins[2]), [kb.b.mul(g, kb.i64(s.cout_g))], inbounds=True, source_etype=T.F32)

    def image(plan: gemm.GemmPlan, img: ir.Value, region: Callable[[KernelBuilder], ir.Value],
              row_buffers: int) -> None:
        """One image, group by group: im2col into the region (unless direct), then the GEMM."""
        rows_at, gemm_at, _ = s.layout(plan, row_buffers)

        def at(offset: int) -> Callable[[KernelBuilder], ir.Value]:
            return lambda kb: kb.b.gep(region(kb), [kb.i64(offset)], inbounds=True, source_etype=T.I8)

        with k.loop(s.group, name="grp") as g:
            if s.direct:
                source = gemm.pack_cols_of(x_group, s.p, s.p, plan.tile.nr)
            else:
                _emit_im2col(k, s, plan, x, (img, g), region, at(rows_at), row_buffers)
                source = gemm.packed_constant(0, plan.tile.nr, s.k, base=region)
            gemm.emit_gemm(
                k, plan,
                a=gemm.packed_constant(wp.index, s.mr, s.k, base=weights),
                b=source,
                c_ptr=lambda kb: y_group(kb, y), ldc=s.p, epi=_epilogue(node, "row"),
                bias_ptr=bias if len(k.ins) > 2 else None,
                residual_ptr=(lambda kb: y_group(kb, k.ins[3])) if len(k.ins) > 3 else None,
                scratch=at(gemm_at), captures=(img, g),
            )

    threads = k.state.ctx.threads
    if batch_parallel(s, threads):
        plan1 = dataclasses.replace(plan, threads=1)
        per_thread = s.layout(plan1, 1)[2]
        with k.parallel_chunks(s.n, s.cout * s.p * s.k, max_workers=threads) as (lo, hi, tid, _):
            mine = k.b.gep(k.scratch_ptr(), [k.b.mul(tid, k.i64(per_thread))], inbounds=True, source_etype=T.I8)
            with k.loop(hi, start=lo, name="img") as img:
                image(plan1, img, lambda kb: mine, 1)
    else:
        with k.loop(s.n, name="img") as img:
            image(plan, img, lambda kb: kb.scratch_ptr(), threads)


def _emit_im2col(k: KernelBuilder, s: _ConvShape, plan: gemm.GemmPlan, x, captures,
                 col: Callable[[KernelBuilder], ir.Value], rows: Callable[[KernelBuilder], ir.Value],
                 workers: int) -> None:
    """col[panel, kk, c] = x[img, g*Cin_g + ci, oy*sh - pt + dy*dh, ox*sw - pl + dx*dw] (0 outside),
    oy*OW + ox = panel*nr + c, kk = (ci*kh + dy)*kw + dx. Rows kk in parallel: each is built
    contiguously in the thread's row buffer, split into zero / copy / zero runs (so the copies
    vectorise), then cut into its panels; one pass over the matrix, which the GEMM reads as is."""
    khw = s.kh * s.kw
    nr, panels = plan.tile.nr, plan.n_panels
    with k.parallel_chunks(s.k, s.p, captures=captures, max_workers=workers) as (lo, hi, tid, caps):
        img, g = caps
        b = k.b
        xbase = b.gep(k.ptr(x), [b.add(b.mul(img, k.i64(s.c * s.h * s.w)), b.mul(g, k.i64(s.cin_g * s.h * s.w)))],
                      inbounds=True, source_etype=T.F32)
        row = b.gep(rows(k), [b.mul(tid, k.i64(s.row_bytes(plan)))], inbounds=True, source_etype=T.I8)
        if panels * nr > s.p:
            k.memset(b.gep(row, [k.i64(s.p)], inbounds=True, source_etype=T.F32), 0, (panels * nr - s.p) * 4)
        dst_base = col(k)
        with k.loop(hi, start=lo, name="kk") as kk:
            ci = b.sdiv(kk, k.i64(khw))
            rem = b.srem(kk, k.i64(khw))
            dy = b.sdiv(rem, k.i64(s.kw))
            dx = b.srem(rem, k.i64(s.kw))
            plane = b.gep(xbase, [b.mul(ci, k.i64(s.h * s.w))], inbounds=True, source_etype=T.F32)
            # Valid ox range for this dx: 0 <= ox*sw - pl + dx*dw < W.
            shift = b.sub(b.mul(dx, k.i64(s.dw)), k.i64(s.pl))  # ix = ox*sw + shift
            ox_lo = _clamp(b, k, _ceil_div(b, k, b.sub(k.i64(0), shift), s.sw), 0, s.ow)
            ox_hi = _clamp(b, k, b.add(_floor_div(b, k, b.sub(k.i64(s.w - 1), shift), s.sw), k.i64(1)), 0, s.ow)
            ox_hi = b.select(b.icmp_signed("<", ox_hi, ox_lo), ox_lo, ox_hi)
            with k.loop(s.oh, name="oy") as oy:
                iy = b.add(b.sub(b.mul(oy, k.i64(s.sh)), k.i64(s.pt)), b.mul(dy, k.i64(s.dh)))
                inside = b.and_(b.icmp_signed(">=", iy, k.i64(0)), b.icmp_signed("<", iy, k.i64(s.h)))
                out_row = b.gep(row, [b.mul(oy, k.i64(s.ow))], inbounds=True, source_etype=T.F32)
                with b.if_else(inside) as (then, other):
                    with then:
                        src = b.gep(plane, [b.add(b.mul(iy, k.i64(s.w)), shift)], source_etype=T.F32)
                        with k.loop(ox_lo, name="z0") as ox:
                            b.store(ir.Constant(T.F32, 0.0), b.gep(out_row, [ox], source_etype=T.F32))
                        with k.loop(ox_hi, start=ox_lo, name="cp") as ox:
                            v = b.load(b.gep(src, [b.mul(ox, k.i64(s.sw))], source_etype=T.F32), typ=T.F32)
                            b.store(v, b.gep(out_row, [ox], source_etype=T.F32))
                        with k.loop(s.ow, start=ox_hi, name="z1") as ox:
                            b.store(ir.Constant(T.F32, 0.0), b.gep(out_row, [ox], source_etype=T.F32))
                    with other:
                        k.memset(out_row, 0, s.ow * 4)
            with k.loop(panels, name="cut") as j:
                dst = b.gep(dst_base, [b.mul(b.add(b.mul(j, k.i64(s.k)), kk), k.i64(nr))], inbounds=True,
                            source_etype=T.F32)
                k.memcpy(dst, b.gep(row, [b.mul(j, k.i64(nr))], inbounds=True, source_etype=T.F32), nr * 4)


def _floor_div(b: ir.IRBuilder, k: KernelBuilder, a: ir.Value, d: int) -> ir.Value:
    q = b.sdiv(a, k.i64(d))
    fix = b.and_(b.icmp_signed("!=", b.srem(a, k.i64(d)), k.i64(0)), b.icmp_signed("<", a, k.i64(0)))
    return b.sub(q, b.zext(fix, T.I64))


def _ceil_div(b: ir.IRBuilder, k: KernelBuilder, a: ir.Value, d: int) -> ir.Value:
    return b.sub(k.i64(0), _floor_div(b, k, b.sub(k.i64(0), a), d))


def _clamp(b: ir.IRBuilder, k: KernelBuilder, v: ir.Value, lo: int, hi: int) -> ir.Value:
    v = b.select(b.icmp_signed("<", v, k.i64(lo)), k.i64(lo), v)
    return b.select(b.icmp_signed(">", v, k.i64(hi)), k.i64(hi), v)


# ---------------------------------------------------------------------------- run-time weight packing


@cpu_kernel("pack_conv_weights")
def _pack_conv_weights(k: KernelBuilder, node: Node) -> None:
    """dst[g, p, kk, r] = W_g[p*MR + r, kk] (0 past the rows): the layout of lowering.ops.pack_panels,
    W_g as lowering.ops.conv_weight_matrices defines it. Written in order; the reads gather."""
    y, w = k.outs[0], k.ins[0]
    group, panels, kdim, mr = y.shape
    o, i, kh, kw = w.shape
    taps = kh * kw
    og = o // group
    layout = node.attrs["layout"]
    rows, _ = conv_matrix_shape(w.shape, group, layout)
    with k.parallel_loop(group * panels, kdim * mr, name="gp") as gp:
        b = k.b  # the parallel body's builder
        g = b.sdiv(gp, k.i64(panels))
        p = b.srem(gp, k.i64(panels))
        with k.loop(kdim, name="kk") as kk:
            base = b.mul(b.add(b.mul(gp, k.i64(kdim)), kk), k.i64(mr))
            for r in range(mr):
                row = b.add(b.mul(p, k.i64(mr)), k.i64(r))
                inside = b.icmp_signed("<", row, k.i64(rows))
                safe = b.select(inside, row, k.i64(0))
                if layout == "flipped":  # row m, kk = (c, tap): w[g*og + c, m, taps-1-tap]
                    c = b.sdiv(kk, k.i64(taps))
                    tap = b.srem(kk, k.i64(taps))
                    src = b.add(b.mul(b.add(b.mul(b.add(b.mul(g, k.i64(og)), c), k.i64(i)), safe), k.i64(taps)),
                                b.sub(k.i64(taps - 1), tap))
                elif layout == "taps":  # row (m, tap), kk = c: w[g*og + kk, m, tap]
                    src = b.add(b.mul(b.add(b.mul(g, k.i64(og)), kk), k.i64(i * taps)), safe)
                else:
                    src = b.add(b.mul(b.add(b.mul(g, k.i64(og)), safe), k.i64(kdim)), kk)
                v = b.load(b.gep(k.ptr(w), [src], inbounds=True, source_etype=T.F32), typ=T.F32)
                v = b.select(inside, v, ir.Constant(T.F32, 0.0))
                b.store(v, b.gep(k.ptr(y), [b.add(base, k.i64(r))], inbounds=True, source_etype=T.F32))
