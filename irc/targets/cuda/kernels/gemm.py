"""The tiled GEMM every matrix product and convolution runs on: one scaffold, three ways to
multiply and accumulate (FMA on f32 here, tensor-core ``mma`` in mma.py, int8 ``dp4a`` in quant.py).

    C[b, m, n] = sum_k A[b, m, k] * B[b, k, n]     then the caller's epilogue stores C

A block computes a BM x BN tile of C (grid x: N tiles, y: M tiles, z: batch or groups); each of
its workers (a thread, or a warp for ``mma``) a TM x TN sub-tile held in registers. The K loop
stages BK-deep slices of A and B through shared memory, double buffered: while the block
computes on one slice, each thread has its loads of the next slice in flight, then stores them
to the other buffer, so one barrier per slice suffices. The multiply-accumulate (a ``Mac``)
decides the shared-memory layout, the accumulators and the math on one staged slice; the
scaffold does the rest (tile set-up, staging, grid mapping, edge masks, the epilogue call).

Operands are not tensors but *readers*: ``Operand.load(k, batch, i, kk)`` returns the element
(row i of A / column i of B, depth kk) in f32. A plain matrix, a transposed one, a broadcast
batch and the implicit im2col matrix of a convolution (conv.py) are all readers, so one tiled
kernel serves gemm, matmul and conv. Loads past the matrix edge are clamped to a safe address
and masked to zero (no branches); whole-tile shapes skip the masks at compile time. The
``store(k, batch, m, n, acc)`` callback is the fused epilogue (bias, residual, activation).

Tiles are chosen by one written-down rule (``choose_tile``) over each Mac's tile table: the
largest tile that still gives enough blocks to fill a large GPU, with thin tiles for the
few-row products of batch-1 inference.

The SIMT Mac keeps A transposed in shared memory (As[k][m]) so that both fragments are
contiguous runs read as 16-byte vectors; every value read from shared memory feeds TM or TN FMAs.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from llvmlite import ir

from irc.ir.types import DType
from irc.targets.cuda.kernel import GpuKernel, Launch
from irc.targets.llvm import lltypes as T

#: Blocks that keep a big GPU busy (132 SMs x 2 resident blocks, rounded)
TARGET_BLOCKS = 256


@dataclass(frozen=True, slots=True)
class Tile:
    """A block computes bm x bn of C through bk-deep slices; each of its workers (one thread, or
    a warp of ``lanes`` threads) a tm x tn sub-tile."""

    bm: int
    bn: int
    bk: int
    tm: int
    tn: int
    lanes: int = 1

    @property
    def workers(self) -> int:
        return (self.bm // self.tm) * (self.bn // self.tn)

    @property
    def threads(self) -> int:
        return self.workers * self.lanes

    def __str__(self) -> str:
        return f"{self.bm}x{self.bn}x{self.bk}/{self.tm}x{self.tn}" + (" warps" if self.lanes > 1 else "")


def choose_tile(m: int, n: int, batch: int, tiles: Sequence[Tile], thin: Tile | None = None) -> Tile:
    """The rule: m <= 8 takes the thin tile (if any); otherwise the largest tile whose grid has
    at least TARGET_BLOCKS blocks, else the tile with the most blocks (ties to the smaller tile:
    the same parallelism with less padding). ``tiles`` go from largest to smallest."""
    if thin is not None and m <= 8:
        return thin
    best = None
    for t in tiles:
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


class Mac(ABC):
    """How a block multiplies and accumulates one staged slice. ``elem``: the shared-memory
    element; ``pad``: None keeps each slice k-major (S[kk][i]), else rows of bk + pad elements
    (S[i][kk]); ``acc``: the accumulator type; ``names``: the two shared arrays; ``tiles`` and
    ``thin``: the tiles ``choose_tile`` picks from."""

    elem: ir.Type
    acc: ir.Type
    pad: int | None
    names: tuple[str, str]
    tiles: tuple[Tile, ...]
    thin: Tile | None = None

    def reader(self, op):
        """The function reading one element of operand ``op`` in ``elem``."""
        return op.load

    @abstractmethod
    def setup(self, k: GpuKernel, t: Tile, tid: ir.Value):
        """This thread's place in the block (computed once, before the K loop)."""

    @abstractmethod
    def count(self, t: Tile) -> int:
        """How many accumulator registers a thread keeps."""

    @abstractmethod
    def step(self, k: GpuKernel, t: Tile, place, a_sh, b_sh, a_base, b_base, accs: list) -> list:
        """The accumulators after the slice at ``a_base``/``b_base`` of the shared arrays."""

    @abstractmethod
    def outputs(self, k: GpuKernel, t: Tile, place, accs: list):
        """(row in the block tile, column in the block tile, value) of every C element this
        thread holds."""


class MicroTile(Mac):
    """Each thread owns a tm x tn micro-tile at (row0, col0) of the block tile."""

    def setup(self, k: GpuKernel, t: Tile, tid: ir.Value):
        cols_per_row = t.bn // t.tn
        tx, ty = k.urem(tid, cols_per_row), k.udiv(tid, cols_per_row)
        return k.mul(ty, t.tm), k.mul(tx, t.tn)

    def count(self, t: Tile) -> int:
        return t.tm * t.tn

    def outputs(self, k: GpuKernel, t: Tile, place, accs: list):
        row0, col0 = place
        for i in range(t.tm):
            for j in range(t.tn):
                yield k.add(row0, i), k.add(col0, j), accs[i * t.tn + j]


class Fma(MicroTile):
    """f32 FMAs on fragments read from shared memory as vectors."""

    elem = acc = T.F32
    pad = None
    names = ("As", "Bs")
    tiles = (
        Tile(128, 128, 8, 8, 8),
        Tile(64, 128, 8, 4, 8),
        Tile(64, 64, 8, 4, 4),
        Tile(32, 64, 8, 2, 4),
        Tile(32, 32, 8, 2, 2),
    )
    #: few rows (batch-1 fully connected layers): one row group per thread column
    thin = Tile(8, 128, 16, 1, 4)

    def step(self, k: GpuKernel, t: Tile, place, a_sh, b_sh, a_base, b_base, accs: list) -> list:
        row0, col0 = place
        f32 = T.F32
        fma = k.mod.declare_raw("llvm.fma.f32", f32, [f32, f32, f32])
        for kk in range(t.bk):
            af = _frag(k, a_sh, k.add(a_base, k.add(k.i(kk * t.bm), row0)), t.tm)
            bf = _frag(k, b_sh, k.add(b_base, k.add(k.i(kk * t.bn), col0)), t.tn)
            accs = [k.b.call(fma, [af[i], bf[j], accs[i * t.tn + j]]) for i in range(t.tm) for j in range(t.tn)]
        return accs


FMA = Fma()
TILES = Fma.tiles
THIN = Fma.thin


def emit_tiled(k: GpuKernel, m: int, n: int, kdim: int, batch: int, a, b, store: Store, mac: Mac,
               tile: Tile | None = None) -> Launch:
    """Emit the tiled GEMM into kernel ``k`` with multiply-accumulate ``mac``; returns its launch
    (grid x: N tiles, y: M tiles, z: batch). ``a`` and ``b`` are readers with a ``k_contiguous``
    layout that ``mac.reader`` turns into element loads."""
    t = tile or choose_tile(m, n, batch, mac.tiles, mac.thin)
    bld = k.b
    elem = mac.elem
    nthreads = t.threads
    row_len = None if mac.pad is None else t.bk + mac.pad
    tid = k.tid()
    bz = k.ctaid("z") if batch > 1 else k.i(0)
    m0 = k.mul(k.ctaid("y"), t.bm)
    n0 = k.mul(k.ctaid("x"), t.bn)

    def slab(rows: int) -> int:
        """Elements of one buffer of a rows x bk slice."""
        return rows * (t.bk if row_len is None else row_len)

    a_sh = k.shared(mac.names[0], elem, 2 * slab(t.bm))
    b_sh = k.shared(mac.names[1], elem, 2 * slab(t.bn))
    full_m, full_n, full_k = m % t.bm == 0, n % t.bn == 0, kdim % t.bk == 0
    ktiles = -(-kdim // t.bk)
    zero = ir.Constant(elem, 0.0 if elem == T.F32 else 0)

    def fetch(op, rows: int, base, extent: int, full_rows: bool, k0):
        """This thread's share of one slice: [(valid-in-tile, smem index, value)]."""
        read = mac.reader(op)
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
            v = read(k, bz, i_abs, kk_abs)
            if ok is not None:
                v = bld.select(ok, v, zero)
            idx = k.add(k.mul(kk_rel, rows), i_rel) if row_len is None else k.add(k.mul(i_rel, row_len), kk_rel)
            out.append((inside, idx, v))
        return out

    def put(sh, rows: int, buf_idx, vals):
        base = k.mul(buf_idx, slab(rows))
        for inside, idx, v in vals:
            ptr = k.sgep(sh, elem, k.add(base, idx))
            if inside is None:
                bld.store(v, ptr)
            else:
                with k.if_(inside):
                    bld.store(v, ptr)

    place = mac.setup(k, t, tid)
    # accumulators: allocas promoted to registers by mem2reg
    with bld.goto_entry_block():
        slots = [bld.alloca(mac.acc) for _ in range(mac.count(t))]
    acc_zero = ir.Constant(mac.acc, 0.0 if mac.acc == T.F32 else 0)
    for s in slots:
        bld.store(acc_zero, s)

    put(a_sh, t.bm, k.i(0), fetch(a, t.bm, m0, m, full_m, k.i(0)))
    put(b_sh, t.bn, k.i(0), fetch(b, t.bn, n0, n, full_n, k.i(0)))
    k.barrier()
    with k.loop(ktiles, name="kt") as kt:
        cur = k.urem(kt, 2)
        nxt = bld.sub(k.i(1), cur)
        has_next = k.lt(k.add(kt, 1), ktiles)
        # loads of the next slice are issued before the math on this one (clamped to slice 0
        # on the last iteration: always a valid address, never stored)
        k_load = bld.select(has_next, k.mul(k.add(kt, 1), t.bk), k.i(0))
        na = fetch(a, t.bm, m0, m, full_m, k_load)
        nb = fetch(b, t.bn, n0, n, full_n, k_load)
        accs = [bld.load(s, typ=mac.acc) for s in slots]
        accs = mac.step(k, t, place, a_sh, b_sh, k.mul(cur, slab(t.bm)), k.mul(cur, slab(t.bn)), accs)
        for s, v in zip(slots, accs):
            bld.store(v, s)
        with k.if_(has_next):
            put(a_sh, t.bm, nxt, na)
            put(b_sh, t.bn, nxt, nb)
        k.barrier()

    accs = [bld.load(s, typ=mac.acc) for s in slots]
    for mr, nc, acc in mac.outputs(k, t, place, accs):
        mi, nj = k.add(m0, mr), k.add(n0, nc)
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
    shared = 2 * (slab(t.bm) + slab(t.bn)) * _bytes(elem)
    return Launch(grid, (nthreads, 1, 1), shared, ((n, t.bn), (m, t.bm), (batch, 1)))


def emit_gemm(k: GpuKernel, m: int, n: int, kdim: int, batch: int, a: Operand, b: Operand, store: Store,
              tile: Tile | None = None) -> Launch:
    """The SIMT GEMM (f32 FMAs) into kernel ``k``; returns its launch."""
    return emit_tiled(k, m, n, kdim, batch, a, b, store, FMA, tile)


def _bytes(t: ir.Type) -> int:
    return 4 if t == T.F32 else t.width // 8


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
    """``count`` consecutive f32 from shared memory, as 16-byte (or 8-byte) vector loads where
    aligned."""
    bld = k.b
    width = 4 if count % 4 == 0 else 2 if count % 2 == 0 else 1
    if width == 1:
        return [bld.load(k.sgep(sh, T.F32, k.add(start, q)), typ=T.F32) for q in range(count)]
    vt = ir.VectorType(T.F32, width)
    out: list[ir.Value] = []
    for q in range(count // width):
        vec = bld.load(k.sgep(sh, T.F32, k.add(start, width * q)), typ=vt, align=4 * width)
        out.extend(bld.extract_element(vec, k.i32(e)) for e in range(width))
    return out
