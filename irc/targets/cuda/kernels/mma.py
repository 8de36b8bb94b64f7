"""The tensor-core GEMM: f16/bf16 operands, f32 accumulators, ``mma.sync.m16n8k16`` (sm_80+).

Same contract as the SIMT GEMM (gemm.py): operand readers, a store callback for the fused
epilogue, grid x over N tiles, y over M tiles, z over the batch or groups. Here the readers
give the operands' raw 16-bit storage and the block works warp by warp:

- a block tile BM x BN is split among warps (WM x WN of them), each warp owning a (BM/WM) x
  (BN/WN) tile made of 16x8 mma tiles; every lane keeps 4 f32 accumulators per mma tile;
- BK = 32 deep slices of A and B are staged through shared memory, double buffered with the
  next slice's loads in flight during the math (as in the SIMT kernel), both stored k-contiguous
  (As[m][k], Bs[n][k]) with rows padded by 8 halves, so that the 32-bit fragment loads of a
  warp hit 32 different banks;
- per 16-deep step a lane loads its A fragments (4 registers per 16x16 tile) and B fragments
  (2 per 16x8 tile) in the layout the PTX ISA fixes for m16n8k16 .row.col (lane = 4 g + t:
  A rows g and g+8, columns 2t, 2t+1, 2t+8, 2t+9; B columns g, rows 2t, 2t+1, 2t+8, 2t+9; C
  rows g and g+8, columns 2t and 2t+1), and issues one mma per (m, n) tile pair.

Global loads are 16-bit, masked at the edges, issued one slice ahead; vector (16-byte) loads and
cp.async are the known next steps for reaching cuBLAS-class bandwidth on large products.
"""

from __future__ import annotations

from dataclasses import dataclass

from llvmlite import ir

from irc.ir.types import DType
from irc.targets.cpu import lltypes as T
from irc.targets.cuda import asm
from irc.targets.cuda.kernel import GpuKernel, Launch
from irc.targets.cuda.kernels.gemm import Operand, Store, slice_elements

BK = 32
PAD = 8


@dataclass(frozen=True, slots=True)
class MmaTile:
    bm: int
    bn: int
    wm: int  # warps along M
    wn: int  # warps along N

    @property
    def threads(self) -> int:
        return 32 * self.wm * self.wn

    @property
    def m_tiles(self) -> int:
        return self.bm // self.wm // 16

    @property
    def n_tiles(self) -> int:
        return self.bn // self.wn // 8

    @property
    def shared_bytes(self) -> int:
        return 2 * (self.bm + self.bn) * (BK + PAD) * 2

    def __str__(self) -> str:
        return f"mma {self.bm}x{self.bn}x{BK}/{self.wm}x{self.wn} warps"


MMA_TILES = (MmaTile(128, 128, 2, 4), MmaTile(64, 128, 2, 2), MmaTile(64, 64, 2, 2), MmaTile(32, 64, 1, 2))
TARGET_BLOCKS = 256


def choose_mma_tile(m: int, n: int, batch: int = 1) -> MmaTile:
    """The largest tile giving TARGET_BLOCKS blocks, else the one giving the most (ties to the
    smaller tile: the same parallelism with less padding)."""
    best = None
    for t in MMA_TILES:
        blocks = -(-m // t.bm) * -(-n // t.bn) * batch
        if blocks >= TARGET_BLOCKS:
            return t
        if best is None or blocks >= best[0]:
            best = (blocks, t)
    return best[1]


def emit_mma_gemm(k: GpuKernel, m: int, n: int, kdim: int, batch: int, a: Operand, b: Operand, store: Store,
                  dt: DType, tile: MmaTile | None = None) -> Launch:
    t = tile or choose_mma_tile(m, n, batch)
    which = asm.MMA_BF16 if dt is DType.bf16 else asm.MMA_F16
    bld = k.b
    i16, i32, f32 = T.I16, T.I32, T.F32
    row_len = BK + PAD
    nthreads = t.threads
    tid = k.tid()
    lane = k.urem(tid, 32)
    warp = k.udiv(tid, 32)
    g = k.udiv(lane, 4)
    t4 = k.urem(lane, 4)
    wy, wx = k.udiv(warp, t.wn), k.urem(warp, t.wn)
    wm0 = k.mul(wy, t.bm // t.wm)
    wn0 = k.mul(wx, t.bn // t.wn)
    m0 = k.mul(k.ctaid("y"), t.bm)
    n0 = k.mul(k.ctaid("x"), t.bn)
    bz = k.ctaid("z") if batch > 1 else k.i(0)
    a_sh = k.shared("Ah", i16, 2 * t.bm * row_len)
    b_sh = k.shared("Bh", i16, 2 * t.bn * row_len)
    full_m, full_n, full_k = m % t.bm == 0, n % t.bn == 0, kdim % BK == 0
    ktiles = -(-kdim // BK)

    def fetch(op: Operand, rows: int, base, extent: int, full_rows: bool, k0):
        out = []
        for inside, i_rel, kk_rel in slice_elements(k, tid, rows, BK, nthreads, op.k_contiguous):
            i_abs, kk_abs = k.add(base, i_rel), k.add(k0, kk_rel)
            ok = None if full_rows else k.lt(i_abs, extent)
            if not full_k:
                c = k.lt(kk_abs, kdim)
                ok = c if ok is None else bld.and_(ok, c)
            if ok is not None:
                i_abs = bld.select(ok, i_abs, k.i(0))
                kk_abs = bld.select(ok, kk_abs, k.i(0))
            v = op.raw(k, bz, i_abs, kk_abs)
            if ok is not None:
                v = bld.select(ok, v, ir.Constant(i16, 0))
            out.append((inside, k.add(k.mul(i_rel, row_len), kk_rel), v))
        return out

    def put(sh, rows: int, buf_idx, vals):
        base = k.mul(buf_idx, rows * row_len)
        for inside, idx, v in vals:
            ptr = k.sgep(sh, i16, k.add(base, idx))
            if inside is None:
                bld.store(v, ptr)
            else:
                with k.if_(inside):
                    bld.store(v, ptr)

    def word(sh, idx):
        """32 bits (two halves) of shared memory at half index ``idx`` (even)."""
        return bld.load(k.sgep(sh, i16, idx), typ=i32, align=4)

    nm, nn = t.m_tiles, t.n_tiles
    with bld.goto_entry_block():
        acc_slots = [[[bld.alloca(f32) for _ in range(4)] for _ in range(nn)] for _ in range(nm)]
    for a_row in acc_slots:
        for tile_slots in a_row:
            for s in tile_slots:
                bld.store(k.f32(0.0), s)

    put(a_sh, t.bm, k.i(0), fetch(a, t.bm, m0, m, full_m, k.i(0)))
    put(b_sh, t.bn, k.i(0), fetch(b, t.bn, n0, n, full_n, k.i(0)))
    k.barrier()
    with k.loop(ktiles, name="kt") as kt:
        cur = k.urem(kt, 2)
        nxt = bld.sub(k.i(1), cur)
        has_next = k.lt(k.add(kt, 1), ktiles)
        k_load = bld.select(has_next, k.mul(k.add(kt, 1), BK), k.i(0))
        na = fetch(a, t.bm, m0, m, full_m, k_load)
        nb = fetch(b, t.bn, n0, n, full_n, k_load)
        a_base = k.mul(cur, t.bm * row_len)
        b_base = k.mul(cur, t.bn * row_len)
        accs = [[[bld.load(s, typ=f32) for s in ts] for ts in row] for row in acc_slots]
        for ks in range(0, BK, 16):
            c0 = k.add(k.mul(t4, 2), ks)
            c1 = k.add(c0, 8)
            a_frags = []
            for mt in range(nm):
                r0 = k.add(wm0, k.add(g, 16 * mt))
                r1 = k.add(r0, 8)
                ra, rb = k.add(a_base, k.mul(r0, row_len)), k.add(a_base, k.mul(r1, row_len))
                a_frags.append([word(a_sh, k.add(ra, c0)), word(a_sh, k.add(rb, c0)),
                                word(a_sh, k.add(ra, c1)), word(a_sh, k.add(rb, c1))])
            b_frags = []
            for nt in range(nn):
                col = k.add(b_base, k.mul(k.add(wn0, k.add(g, 8 * nt)), row_len))
                b_frags.append([word(b_sh, k.add(col, c0)), word(b_sh, k.add(col, c1))])
            for mt in range(nm):
                for nt in range(nn):
                    accs[mt][nt] = asm.mma_m16n8k16(k, which, a_frags[mt], b_frags[nt], accs[mt][nt])
        for mt in range(nm):
            for nt in range(nn):
                for e in range(4):
                    bld.store(accs[mt][nt][e], acc_slots[mt][nt][e])
        with k.if_(has_next):
            put(a_sh, t.bm, nxt, na)
            put(b_sh, t.bn, nxt, nb)
        k.barrier()

    for mt in range(nm):
        for nt in range(nn):
            for e in range(4):
                mi = k.add(m0, k.add(wm0, k.add(g, 16 * mt + (8 if e >= 2 else 0))))
                nj = k.add(n0, k.add(wn0, k.add(k.mul(t4, 2), 8 * nt + (e & 1))))
                ok = None if full_m else k.lt(mi, m)
                if not full_n:
                    c = k.lt(nj, n)
                    ok = c if ok is None else bld.and_(ok, c)
                acc = bld.load(acc_slots[mt][nt][e], typ=f32)
                if ok is None:
                    store(k, bz, mi, nj, acc)
                else:
                    with k.if_(ok):
                        store(k, bz, mi, nj, acc)
    grid = (-(-n // t.bn), -(-m // t.bm), batch)
    return Launch(grid, (nthreads, 1, 1), t.shared_bytes, ((n, t.bn), (m, t.bm), (batch, 1)))
