"""The tiled GEMM every matrix product and convolution runs on (SIMT, fp32 accumulate).

    C[b, m, n] = sum_k A[b, m, k] * B[b, k, n]     then the caller's epilogue stores C

A block computes a BM x BN tile of C; each of its threads a TM x TN micro-tile held in
registers (register blocking: every value read from shared memory feeds TM or TN FMAs). The
K loop stages BK-deep slices of A and B through shared memory, double buffered: while the
block computes on one slice, each thread has its loads of the next slice in flight, then
stores them to the other buffer, so one barrier per slice suffices. A is kept transposed in
shared memory (As[k][m]) so that both fragments are contiguous runs read as 16-byte vectors.

Operands are not tensors but *readers*: ``Operand.load(k, batch, i, kk)`` returns the element
(row i of A / column i of B, depth kk) in f32. A plain matrix, a transposed one, a broadcast
batch and the implicit im2col matrix of a convolution (conv.py) are all readers, so one tiled
kernel serves gemm, matmul and conv. Loads past the matrix edge are clamped to a safe address
and masked to zero (no branches); whole-tile shapes skip the masks at compile time. The
``store(k, batch, m, n, acc)`` callback is the fused epilogue (bias, residual, activation).

Tiles are chosen by a written-down rule (``choose_tile``): the largest tile that still gives
enough blocks to fill a large GPU, with thin tiles for the few-row products of batch-1 inference.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from llvmlite import ir

from irc.ir.types import DType
from irc.targets.cpu import lltypes as T
from irc.targets.cuda.kernel import GpuKernel, Launch

#: Blocks that keep a big GPU busy (132 SMs x 2 resident blocks, rounded)
TARGET_BLOCKS = 256


@dataclass(frozen=True, slots=True)
class Tile:
    bm: int
    bn: int
    bk: int
    tm: int
    tn: int

    @property
    def threads(self) -> int:
        return (self.bm // self.tm) * (self.bn // self.tn)

    @property
    def shared_bytes(self) -> int:
        return 2 * self.bk * (self.bm + self.bn) * 4

    def __str__(self) -> str:
        return f"{self.bm}x{self.bn}x{self.bk}/{self.tm}x{self.tn}"


TILES = (
    Tile(128, 128, 8, 8, 8),
    Tile(64, 128, 8, 4, 8),
    Tile(64, 64, 8, 4, 4),
    Tile(32, 64, 8, 2, 4),
    Tile(32, 32, 8, 2, 2),
)
#: few rows (batch-1 fully connected layers): one row group per thread column
THIN = Tile(8, 128, 16, 1, 4)


def choose_tile(m: int, n: int, batch: int = 1) -> Tile:
    """The rule: m <= 8 takes the thin tile; otherwise the largest tile whose grid has at least
    TARGET_BLOCKS blocks, else the tile with the most blocks (ties to the smaller tile: the same
    parallelism with less padding)."""
    if m <= 8:
        return THIN
    best = None
    for t in TILES:
        blocks = -(-m // t.bm) * -(-n // t.bn) * batch
        if blocks >= TARGET_BLOCKS:
            return t
        if best is None or blocks >= best[0]:
            best = (blocks, t)
    return best[1]


@dataclass(frozen=True)
class Operand:
    """A reader of one GEMM operand: ``load(k, batch, i, kk) -> f32`` with i the row of A (or
    column of B) and kk the depth; ``k_contiguous``: consecutive kk are adjacent in memory
    (decides how threads split a tile load, for coalescing). ``raw`` (16-bit operands only)
    reads the element's storage bits unconverted, for the tensor-core kernel (mma.py)."""

    load: Callable[[GpuKernel, ir.Value, ir.Value, ir.Value], ir.Value]
    k_contiguous: bool
    raw: Callable[[GpuKernel, ir.Value, ir.Value, ir.Value], ir.Value] | None = None


Store = Callable[[GpuKernel, ir.Value, ir.Value, ir.Value, ir.Value], None]


def to_f32(k: GpuKernel, v: ir.Value, dt: DType) -> ir.Value:
    """A compute-type value of ``dt`` as f32 (the accumulator type)."""
    if dt is DType.f32 or dt is DType.bf16:
        return v
    if dt is DType.f16:
        return k.b.fpext(v, T.F32)
    if dt is DType.f64:
        return k.b.fptrunc(v, T.F32)
    return k.b.sitofp(v, T.F32) if dt.is_signed else k.b.uitofp(v, T.F32)


def matrix(buf, rows: int, cols: int, *, transposed: bool = False, batch_stride: int = 0) -> Operand:
    """A row-major [rows, cols] matrix (per batch at ``batch_stride`` elements) read as an
    operand indexed (i, kk): for A, i = row and kk = column; ``transposed`` swaps the roles, as
    B (i = column, kk = row) is read."""

    def offset(k: GpuKernel, b, i, kk):
        r, c = (kk, i) if transposed else (i, kk)
        off = k.add(k.mul(r, cols), c)
        if batch_stride:
            off = k.add(off, k.mul(b, batch_stride))
        return off

    def value(k, b, i, kk):
        return to_f32(k, k.load(buf, offset(k, b, i, kk)), buf.dtype)

    def raw(k, b, i, kk):
        return k.b.load(k.addr(buf, offset(k, b, i, kk)), typ=T.I16, align=2)

    sixteen = buf.dtype in (DType.f16, DType.bf16)
    return Operand(value, k_contiguous=not transposed, raw=raw if sixteen else None)


def emit_gemm(k: GpuKernel, m: int, n: int, kdim: int, batch: int, a: Operand, b: Operand, store: Store,
              tile: Tile | None = None) -> Launch:
    """Emit the tiled GEMM into kernel ``k``; returns its launch (grid x: N tiles, y: M tiles,
    z: batch)."""
    t = tile or choose_tile(m, n, batch)
    bld = k.b
    f32 = T.F32
    nthreads = t.threads
    tid = k.tid()
    bn_i, bm_i = k.ctaid("x"), k.ctaid("y")
    bz = k.ctaid("z") if batch > 1 else k.i(0)
    m0 = k.mul(bm_i, t.bm)
    n0 = k.mul(bn_i, t.bn)
    a_sh = k.shared("As", f32, 2 * t.bk * t.bm)
    b_sh = k.shared("Bs", f32, 2 * t.bk * t.bn)
    full_m, full_n, full_k = m % t.bm == 0, n % t.bn == 0, kdim % t.bk == 0
    ktiles = -(-kdim // t.bk)

    def fetch(op: Operand, rows: int, base, extent: int, full_rows: bool, k0):
        """This thread's share of one slice: [(valid-in-tile, smem index, value)]."""
        out = []
        for inside, i_rel, kk_rel in slice_elements(k, tid, rows, t.bk, nthreads, op.k_contiguous):
            i_abs, kk_abs = k.add(base, i_rel), k.add(k0, kk_rel)
            ok = None
            if not full_rows:
                ok = k.lt(i_abs, extent)
            if not full_k:
                c = k.lt(kk_abs, kdim)
                ok = c if ok is None else bld.and_(ok, c)
            if ok is not None:
                i_abs = bld.select(ok, i_abs, k.i(0))
                kk_abs = bld.select(ok, kk_abs, k.i(0))
            v = op.load(k, bz, i_abs, kk_abs)
            if ok is not None:
                v = bld.select(ok, v, k.f32(0.0))
            out.append((inside, k.add(k.mul(kk_rel, rows), i_rel), v))
        return out

    def put(sh, rows: int, buf_idx, vals):
        base = k.mul(buf_idx, rows * t.bk)
        for inside, idx, v in vals:
            ptr = k.sgep(sh, f32, k.add(base, idx))
            if inside is None:
                bld.store(v, ptr)
            else:
                with k.if_(inside):
                    bld.store(v, ptr)

    # -- accumulators (allocas promoted to registers by mem2reg)
    with bld.goto_entry_block():
        acc_slots = [[bld.alloca(f32) for _ in range(t.tn)] for _ in range(t.tm)]
    for row in acc_slots:
        for s in row:
            bld.store(k.f32(0.0), s)
    cols_per_row = t.bn // t.tn
    tx = k.urem(tid, cols_per_row)
    ty = k.udiv(tid, cols_per_row)
    row0 = k.mul(ty, t.tm)
    col0 = k.mul(tx, t.tn)

    put(a_sh, t.bm, k.i(0), fetch(a, t.bm, m0, m, full_m, k.i(0)))
    put(b_sh, t.bn, k.i(0), fetch(b, t.bn, n0, n, full_n, k.i(0)))
    k.barrier()
    with k.loop(ktiles, name="kt") as kt:
        cur = k.urem(kt, 2)
        nxt = bld.sub(k.i(1), cur)
        has_next = k.lt(k.add(kt, 1), ktiles)
        k_next = k.mul(k.add(kt, 1), t.bk)
        # loads of the next slice are issued before the math on this one (clamped to slice 0
        # on the last iteration: always a valid address, never stored)
        k_load = bld.select(has_next, k_next, k.i(0))
        na = fetch(a, t.bm, m0, m, full_m, k_load)
        nb = fetch(b, t.bn, n0, n, full_n, k_load)
        a_base = k.mul(cur, t.bm * t.bk)
        b_base = k.mul(cur, t.bn * t.bk)
        accs = [[bld.load(s, typ=f32) for s in row] for row in acc_slots]
        for kk in range(t.bk):
            af = _frag(k, a_sh, k.add(a_base, k.add(k.i(kk * t.bm), row0)), t.tm)
            bf = _frag(k, b_sh, k.add(b_base, k.add(k.i(kk * t.bn), col0)), t.tn)
            fma = k.mod.declare_raw("llvm.fma.f32", f32, [f32, f32, f32])
            accs = [[bld.call(fma, [af[i], bf[j], accs[i][j]]) for j in range(t.tn)] for i in range(t.tm)]
        for i, row in enumerate(acc_slots):
            for j, s in enumerate(row):
                bld.store(accs[i][j], s)
        with k.if_(has_next):
            put(a_sh, t.bm, nxt, na)
            put(b_sh, t.bn, nxt, nb)
        k.barrier()

    for i in range(t.tm):
        mi = k.add(m0, k.add(row0, i))
        for j in range(t.tn):
            nj = k.add(n0, k.add(col0, j))
            ok = None
            if not full_m:
                ok = k.lt(mi, m)
            if not full_n:
                c = k.lt(nj, n)
                ok = c if ok is None else bld.and_(ok, c)
            acc = bld.load(acc_slots[i][j], typ=f32)
            if ok is None:
                store(k, bz, mi, nj, acc)
            else:
                with k.if_(ok):
                    store(k, bz, mi, nj, acc)
    grid = (-(-n // t.bn), -(-m // t.bm), batch)
    return Launch(grid, (nthreads, 1, 1), t.shared_bytes, ((n, t.bn), (m, t.bm), (batch, 1)))


def slice_elements(k: GpuKernel, tid, rows: int, depth: int, nthreads: int, k_contiguous: bool):
    """The elements of a rows x depth slice one thread loads: [(inside, i, kk)] for elements
    e = tid + j * nthreads, split along the operand's contiguous axis (consecutive threads read
    consecutive addresses). When the thread count divides evenly, i and kk are the thread's own
    coordinates plus constants (no division per element: the constants fold into addresses);
    ``inside`` is None unless the last round of loads is partial."""
    per = rows * depth
    inner = depth if k_contiguous else rows
    out = []
    even = nthreads % inner == 0
    if even:
        a0, b0 = k.udiv(tid, inner), k.urem(tid, inner)
    for j in range(-(-per // nthreads)):
        inside = None if (j + 1) * nthreads <= per else k.lt(k.add(tid, j * nthreads), per)
        if even:
            outer_c, inner_c = k.add(a0, j * (nthreads // inner)), b0
        else:
            e = k.add(tid, j * nthreads)
            if inside is not None:
                e = k.b.select(inside, e, k.i(0))
            outer_c, inner_c = k.udiv(e, inner), k.urem(e, inner)
        if inside is not None and even:
            outer_c = k.b.select(inside, outer_c, k.i(0))
        i, kk = (outer_c, inner_c) if k_contiguous else (inner_c, outer_c)
        out.append((inside, i, kk))
    return out


def _frag(k: GpuKernel, sh, start, count: int) -> list[ir.Value]:
    """``count`` consecutive f32 from shared memory, as 16-byte vector loads where aligned."""
    bld = k.b
    out: list[ir.Value] = []
    if count % 4 == 0:
        v4 = ir.VectorType(T.F32, 4)
        for q in range(count // 4):
            vec = bld.load(k.sgep(sh, T.F32, k.add(start, 4 * q)), typ=v4, align=16)
            out.extend(bld.extract_element(vec, k.i32(e)) for e in range(4))
        return out
    if count % 2 == 0:
        v2 = ir.VectorType(T.F32, 2)
        for q in range(count // 2):
            vec = bld.load(k.sgep(sh, T.F32, k.add(start, 2 * q)), typ=v2, align=8)
            out.extend(bld.extract_element(vec, k.i32(e)) for e in range(2))
        return out
    return [bld.load(k.sgep(sh, T.F32, k.add(start, q)), typ=T.F32) for q in range(count)]
