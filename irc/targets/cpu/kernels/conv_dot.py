"""Kernel of ``conv_dot``: a 2-D convolution whose kernel window is larger than its output, as
the weight-gradient convolutions of a train step are (dy is their kernel, 32x32 say, and the
kernel taps their output, 3x3).

Read as a GEMM, y[b, m, q] = sum over r = (c, ty, tx) of w[m, r] * window(b, q)[r] reduces
along the window, and both operands are contiguous along it: a row of w as it lies, and the
window of output q, gathered into a buffer. So the micro-kernel reduces along vector lanes
(dot products): an MR x NQ tile of outputs is MR*NQ vector accumulators; per step it loads MR
vectors of w and NQ of windows and does MR*NQ fused multiply-adds, and the lanes are summed
once at the end. No operand is transposed or packed, which the outer-product engine
(gemm.py) would need here for both.

Work per thread: units of (images, group, block of output channels); a unit holds one image,
or a few when each has only one or two outputs (images_per_unit), so the columns of the GEMM
are (image, output) pairs. A unit walks its input channels; each channel's plane is zero
padded once into scratch (when the conv pads), and its window rows are gathered CHUNK floats
at a time (the unit's windows x CHUNK floats stay in L1 while every row tile of w streams
past); small planes go several channels to a chunk. Units split the output channels into
blocks only when the images and groups alone would leave threads idle.
"""

from __future__ import annotations

from llvmlite import ir

from irc.ir.graph import Node
from irc.targets.cpu.kernel import KernelBuilder, ModuleState
from irc.targets.cpu.kernels.registry import CpuContext, cpu_kernel
from irc.targets.llvm import lltypes as T

#: Window floats gathered per chunk: Q windows x CHUNK floats (18 KB for a 3x3 kernel) stay in L1.
CHUNK = 512


def dot_tile(cols: int, vl: int) -> tuple[int, int]:
    """(MR, NQ) of the micro-kernel for ``cols`` windows: MR*NQ accumulators plus NQ window
    vectors fit the vector registers (16 with AVX2, 32 with AVX-512); w's vectors come from
    memory as FMA operands."""
    if vl >= 16:
        return {1: (16, 1), 2: (12, 2), 3: (8, 3)}.get(cols, (6, 4))
    return {1: (8, 1), 2: (5, 2), 4: (5, 2)}.get(cols, (4, 3))


def images_per_unit(n: int, q: int) -> int:
    """Images whose windows share a pass over w. One when each has several outputs; with one or
    two (a 1x1 convolution's weight gradient), a few, so that each row of w loaded feeds several
    accumulators instead of one (else streaming w bounds the speed)."""
    if q >= 3:
        return 1
    return next(d for d in (4 // q, 2, 1) if n % d == 0)


def _round64(n: int) -> int:
    return (n + 63) // 64 * 64


class DotShape:
    """Static sizes of one conv_dot node and its schedule for ``threads`` threads."""

    def __init__(self, node: Node, threads: int, vector_bits: int):
        x, w, y = node.inputs[0].type, node.inputs[1].type, node.outputs[0].type
        a = node.attrs
        self.n, self.c, self.h, self.w = x.shape
        self.m, self.cg, self.kh, self.kw = w.shape
        self.oh, self.ow = y.shape[2:]
        self.group = a["group"]
        self.mg = self.m // self.group
        self.sy, self.sx = a["strides"]
        self.dy, self.dx = a["dilations"]
        self.pt, self.pl, self.pb, self.pr = a["pads"]
        self.hp, self.wp = self.h + self.pt + self.pb, self.w + self.pl + self.pr
        self.padded = any(a["pads"])
        self.q = self.oh * self.ow
        self.taps = self.kh * self.kw
        self.vl = vector_bits // 32
        # A chunk is ``chans`` whole windows (small planes) or ``rows`` rows of one (large ones).
        self.rows = max(1, min(self.kh, CHUNK // self.kw))
        self.chans = max(1, min(self.cg, CHUNK // self.taps)) if self.rows == self.kh else 1
        self.lpad = -(-self.chans * self.rows * self.kw // self.vl) * self.vl
        self.nb = images_per_unit(self.n, self.q)
        self.cols = self.nb * self.q  # windows (image, output) per unit
        self.mr, self.nq = dot_tile(self.cols, self.vl)
        self.m_tiles = -(-self.mg // self.mr)
        base = self.n // self.nb * self.group
        blocks = 1 if base >= 4 * threads or base % threads == 0 else min(self.m_tiles, -(-4 * threads // base))
        self.tiles_per_block = -(-self.m_tiles // blocks)
        self.blocks = -(-self.m_tiles // self.tiles_per_block)
        self.block_rows = self.tiles_per_block * self.mr

    @property
    def units(self) -> int:
        return self.n // self.nb * self.group * self.blocks

    def layout(self) -> tuple[int, int, int]:
        """Per-thread scratch: (chunk offset, accumulator offset, bytes); the padded plane first."""
        chunk_at = _round64(self.nb * self.hp * self.wp * 4) if self.padded else 0
        acc_at = chunk_at + _round64(self.cols * self.lpad * 4)
        return chunk_at, acc_at, acc_at + _round64(self.block_rows * self.cols * self.vl * 4)


def _scratch(node: Node, ctx: CpuContext) -> int:
    return DotShape(node, ctx.threads, ctx.vector_bits).layout()[2] * max(1, ctx.threads)


def _splat(b: ir.IRBuilder, s: ir.Value, vt: ir.VectorType) -> ir.Value:
    v = b.insert_element(ir.Constant(vt, ir.Undefined), s, ir.Constant(T.I32, 0))
    return b.shuffle_vector(v, ir.Constant(vt, ir.Undefined), ir.Constant(ir.VectorType(T.I32, vt.count), [0] * vt.count))


def microkernel(state: ModuleState, vl: int, mr: int, nq: int, lda: int, ldb: int, acc_row: int) -> ir.Function:
    """``uk(a, b, acc, steps, tail)``: acc[(r*acc_row + j)*vl ...] += lane-wise products of row r
    of a (stride lda) and row j of b (stride ldb) over ``steps`` full vectors, then ``tail``
    (< vl) more elements under a mask."""
    key = ("dot_uk", vl, mr, nq, lda, ldb, acc_row)
    fn = state.kernels.get(key)
    if fn is not None:
        return fn
    vt = ir.VectorType(T.F32, vl)
    fn = ir.Function(state.module, ir.FunctionType(T.VOID, [T.PTR] * 3 + [T.I64, T.I64]),
                     state.unique(f"dot{mr}x{nq}"))
    fn.linkage = "internal"
    fn.attributes.add("noinline")
    fn.attributes.add("nounwind")
    a_p, b_p, acc_p, steps, tail = fn.args
    for arg in (a_p, b_p, acc_p):
        arg.add_attribute("noalias")
    fma = state.declare(f"llvm.fma.v{vl}f32", vt, [vt, vt, vt])
    mvt = ir.VectorType(T.I1, vl)
    maskload = state.declare(f"llvm.masked.load.v{vl}f32.p0", vt, [T.PTR, T.I32, mvt, vt])
    entry, loop, done = (fn.append_basic_block(n) for n in ("entry", "k", "tail"))
    b = ir.IRBuilder(entry)

    def at(base, off):
        return b.gep(base, [off], inbounds=True, source_etype=T.F32)

    acc_ptrs = [[at(acc_p, ir.Constant(T.I64, (r * acc_row + j) * vl)) for j in range(nq)] for r in range(mr)]
    init = [[b.load(p, typ=vt, align=4) for p in row] for row in acc_ptrs]
    b.cbranch(b.icmp_signed(">", steps, ir.Constant(T.I64, 0)), loop, done)
    b.position_at_end(loop)
    i = b.phi(T.I64, name="i")
    i.add_incoming(ir.Constant(T.I64, 0), entry)
    acc = [[b.phi(vt) for _ in range(nq)] for _ in range(mr)]
    for r in range(mr):
        for j in range(nq):
            acc[r][j].add_incoming(init[r][j], entry)
    off = b.mul(i, ir.Constant(T.I64, vl))
    bv = [b.load(at(b_p, b.add(off, ir.Constant(T.I64, j * ldb))), typ=vt, align=4) for j in range(nq)]
    nxt = []
    for r in range(mr):
        av = b.load(at(a_p, b.add(off, ir.Constant(T.I64, r * lda))), typ=vt, align=4)
        nxt.append([b.call(fma, [av, bv[j], acc[r][j]]) for j in range(nq)])
    i1 = b.add(i, ir.Constant(T.I64, 1), flags=["nsw"])
    i.add_incoming(i1, loop)
    for r in range(mr):
        for j in range(nq):
            acc[r][j].add_incoming(nxt[r][j], loop)
    b.cbranch(b.icmp_signed("<", i1, steps), loop, done)

    b.position_at_end(done)
    final = [[b.phi(vt) for _ in range(nq)] for _ in range(mr)]
    for r in range(mr):
        for j in range(nq):
            final[r][j].add_incoming(init[r][j], entry)
            final[r][j].add_incoming(nxt[r][j], loop)
    # The tail: lanes below ``tail`` of one more vector (all lanes off when tail is 0).
    iota = ir.Constant(ir.VectorType(T.I32, vl), list(range(vl)))
    mask = b.icmp_unsigned("<", iota, _splat(b, b.trunc(tail, T.I32), ir.VectorType(T.I32, vl)))
    off = b.mul(steps, ir.Constant(T.I64, vl))
    zero = ir.Constant(vt, None)

    def masked(base, row_off):
        return b.call(maskload, [at(base, b.add(off, ir.Constant(T.I64, row_off))), ir.Constant(T.I32, 4), mask, zero])

    bv = [masked(b_p, j * ldb) for j in range(nq)]
    for r in range(mr):
        av = masked(a_p, r * lda)
        for j in range(nq):
            b.store(b.call(fma, [av, bv[j], final[r][j]]), acc_ptrs[r][j], align=4)
    b.ret_void()
    state.kernels[key] = fn
    return fn


@cpu_kernel("conv_dot", scratch=_scratch)
def _conv_dot(k: KernelBuilder, node: Node) -> None:
    ctx = k.state.ctx
    s = DotShape(node, ctx.threads, ctx.vector_bits)
    y, x, w = k.outs[0], k.ins[0], k.ins[1]
    chunk_at, acc_at, per_thread = s.layout()
    vl, q = s.vl, s.q
    lda = s.cg * s.taps
    cols = s.cols
    kernels = {(mr, nq): microkernel(k.state, vl, mr, nq, lda, s.lpad, cols)
               for mr in {s.mr, s.mg - (s.m_tiles - 1) * s.mr} for nq in {s.nq, cols % s.nq} if nq}
    mr_last = s.mg - (s.m_tiles - 1) * s.mr
    reduce = k.state.declare(f"llvm.vector.reduce.fadd.v{vl}f32", T.F32, [T.F32, ir.VectorType(T.F32, vl)])
    work = s.block_rows * cols * lda
    with k.parallel_chunks(s.units, work, max_workers=max(1, ctx.threads)) as (lo, hi, tid, _):
        b = k.b

        def gep(base, off, ty=T.F32):
            return b.gep(base, [off if isinstance(off, ir.Value) else k.i64(off)], inbounds=True, source_etype=ty)

        mine = gep(k.scratch_ptr(), b.mul(tid, k.i64(per_thread)), T.I8)
        plane_buf, chunk, acc = mine, gep(mine, chunk_at, T.I8), gep(mine, acc_at, T.I8)
        with k.loop(hi, start=lo, name="unit") as u:
            per_image = s.group * s.blocks
            img = b.mul(b.sdiv(u, k.i64(per_image)), k.i64(s.nb))  # the unit's first image
            g = b.sdiv(b.srem(u, k.i64(per_image)), k.i64(s.blocks))
            blk = b.srem(u, k.i64(s.blocks))
            t_lo = b.mul(blk, k.i64(s.tiles_per_block))
            t_hi = b.add(t_lo, k.i64(s.tiles_per_block))
            t_hi = b.select(b.icmp_signed("<", t_hi, k.i64(s.m_tiles)), t_hi, k.i64(s.m_tiles))
            m0 = b.mul(t_lo, k.i64(s.mr))
            k.memset(acc, 0, s.block_rows * cols * vl * 4)

            def pad(bi: int, c, slot: int):
                """The plane of image img + bi, channel c, zero padded into plane ``slot`` of
                the scratch when the conv pads."""
                chan = b.add(b.add(b.mul(b.add(img, k.i64(bi)), k.i64(s.c)), b.mul(g, k.i64(s.cg))), c)
                src = gep(k.ptr(x), b.mul(chan, k.i64(s.h * s.w)))
                if not s.padded:
                    return src
                dst = gep(plane_buf, slot * s.hp * s.wp)
                k.memset(dst, 0, s.hp * s.wp * 4)
                with k.loop(s.h, name="iy") as iy:
                    k.memcpy(gep(dst, b.add(b.mul(b.add(iy, k.i64(s.pt)), k.i64(s.wp)), k.i64(s.pl))),
                             gep(src, b.mul(iy, k.i64(s.w))), s.w * 4)
                return dst

            with k.loop(s.cg, step=s.chans, name="c") as c0:
                left_c = b.sub(k.i64(s.cg), c0)
                nc = b.select(b.icmp_signed("<", left_c, k.i64(s.chans)), left_c, k.i64(s.chans))
                planes = [pad(bi, c0, bi) for bi in range(s.nb)] if s.chans == 1 else None
                # Row m of this group's weights from channel c0: w[g*Mg + m, c0, :, :].
                w_c = gep(k.ptr(w), b.add(b.mul(b.mul(g, k.i64(s.mg)), k.i64(lda)), b.mul(c0, k.i64(s.taps))))
                with k.loop(s.kh, step=s.rows, name="ty0") as ty0:
                    left = b.sub(k.i64(s.kh), ty0)
                    nrows = b.select(b.icmp_signed("<", left, k.i64(s.rows)), left, k.i64(s.rows))
                    length = b.mul(b.mul(nc, nrows), k.i64(s.kw))
                    steps, tail = b.sdiv(length, k.i64(vl)), b.srem(length, k.i64(vl))
                    for bi in range(s.nb):
                        with k.loop(nc, name="ci") as ci:
                            src = planes[bi] if planes else pad(bi, b.add(c0, ci), 0)
                            dst = gep(chunk, b.add(k.i64(bi * q * s.lpad), b.mul(ci, k.i64(s.taps))))
                            _gather(k, s, src, dst, ty0, nrows)
                    a_chunk = gep(w_c, b.mul(ty0, k.i64(s.kw)))
                    with k.loop(t_hi, start=t_lo, name="mt") as mt:
                        a_ptr = gep(a_chunk, b.mul(mt, k.i64(s.mr * lda)))
                        acc_row = gep(acc, b.mul(b.sub(mt, t_lo), k.i64(s.mr * cols * vl)))

                        def tiles(mr: int) -> None:
                            full = cols - cols % s.nq
                            with k.loop(full, step=s.nq, name="qt") as q0:
                                k.b.call(kernels[mr, s.nq], [a_ptr, gep(chunk, b.mul(q0, k.i64(s.lpad))),
                                                             gep(acc_row, b.mul(q0, k.i64(vl))), steps, tail])
                            if full < cols:
                                k.b.call(kernels[mr, cols - full], [a_ptr, gep(chunk, full * s.lpad),
                                                                    gep(acc_row, full * vl), steps, tail])

                        if mr_last == s.mr:
                            tiles(s.mr)
                        else:
                            with b.if_else(b.icmp_signed("==", mt, k.i64(s.m_tiles - 1))) as (last, other):
                                with last:
                                    tiles(mr_last)
                                with other:
                                    tiles(s.mr)
            # Sum the lanes of each accumulator (m, (bi, q)) into y[img + bi, g*Mg + m, q].
            m_hi = b.mul(t_hi, k.i64(s.mr))
            m_hi = b.select(b.icmp_signed("<", m_hi, k.i64(s.mg)), m_hi, k.i64(s.mg))
            vt = ir.VectorType(T.F32, vl)
            with k.loop(m_hi, start=m0, name="m") as m:
                acc_m = gep(acc, b.mul(b.sub(m, m0), k.i64(cols * vl)))
                for bi in range(s.nb):
                    out_row = b.mul(b.add(b.add(b.mul(b.add(img, k.i64(bi)), k.i64(s.m)), b.mul(g, k.i64(s.mg))), m),
                                    k.i64(q))
                    with k.loop(q, name="qq") as qq:
                        v = b.load(gep(acc_m, b.mul(b.add(qq, k.i64(bi * q)), k.i64(vl))), typ=vt, align=4)
                        total = b.call(reduce, [ir.Constant(T.F32, -0.0), v])
                        b.store(total, gep(k.ptr(y), b.add(out_row, qq)))


def _gather(k: KernelBuilder, s: DotShape, plane: ir.Value, chunk: ir.Value, ty0: ir.Value, nrows: ir.Value) -> None:
    """chunk[q*lpad + t*kw + tx] = plane[(qy*sy + (ty0+t)*dy)*Wp + qx*sx + tx*dx] for the window
    rows t < nrows of every output q = (qy, qx); the plane is padded, so every read is inside."""
    b = k.b
    with k.loop(s.q, name="q") as q:
        qy, qx = b.sdiv(q, k.i64(s.ow)), b.srem(q, k.i64(s.ow))
        with k.loop(nrows, name="t") as t:
            iy = b.add(b.mul(qy, k.i64(s.sy)), b.mul(b.add(ty0, t), k.i64(s.dy)))
            src = b.gep(plane, [b.add(b.mul(iy, k.i64(s.wp)), b.mul(qx, k.i64(s.sx)))], inbounds=True,
                        source_etype=T.F32)
            dst = b.gep(chunk, [b.add(b.mul(q, k.i64(s.lpad)), b.mul(t, k.i64(s.kw)))], inbounds=True,
                        source_etype=T.F32)
            if s.dx == 1:
                k.memcpy(dst, src, s.kw * 4)
            else:
                with k.loop(s.kw, name="tx") as tx:
                    v = b.load(b.gep(src, [b.mul(tx, k.i64(s.dx))], inbounds=True, source_etype=T.F32), typ=T.F32)
                    b.store(v, b.gep(dst, [tx], inbounds=True, source_etype=T.F32))

