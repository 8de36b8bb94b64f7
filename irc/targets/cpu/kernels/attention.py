"""Fused attention: softmax(scale * q @ k^T + mask) @ v without writing the scores to memory.

One parallel unit is a (batch entry, block of query rows). It first copies K^T into per-thread
scratch, in panels of 2 vectors of keys ([Sk / panel][D][panel], zero padded), so the scores of
a group of ROWS query rows are vectors along the keys: a ROWS x 2-vector register tile walked
over D, each K^T load used by every row of the group (the GEMM microkernel's reuse). Scale and
mask are applied to the tile in registers, where each row's maximum is also taken. The keys go
in blocks of at most KEY_BLOCK with the online softmax recurrence (FlashAttention's): per row a
running maximum m and sum l; a block's scores become exp(s - m_new), the output accumulator is
rescaled by exp(m_old - m_new) and gets P_block @ V_block added, again as a ROWS x 2-vector tile
along Dv so each V load serves every row. Only a group's block of scores (ROWS x KEY_BLOCK) and
its output rows (ROWS x Dv) live in scratch, both in L1; the output is divided by l at the end.

Scores past the last key of a block, up to the next whole vector, are set to -inf, so the
softmax runs on whole vectors and gives them 0. A row whose scores so far are all -inf keeps
m = -inf; its exponentials are taken against 0 instead, so they are 0 rather than NaN, and a
row masked out entirely ends as 0 / 0 = NaN, as the reference's softmax gives. The exp is the
element-wise table's (``Scalar.intrinsic``), vectorised by the target's vector math.
"""

from __future__ import annotations

import math

from llvmlite import ir

from irc.ir.graph import Node
from irc.ir.types import DType
from irc.targets.cpu.kernel import KernelBuilder
from irc.targets.cpu.kernels.lanes import Lanes, add, iota, maximum
from irc.targets.cpu.kernels.norm import flat_offset
from irc.targets.cpu.kernels.registry import CpuContext, cpu_kernel
from irc.targets.llvm import lltypes as T
from irc.targets.llvm.elementwise import broadcast_strides
from irc.targets.llvm.scalar import Scalar

#: Query rows computed together (each K^T and V vector loaded once for all of them).
ROWS = 6
#: Vectors per row in a register tile (ROWS x TILE accumulators stay in registers).
TILE = 2
#: Keys per online-softmax block.
KEY_BLOCK = 128
#: Parallel units wanted per thread (query rows are split until there are this many).
UNITS_PER_THREAD = 4


def _exp(s: Scalar, x: ir.Value) -> ir.Value:
    """e**x through the element-wise table's name (the cpu target defines the vector form)."""
    return s.intrinsic("exp", x)


class _Shape:
    """Sizes, strides and the scratch layout of one attention node on one CPU."""

    def __init__(self, node: Node, ctx: CpuContext):
        q, k, v = (x.type for x in node.inputs[:3])
        out = node.outputs[0].type
        self.dt = q.dtype
        self.batch = out.shape[:-2]
        self.nb = math.prod(self.batch)
        self.sq, self.d = q.shape[-2:]
        self.sk, self.dv = v.shape[-2:]
        self.q_strides = [s * self.sq * self.d for s in broadcast_strides(q.shape[:-2], self.batch)]
        self.k_strides = [s * self.sk * self.d for s in broadcast_strides(k.shape[:-2], self.batch)]
        self.v_strides = [s * self.sk * self.dv for s in broadcast_strides(v.shape[:-2], self.batch)]
        self.mask = None
        if len(node.inputs) > 3:
            ms = broadcast_strides(node.inputs[3].shape, (*self.batch, self.sq, self.sk))
            self.mask = (list(ms[:-2]), ms[-2], ms[-1])
        bits = 64 if self.dt is DType.f64 else 32
        self.vl = max(1, ctx.vector_bits // bits)
        self.rows = min(ROWS, self.sq)
        groups = math.ceil(self.sq / self.rows)
        split = max(1, math.ceil(UNITS_PER_THREAD * max(1, ctx.threads) / max(1, self.nb)))
        self.block_rows = self.rows * math.ceil(groups / min(split, groups))
        self.qblocks = math.ceil(self.sq / self.block_rows)
        self.units = self.nb * self.qblocks
        # K^T is packed in panels of ``panel`` keys, [Sk / panel][D][panel], so a score tile reads
        # one contiguous run per step of D (rows of a plain [D, Sk] K^T lie a power of two apart
        # and would all fall in the same few L1 sets).
        self.panel = TILE * self.vl
        self.sk_pad = _round_up(self.sk, self.panel)
        self.kb = min(max(self.panel, KEY_BLOCK // self.panel * self.panel), self.sk)  # whole panels
        self.kb_pad = _round_up(self.kb, self.vl)
        # Scratch per thread, in elements: K^T, a group's scores block, a group's output rows.
        self.s_at = self.d * self.sk_pad
        self.o_at = self.s_at + self.rows * self.kb_pad
        self.per_thread = (self.o_at + self.rows * self.dv) * self.dt.itemsize

    def work(self) -> int:
        """Element operations of one unit, for the parallel threshold."""
        return self.block_rows * self.sk * (self.d + self.dv + 8)


def _round_up(n: int, m: int) -> int:
    return -(-n // m) * m


def _scratch(node: Node, ctx: CpuContext) -> int:
    return _Shape(node, ctx).per_thread * max(1, ctx.threads)


def _check(node: Node) -> str | None:
    if node.inputs[0].type.dtype not in (DType.f32, DType.f64):
        return "the attention kernel computes in f32 and f64 only (the fuse_attention pass fuses no other type)"
    return None


@cpu_kernel("attention", scratch=_scratch, check=_check)
def _attention(k: KernelBuilder, node: Node) -> None:
    sh = _Shape(node, k.state.ctx)
    if k.outs[0].size == 0:
        return
    lv = Lanes(k, sh.dt, sh.vl)
    with k.parallel_chunks(sh.units, sh.work(), max_workers=max(1, k.state.ctx.threads)) as (lo, hi, tid, _):
        b = k.b
        scratch = lv.at(k.scratch_ptr(), b.mul(tid, k.i64(sh.per_thread // sh.dt.itemsize)))
        with k.loop(hi, start=lo, name="unit") as u:
            _unit(k, lv, sh, node, scratch, u)


def _unit(k: KernelBuilder, lv: Lanes, sh: _Shape, node: Node, scratch: ir.Value, u: ir.Value) -> None:
    """One batch entry's block of query rows: pack K^T, then every group of rows."""
    b = k.b
    bidx = b.sdiv(u, k.i64(sh.qblocks))
    row0 = b.mul(b.srem(u, k.i64(sh.qblocks)), k.i64(sh.block_rows))
    base = _Bases(k, sh, bidx)
    kp = k.ptr(k.ins[1])
    with k.loop(sh.sk_pad, name="kj") as j:
        panel = b.add(b.mul(b.sdiv(j, k.i64(sh.panel)), k.i64(sh.d * sh.panel)), b.srem(j, k.i64(sh.panel)))
        inside = b.icmp_signed("<", j, k.i64(sh.sk))
        src = b.mul(b.select(inside, j, k.i64(0)), k.i64(sh.d))
        with k.loop(sh.d, name="kd") as d:
            x = lv.load(kp, b.add(base.k, b.add(src, d)), 0)
            lv.store(scratch, b.add(panel, b.mul(d, k.i64(sh.panel))), lv.s.select(inside, x, lv.s.c(0.0)), 0)
    rows = b.sub(k.i64(sh.sq), row0)
    rows = b.select(b.icmp_signed("<", rows, k.i64(sh.block_rows)), rows, k.i64(sh.block_rows))
    full = b.sdiv(rows, k.i64(sh.rows))
    with k.loop(full, name="grp") as g:
        _group(k, lv, sh, node, scratch, base, b.add(row0, b.mul(g, k.i64(sh.rows))), sh.rows)
    tail = sh.sq % sh.rows
    if tail:
        with k.if_(b.icmp_signed("!=", b.srem(rows, k.i64(sh.rows)), k.i64(0))):
            _group(k, lv, sh, node, scratch, base, b.add(row0, b.mul(full, k.i64(sh.rows))), tail)


class _Bases:
    """Element offsets of one batch entry's q, k, v, mask and output."""

    def __init__(self, k: KernelBuilder, sh: _Shape, bidx: ir.Value):
        self.q = flat_offset(k, bidx, sh.batch, sh.q_strides)
        self.k = flat_offset(k, bidx, sh.batch, sh.k_strides)
        self.v = flat_offset(k, bidx, sh.batch, sh.v_strides)
        self.mask = flat_offset(k, bidx, sh.batch, sh.mask[0]) if sh.mask else None
        self.out = k.b.mul(bidx, k.i64(sh.sq * sh.dv))


def _pieces(n: int, vl: int) -> list[tuple[int, int, int]]:
    """[0, n) as (start, lanes, count) tiles: TILE vectors, then one vector, then scalars."""
    out, c = [], 0
    while n - c >= TILE * vl:
        out.append((c, vl, TILE))
        c += TILE * vl
    if n - c >= vl:
        out.append((c, vl, 1))
        c += vl
    if n > c:
        out.append((c, 0, n - c))
    return out


def _group(k: KernelBuilder, lv: Lanes, sh: _Shape, node: Node, scratch, base: _Bases, row0, nr: int) -> None:
    """Rows [row0, row0 + nr) of one batch entry: online softmax over the key blocks."""
    b, s = k.b, lv.s
    o_ptr = lv.at(scratch, k.i64(sh.o_at))
    k.memset(o_ptr, 0, nr * sh.dv * sh.dt.itemsize)
    m = [lv.slot(0, s.c(-math.inf)) for _ in range(nr)]
    l_ = [lv.slot(0, s.c(0.0)) for _ in range(nr)]
    nfull, rest = divmod(sh.sk, sh.kb)
    if nfull:
        with k.loop(nfull * sh.kb, step=sh.kb, name="kb") as j0:
            _block(k, lv, sh, node, scratch, base, row0, nr, j0, sh.kb, m, l_)
    if rest:
        _block(k, lv, sh, node, scratch, base, row0, nr, k.i64(nfull * sh.kb), rest, m, l_)
    yp = k.ptr(k.outs[0])
    for r in range(nr):
        inv = b.fdiv(s.c(1.0), lv.get(l_[r]))
        out_row = b.add(base.out, b.mul(b.add(row0, k.i64(r)), k.i64(sh.dv)))

        def finish(i, ln, r=r, inv=inv, out_row=out_row):
            y = lv.ops(ln).mul(lv.load(o_ptr, b.add(k.i64(r * sh.dv), i), ln), lv.splat(inv, ln))
            lv.store(yp, b.add(out_row, i), y, ln)

        lv.for_each(sh.dv, finish)


def _block(k: KernelBuilder, lv: Lanes, sh: _Shape, node: Node, scratch, base: _Bases, row0, nr: int,
           j0: ir.Value, kbn: int, m: list, l_: list) -> None:
    """Keys [j0, j0 + kbn) for rows [row0, row0 + nr): scores, softmax update, P @ V."""
    b, s = k.b, lv.s
    scale = node.attrs["scale"]
    s_ptr = lv.at(scratch, k.i64(sh.s_at))
    qp = k.ptr(k.ins[0])
    q_rows = [b.add(base.q, b.mul(b.add(row0, k.i64(r)), k.i64(sh.d))) for r in range(nr)]

    # Scores: S[r, c] = scale * q_r . K^T[:, j0 + c] + mask for c < kbn, -inf in the lanes up to
    # the next whole vector (so the softmax runs on whole vectors); each row's maximum is kept
    # in a vector register along the way.
    kb_pad = _round_up(kbn, sh.vl)
    ragged = kbn % sh.vl != 0
    v = lv.v
    mp = k.ptr(k.ins[3]) if sh.mask else None
    m_rows = []
    if sh.mask:
        _, ms_row, ms_col = sh.mask
        m_rows = [b.add(base.mask, b.add(b.mul(b.add(row0, k.i64(r)), k.i64(ms_row)), b.mul(j0, k.i64(ms_col))))
                  for r in range(nr)]
    row_max = [lv.slot(sh.vl, v.c(-math.inf)) for _ in range(nr)]

    def score_tile(c0: ir.Value, count: int) -> None:
        accs = [[lv.slot(sh.vl, v.c(0.0)) for _ in range(count)] for _ in range(nr)]
        panel = b.mul(b.sdiv(b.add(j0, c0), k.i64(sh.panel)), k.i64(sh.d * sh.panel))
        with k.loop(sh.d, name="sd") as d:
            kt_row = b.add(panel, b.mul(d, k.i64(sh.panel)))
            kv = [lv.load(scratch, b.add(kt_row, k.i64(t * sh.vl)), sh.vl) for t in range(count)]
            for r in range(nr):
                qs = lv.splat(lv.load(qp, b.add(q_rows[r], d), 0), sh.vl)
                for t in range(count):
                    b.store(v.intrinsic("fma", qs, kv[t], lv.get(accs[r][t])), accs[r][t])
        for t in range(count):
            col = b.add(c0, k.i64(t * sh.vl))
            live = None
            if ragged:
                first = lv.splat(b.trunc(col, T.I32), sh.vl)
                live = b.icmp_signed("<", b.add(first, iota(sh.vl)), ir.Constant(ir.VectorType(T.I32, sh.vl), [kbn] * sh.vl))
            for r in range(nr):
                x = v.mul(lv.get(accs[r][t]), v.c(scale))
                if sh.mask and sh.mask[2]:
                    off = b.add(m_rows[r], col)
                    x = v.add(x, lv.load_masked(mp, off, live) if live is not None else lv.load(mp, off, sh.vl))
                elif sh.mask:
                    x = v.add(x, lv.splat(lv.load(mp, m_rows[r], 0), sh.vl))
                if live is not None:
                    x = v.select(live, x, v.c(-math.inf))
                lv.store(s_ptr, b.add(k.i64(r * sh.kb_pad), col), x, sh.vl)
                b.store(maximum(v, lv.get(row_max[r]), x), row_max[r])

    pairs = kb_pad // (TILE * sh.vl)
    if pairs:
        with k.loop(pairs * TILE * sh.vl, step=TILE * sh.vl, name="sc") as c0:
            score_tile(c0, TILE)
    if kb_pad > pairs * TILE * sh.vl:
        score_tile(k.i64(pairs * TILE * sh.vl), (kb_pad - pairs * TILE * sh.vl) // sh.vl)

    # Online softmax per row: new maximum, exponentials and their sum, rescale factor.
    alphas = []
    for r in range(nr):
        srow = k.i64(r * sh.kb_pad)
        m_old = lv.get(m[r])
        m_new = maximum(s, m_old, lv.hreduce(lv.get(row_max[r]), maximum))
        pivot = s.select(b.fcmp_ordered("==", m_new, s.c(-math.inf)), s.c(0.0), m_new)

        def expo(i, ln, srow=srow, pivot=pivot):
            o = lv.ops(ln)
            e = _exp(o, o.sub(lv.load(s_ptr, b.add(srow, i), ln), lv.splat(pivot, ln)))
            lv.store(s_ptr, b.add(srow, i), e, ln)
            return e

        total = lv.reduce(kb_pad, expo, add, 0.0)
        alpha = _exp(s, s.sub(m_old, pivot))
        b.store(s.add(s.mul(lv.get(l_[r]), alpha), total), l_[r])
        b.store(m_new, m[r])
        alphas.append(alpha)

    # O[r] = O[r] * alpha_r + P[r, :kbn] @ V[j0:j0 + kbn].
    o_ptr = lv.at(scratch, k.i64(sh.o_at))
    vp = k.ptr(k.ins[2])
    v_rows = b.add(base.v, b.mul(j0, k.i64(sh.dv)))
    for c, lanes, count in _pieces(sh.dv, sh.vl):
        o = lv.ops(lanes)
        step = lanes or 1
        accs = [[lv.slot(lanes, o.mul(lv.load(o_ptr, k.i64(r * sh.dv + c + t * step), lanes), lv.splat(alphas[r], lanes)))
                 for t in range(count)] for r in range(nr)]
        with k.loop(kbn, name="pv") as j:
            vrow = b.add(v_rows, b.mul(j, k.i64(sh.dv)))
            vv = [lv.load(vp, b.add(vrow, k.i64(c + t * step)), lanes) for t in range(count)]
            for r in range(nr):
                ps = lv.splat(lv.load(s_ptr, b.add(k.i64(r * sh.kb_pad), j), 0), lanes)
                for t in range(count):
                    b.store(o.intrinsic("fma", ps, vv[t], lv.get(accs[r][t])), accs[r][t])
        for r in range(nr):
            for t in range(count):
                lv.store(o_ptr, k.i64(r * sh.dv + c + t * step), lv.get(accs[r][t]), lanes)
