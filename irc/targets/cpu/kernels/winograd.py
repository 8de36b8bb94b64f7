"""Kernel of ``conv_winograd`` (lowering/winograd.py): F(m x m, 3 x 3) on the packed GEMM engine.

The output tiles of an image are cut into blocks of whole tile rows. Per block:

1. input transform, V = B^T d B for every tile and input channel, written straight into the
   GEMM's packed column panels V_t [panels][Cin][NR] (tiles along a panel), one per point t
   (winograd_transforms.py);
2. a*a GEMMs M_t [Cout][tiles] = U_t . V_t on the packed micro-kernels, U_t the weights'
   transform packed at compile time;
3. output transform, Y = A^T M A, with the fused epilogue (bias, residual, activation) applied
   as the outputs are written; tiles that overhang the output store only their inside.

Threads take whole blocks, each with its own V and M, so one image keeps both threads busy;
when there are fewer blocks than threads (a 7x7 map at batch 1) they share each block instead,
step by step (``WinogradShape.phased``). V_t and M_t are one cache line longer than their data:
their sizes are often multiples of 4 KiB, and the a*a values of one tile would otherwise all
fall into one L1 set (measured: the transforms ran 5x slower).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from llvmlite import ir

from irc.ir.graph import Node
from irc.targets.cpu import gemm
from irc.targets.cpu.kernel import KernelBuilder
from irc.targets.cpu.kernels.registry import CpuContext, cpu_kernel
from irc.targets.cpu.kernels.winograd_transforms import f32_at, input_transform, output_transform
from irc.targets.llvm import lltypes as T

#: Most tiles in a block (see block_rows): the GEMM of one point t reads V_t [Cin x tiles] and
#: writes M_t [Cout x tiles], which stay in L2 for the channel counts of 3x3 layers.
MAX_BLOCK_TILES = 64
#: What a block costs besides its GEMM columns, in columns (measured: ResNet-18's 56x56 layer).
BLOCK_OVERHEAD = 16
LINE_FLOATS = 16


@dataclass(frozen=True)
class WinogradShape:
    """Static sizes of one conv_winograd node and of its blocking for ``ctx``."""

    n: int
    c: int
    h: int
    w: int
    cout: int
    oh: int
    ow: int
    m: int
    pt: int
    pl: int
    mr: int
    tile: gemm.Tile
    group: int  # tiles the input transform's row pass takes at once (a vector of them)
    rows: int  # tile rows per block

    @classmethod
    def of(cls, node: Node, ctx: CpuContext) -> WinogradShape:
        x, up, y = node.inputs[0].type, node.inputs[1].type, node.outputs[0].type
        n, c, h, w = x.shape
        oh, ow = y.shape[2:]
        m = node.attrs["m"]
        mr = up.shape[3]
        tile = gemm_tile(mr, ctx.vector_bits)
        th, tw = math.ceil(oh / m), math.ceil(ow / m)
        group = row_group(tw, tile.vl)
        return cls(n, c, h, w, node.attrs["cout"], oh, ow, m, node.attrs["pads"][0], node.attrs["pads"][1], mr, tile,
                   group, block_rows(n, th, padded(tw, group), tile.nr, ctx.threads))

    @property
    def a(self) -> int:
        return self.m + 2

    @property
    def points(self) -> int:
        return self.a * self.a

    @property
    def th(self) -> int:
        return math.ceil(self.oh / self.m)

    @property
    def tw(self) -> int:
        return math.ceil(self.ow / self.m)

    @property
    def twp(self) -> int:
        """Tiles per row in the block's numbering: rows padded to whole groups, so a group's
        V lanes are contiguous (the padding tiles are computed, never stored)."""
        return padded(self.tw, self.group)

    @property
    def blocks(self) -> int:
        """Blocks per image."""
        return math.ceil(self.th / self.rows)

    @property
    def panels(self) -> int:
        return math.ceil(self.rows * self.twp / self.tile.nr)

    @property
    def cols(self) -> int:
        """GEMM columns per block: the block's tiles padded to whole panels."""
        return self.panels * self.tile.nr

    @property
    def xp(self) -> int:
        """Width of the row buffer: the padded input the tiles of a row read (and the one tile
        more that the row pass's shifted loads reach)."""
        return self.twp * self.m + self.m + 2

    @property
    def v_stride(self) -> int:
        """Floats from V_t to V_t+1: one cache line more than V_t (module docstring)."""
        return self.cols * self.c + LINE_FLOATS

    @property
    def m_stride(self) -> int:
        return self.cout * self.cols + LINE_FLOATS

    def layout(self) -> tuple[tuple[int, int], int, tuple[int, int], int]:
        """Byte offsets of V and M in their region and its size; of the row buffer and a zero
        input row in a thread's own region, and its size."""
        return _offsets(self.points * self.v_stride, self.points * self.m_stride) + \
            _offsets(self.a * self.xp, padded(self.w, 16))

    def phased(self, threads: int) -> bool:
        """Fewer blocks than threads (a small image, batch 1): the threads share each block,
        input channels, points t and output channels in turn, instead of taking whole blocks."""
        return threads > 1 and self.n * self.blocks < threads

    def scratch_bytes(self, threads: int) -> int:
        _, vm, _, own = self.layout()
        return vm + own * threads if self.phased(threads) else (vm + own) * threads


def _offsets(*floats: int) -> tuple[tuple[int, ...], int]:
    offs, at = [], 0
    for f in floats:
        offs.append(at)
        at += (f * 4 + 63) // 64 * 64
    return tuple(offs), at


def gemm_tile(mr: int, vector_bits: int) -> gemm.Tile:
    """The fastest GEMM tile with the MR the weights were packed with."""
    for t, _ in gemm.tile_candidates(vector_bits):
        if t.mr == mr:
            return t
    return gemm.Tile(mr, vector_bits // 32 * 2, vector_bits // 32)


def padded(n: int, to: int) -> int:
    return -(-n // to) * to


def row_group(tw: int, vl: int) -> int:
    """Tiles per vector in the row pass: VL, or a half or quarter vector (at least 4) where
    that pads a row of tw tiles less (a 14x14 output has 4 tiles of 4x4 per row)."""
    cands = [g for g in (vl, vl // 2, vl // 4) if g >= 4] or [vl]
    return min(cands, key=lambda g: (padded(tw, g), -g))


def block_rows(n: int, th: int, twp: int, nr: int, threads: int) -> int:
    """Tile rows per block: the fewest padded GEMM columns on the busiest thread, each block
    also paying BLOCK_OVERHEAD columns (the weights streamed once more, the GEMMs set up), with
    at most MAX_BLOCK_TILES tiles (a block's V_t and M_t stay in cache)."""
    best = None
    for rows in range(1, th + 1):
        if rows > 1 and rows * twp > MAX_BLOCK_TILES:
            break
        blocks = math.ceil(th / rows)
        cols = padded(rows * twp, nr)
        key = (math.ceil(n * blocks / max(1, threads)) * (cols + BLOCK_OVERHEAD), blocks * cols)
        if best is None or key < best[0]:
            best = (key, rows)
    return best[1]


def _scratch(node: Node, ctx: CpuContext) -> int:
    return WinogradShape.of(node, ctx).scratch_bytes(max(1, ctx.threads))


def _at(k: KernelBuilder, base: ir.Value, offset) -> ir.Value:
    off = offset if isinstance(offset, ir.Value) else k.i64(offset)
    return k.b.gep(base, [off], inbounds=True, source_etype=T.I8)


def _block(k: KernelBuilder, s: WinogradShape, u: ir.Value) -> tuple[ir.Value, ir.Value, ir.Value]:
    """(image, first tile row, tile rows) of block ``u``."""
    b = k.b
    img = b.sdiv(u, k.i64(s.blocks))
    ty0 = b.mul(b.srem(u, k.i64(s.blocks)), k.i64(s.rows))
    rows = b.sub(k.i64(s.th), ty0)
    return img, ty0, b.select(b.icmp_signed("<", rows, k.i64(s.rows)), rows, k.i64(s.rows))


def _own_buffers(k: KernelBuilder, s: WinogradShape, base: ir.Value) -> tuple[ir.Value, ir.Value]:
    """A thread's row buffer and zero row at ``base``, zeroed (the row buffer's borders are the
    padding the column pass never writes)."""
    _, _, (row_at, zero_at), _ = s.layout()
    row_buf, zero_row = _at(k, base, row_at), _at(k, base, zero_at)
    k.memset(row_buf, 0, s.a * s.xp * 4)
    k.memset(zero_row, 0, padded(s.w, 16) * 4)
    return row_buf, zero_row


@cpu_kernel("conv_winograd", scratch=_scratch)
def _conv_winograd(k: KernelBuilder, node: Node) -> None:
    threads = max(1, k.state.ctx.threads)
    s = WinogradShape.of(node, k.state.ctx)
    (v_at, m_at), vm, _, own = s.layout()
    if s.phased(threads):
        _phased(k, s, node, threads)
        return
    work = s.rows * s.twp * s.points * s.c * s.cout
    with k.parallel_chunks(s.n * s.blocks, work, max_workers=threads) as (lo, hi, tid, _):
        base = _at(k, k.scratch_ptr(), k.b.mul(tid, k.i64(vm + own)))
        v_buf, m_buf = _at(k, base, v_at), _at(k, base, m_at)
        # V's columns past a block's tiles hold whatever was there: each GEMM column is one tile's
        # own, and the output transform stores only the tiles inside the output.
        row_buf, zero_row = _own_buffers(k, s, _at(k, base, vm))
        with k.loop(hi, start=lo, name="blk") as u:
            img, ty0, rows = _block(k, s, u)
            input_transform(k, s, img, ty0, rows, v_buf, row_buf, zero_row)
            _gemms(k, s, v_buf, m_buf)
            output_transform(k, s, node, img, ty0, rows, m_buf)


def _phased(k: KernelBuilder, s: WinogradShape, node: Node, threads: int) -> None:
    """Block after block, each step split over the threads: the input transform by input
    channels, the GEMMs by points t, the output transform by output channels."""
    (v_at, m_at), vm, _, own = s.layout()
    tile_work = s.rows * s.twp * s.points
    with k.loop(s.n * s.blocks, name="blk") as u:
        block = _block(k, s, u)
        with k.parallel_chunks(s.c, tile_work, captures=block, max_workers=threads) as (lo, hi, tid, caps):
            base = k.scratch_ptr()
            row_buf, zero_row = _own_buffers(k, s, _at(k, base, k.b.add(k.i64(vm), k.b.mul(tid, k.i64(own)))))
            input_transform(k, s, *caps, _at(k, base, v_at), row_buf, zero_row, c_range=(lo, hi))
        with k.parallel_chunks(s.points, s.cout * s.cols * s.c, max_workers=threads) as (lo, hi, _, _):
            base = k.scratch_ptr()
            _gemms(k, s, _at(k, base, v_at), _at(k, base, m_at), t_range=(lo, hi))
        with k.parallel_chunks(s.cout, tile_work, captures=block, max_workers=threads) as (lo, hi, _, caps):
            output_transform(k, s, node, *caps, _at(k, k.scratch_ptr(), m_at), o_range=(lo, hi))


def _gemms(k: KernelBuilder, s: WinogradShape, v_buf, m_buf, t_range=None) -> None:
    """M_t = U_t . V_t for the points t in ``t_range`` (all by default), on this thread."""
    up = k.ins[1]
    plan = gemm.GemmPlan(s.cout, s.cols, s.c, s.tile, 1)
    u_stride = up.shape[1] * up.shape[2] * up.shape[3]
    lo, hi = t_range or (k.i64(0), k.i64(s.points))
    with k.loop(hi, start=lo, name="t") as t:
        b = k.b
        u_t = f32_at(k, k.ptr(up), b.mul(t, k.i64(u_stride)))
        v_t = f32_at(k, v_buf, b.mul(t, k.i64(s.v_stride)))
        m_t = f32_at(k, m_buf, b.mul(t, k.i64(s.m_stride)))
        gemm.emit_gemm(k, plan, a=gemm.packed_constant(up.index, s.mr, s.c, base=lambda kb: u_t),
                       b=gemm.packed_constant(0, s.tile.nr, s.c, base=lambda kb: v_t),
                       c_ptr=lambda kb: m_t, ldc=s.cols, epi=gemm.Epilogue())
