"""The shape of one generated GEMM kernel: the problem (C = A·B with A M x K, B K x N, fp32), the PE
array (PM x PN multiply-accumulates per cycle) and the on-chip tiles.

The kernel keeps a TM x TN tile of C in on-chip accumulators and walks K in blocks of TK: for each
k it adds the outer product of a TM column of A and a TN row of B, PM x PN products per cycle. An
accumulator is revisited every (TM/PM)·(TN/PN) cycles, so that distance must cover the loop body's
read-to-write latency (MAC_DEPTH) for the loop to hold II=1 without partial sums, and for the
``DEPENDENCE ... false`` pragma that tells the tool so to be true. Device memory moves 512-bit
beats of W = 16 floats: A is read transposed (A^T, K rows of M) and B and C by rows, so a beat fills
16 consecutive columns of a tile. The matrices are stored padded with zeros to whole tiles (MP x NP
for C, KP rows of A^T and B), so every load and store is an unconditional burst of whole tile rows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from irc.errors import InputError
from irc.targets.fpga_hls.precision import FADD_LATENCY

#: cycles from an accumulator's read to its write in the MAC loop: the float multiply (4, its
#: operands are ready with the read) and the fabric add, the read and the write
MAC_DEPTH = 4 + FADD_LATENCY + 3

#: floats in one 512-bit AXI beat
W = 16
#: the PE array and tiles chosen when none is given: 384 MACs, within 80% of one U200 SLR (model.py)
DEFAULT_PE = (24, 16)
DEFAULT_TILE = (192, 256, 128)


def _up(x: int, m: int) -> int:
    return -(-x // m) * m


@dataclass(frozen=True, slots=True)
class GemmConfig:
    """Sizes of the problem, the PE array and the tiles (all positive; TM a multiple of PM and W,
    TN of PN and W, TK of W)."""

    M: int
    N: int
    K: int
    PM: int
    PN: int
    TM: int
    TN: int
    TK: int

    # -- padded sizes and counts
    @property
    def MP(self) -> int:
        """Row length of A^T in device memory, and rows of C: M padded to whole tiles."""
        return self.MT * self.TM

    @property
    def NP(self) -> int:
        """Row length of B and C in device memory: N padded to whole tiles."""
        return self.NT * self.TN

    @property
    def KP(self) -> int:
        """Rows of A^T and B in device memory: K padded to whole blocks."""
        return self.KB * self.TK

    @property
    def MT(self) -> int:
        return -(-self.M // self.TM)

    @property
    def NT(self) -> int:
        return -(-self.N // self.TN)

    @property
    def KB(self) -> int:
        return -(-self.K // self.TK)

    @property
    def distance(self) -> int:
        """Cycles between two updates of one accumulator."""
        return (self.TM // self.PM) * (self.TN // self.PN)

    @property
    def load_a_ii(self) -> int:
        """A beat's 16 values go to consecutive rows of the tile, PM banks: 16/PM writes per bank."""
        return -(-W // self.PM)

    @property
    def store_ii(self) -> int:
        """A beat of C reads 16 consecutive columns of the accumulators, PN banks."""
        return -(-W // self.PN)


def make_config(M: int, N: int, K: int, pe: tuple[int, int] | None = None,
                tile: tuple[int, int, int] | None = None) -> GemmConfig:
    """Checked sizes; tiles default to DEFAULT_TILE rounded to the PE array, shrunk to the
    problem where it is smaller (but kept deep enough for the adder's latency)."""
    for name, v in (("M", M), ("N", N), ("K", K)):
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            raise InputError(f"gemm: {name} must be a positive integer, got {v!r}")
    pm, pn = pe if pe is not None else DEFAULT_PE
    if not all(isinstance(p, int) and p >= 1 for p in (pm, pn)):
        raise InputError(f"gemm: pe must be two positive integers (rows, columns of the PE array), got {pe!r}")
    qm, qn = math.lcm(pm, W), math.lcm(pn, W)
    if tile is None:
        tm = min(_up(DEFAULT_TILE[0], qm), _up(M, qm))
        tn = min(_up(DEFAULT_TILE[1], qn), _up(N, qn))
        tk = min(DEFAULT_TILE[2], _up(K, W))
        while (tm // pm) * (tn // pn) < MAC_DEPTH:  # small problems: deepen the tile for the adder
            tm += qm
    else:
        tm, tn, tk = tile
        if min(tm, tn, tk) < 1 or tm % qm or tn % qn or tk % W:
            raise InputError(f"gemm: tile {tile} must be (a multiple of {qm} (PM={pm} and the {W}-float beat), "
                             f"a multiple of {qn} (PN={pn} and the beat), a multiple of {W})")
    cfg = GemmConfig(M, N, K, pm, pn, tm, tn, tk)
    if cfg.distance < MAC_DEPTH:
        raise InputError(f"gemm: tile {tm}x{tn} on a {pm}x{pn} PE array revisits an accumulator every "
                         f"{cfg.distance} cycles, fewer than the {MAC_DEPTH} from its read to its write: use a larger tile")
    return cfg


def tile_candidates(M: int, N: int, K: int, pe: tuple[int, int] | None = None) -> list[tuple[int, int, int]]:
    """Tiles worth modelling for this problem: TM and TN on their steps up to a little over the
    default (or the problem), TK 64, 128 or 256 (or the whole of a shorter K)."""
    pm, pn = pe if pe is not None else DEFAULT_PE
    qm, qn = math.lcm(pm, W), math.lcm(pn, W)
    tms = range(qm, min(_up(M, qm), _up(3 * DEFAULT_TILE[0] // 2, qm)) + 1, qm)
    tns = range(qn, min(_up(N, qn), _up(DEFAULT_TILE[1], qn)) + 1, qn)
    tks = sorted({min(t, _up(K, W)) for t in (64, 128, 256)})
    return [(tm, tn, tk) for tm in tms for tn in tns for tk in tks if (tm // pm) * (tn // pn) >= MAC_DEPTH]
