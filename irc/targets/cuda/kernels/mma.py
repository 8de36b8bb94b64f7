"""The tensor-core GEMM: f16/bf16 operands, f32 accumulators, ``mma.sync.m16n8k16`` (sm_80+).

The multiply-accumulate of the tiled GEMM scaffold (gemm.py) for tensor cores: the readers give
the operands' raw 16-bit storage and the block works warp by warp:

- a block tile BM x BN is split among warps (WM x WN of them), each warp owning a (BM/WM) x
  (BN/WN) tile made of 16x8 mma tiles; every lane keeps 4 f32 accumulators per mma tile;
- BK = 32 deep slices of A and B are staged by the scaffold, both stored k-contiguous
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

from llvmlite import ir

from irc.ir.types import DType
from irc.targets.cuda import asm
from irc.targets.cuda.kernel import WARP, GpuKernel, Launch
from irc.targets.cuda.kernels.gemm import Mac, Operand, Store, Tile, emit_tiled
from irc.targets.llvm import lltypes as T

BK = 32
PAD = 8


def mma_tile(bm: int, bn: int, wm: int, wn: int) -> Tile:
    """A block tile of ``wm`` x ``wn`` warps, each owning (bm / wm) x (bn / wn) of C."""
    return Tile(bm, bn, BK, bm // wm, bn // wn, lanes=WARP)


MMA_TILES = (mma_tile(128, 128, 2, 4), mma_tile(64, 128, 2, 2), mma_tile(64, 64, 2, 2), mma_tile(32, 64, 1, 2))


class Mma(Mac):
    """m16n8k16 tensor-core products of 16-bit operands into f32 accumulators."""

    elem = T.I16
    acc = T.F32
    pad = PAD
    names = ("Ah", "Bh")
    tiles = MMA_TILES

    def __init__(self, dt: DType):
        self.which = asm.MMA_BF16 if dt is DType.bf16 else asm.MMA_F16

    def reader(self, op: Operand):
        return op.raw

    def setup(self, k: GpuKernel, t: Tile, tid: ir.Value):
        lane, warp = k.urem(tid, WARP), k.udiv(tid, WARP)
        wn = t.bn // t.tn
        wy, wx = k.udiv(warp, wn), k.urem(warp, wn)
        # lane = 4 g + t4 in the PTX ISA's fragment layouts
        return k.udiv(lane, 4), k.urem(lane, 4), k.mul(wy, t.tm), k.mul(wx, t.tn)

    def count(self, t: Tile) -> int:
        return (t.tm // 16) * (t.tn // 8) * 4

    def step(self, k: GpuKernel, t: Tile, place, a_sh, b_sh, a_base, b_base, accs: list) -> list:
        g, t4, wm0, wn0 = place
        nm, nn = t.tm // 16, t.tn // 8
        row_len = t.bk + PAD

        def word(sh, idx):
            """32 bits (two halves) of shared memory at half index ``idx`` (even)."""
            return k.b.load(k.sgep(sh, T.I16, idx), typ=T.I32, align=4)

        tiles = [[accs[(mt * nn + nt) * 4:(mt * nn + nt + 1) * 4] for nt in range(nn)] for mt in range(nm)]
        for ks in range(0, t.bk, 16):
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
                    tiles[mt][nt] = asm.mma_m16n8k16(k, self.which, a_frags[mt], b_frags[nt], tiles[mt][nt])
        return [v for row in tiles for tile in row for v in tile]

    def outputs(self, k: GpuKernel, t: Tile, place, accs: list):
        g, t4, wm0, wn0 = place
        nm, nn = t.tm // 16, t.tn // 8
        for mt in range(nm):
            for nt in range(nn):
                for e in range(4):
                    mr = k.add(wm0, k.add(g, 16 * mt + (8 if e >= 2 else 0)))
                    nc = k.add(wn0, k.add(k.mul(t4, 2), 8 * nt + (e & 1)))
                    yield mr, nc, accs[(mt * nn + nt) * 4 + e]


def emit_mma_gemm(k: GpuKernel, m: int, n: int, kdim: int, batch: int, a: Operand, b: Operand, store: Store,
                  dt: DType, tile: Tile | None = None) -> Launch:
    """The tensor-core GEMM of f16/bf16 operands (both readers with ``raw``) into kernel ``k``."""
    return emit_tiled(k, m, n, kdim, batch, a, b, store, Mma(dt), tile)
