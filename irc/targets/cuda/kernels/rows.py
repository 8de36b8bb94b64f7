"""Row-wise kernels: every output comes from folding one "row" of input elements (a reduction's
reduced elements, a softmax axis, a pooling window, a normalization's group).

Two shapes of parallelism, chosen by the row length:
- long rows (>= WARP_MIN): one warp per row; lanes stride over the row, then combine their
  partial results with butterfly shuffles, so every lane ends with the whole row's result
  (softmax uses it in a second pass over the same row);
- short rows: one thread per row (a warp would idle most of its lanes).

``fold`` runs a loop over the row accumulating a tuple of values, then combines across lanes.
Rows are visited by a grid-stride loop in both shapes.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from llvmlite import ir

from irc.targets.cuda.kernel import WARP, GpuKernel, Launch

WARP_MIN = 64
ROW_THREADS = 256


@dataclass
class Row:
    index: ir.Value  # which row
    lane: ir.Value  # lane in the warp (0 in thread mode)
    warp: bool


@contextlib.contextmanager
def rows(k: GpuKernel, n_rows: int, row_len: int, force_thread: bool = False) -> Iterator[Row]:
    """Visit every row once (see the module docstring); the launch is ``rows_launch(...)``."""
    warp = row_len >= WARP_MIN and not force_thread
    if warp:
        tid = k.tid()
        lane = k.urem(tid, WARP)
        warp_in_block = k.udiv(tid, WARP)
        per_block = ROW_THREADS // WARP
        start = k.add(k.mul(k.ctaid(), per_block), warp_in_block)
        step = k.mul(k.nctaid(), per_block)
        with k.loop(k.i(n_rows), start=start, step=step, name="row") as r:
            yield Row(r, lane, True)
    else:
        with k.grid_stride(n_rows, name="row") as r:
            yield Row(r, k.i(0), False)


def rows_launch(n_rows: int, row_len: int, force_thread: bool = False) -> Launch:
    warp = row_len >= WARP_MIN and not force_thread
    per_block = ROW_THREADS // WARP if warp else ROW_THREADS
    blocks = max(1, min(-(-n_rows // per_block), 1 << 16))
    return Launch((blocks, 1, 1), (ROW_THREADS, 1, 1), 0, ((n_rows, 0),))


def fold(k: GpuKernel, row: Row, row_len: int, init: Sequence[ir.Value],
         step: Callable[[list[ir.Value], ir.Value], Sequence[ir.Value]],
         combine: Callable[[list[ir.Value], list[ir.Value]], Sequence[ir.Value]]) -> list[ir.Value]:
    """acc = step(acc, j) over the row's j (this lane's share), then combined over the warp."""
    b = k.b
    with b.goto_entry_block():
        slots = [b.alloca(v.type) for v in init]
    for s, v in zip(slots, init):
        b.store(v, s)
    stride = WARP if row.warp else 1
    with k.loop(k.i(row_len), start=row.lane, step=stride, name="j") as j:
        acc = [b.load(s, typ=v.type) for s, v in zip(slots, init)]
        for s, v in zip(slots, step(acc, j)):
            b.store(v, s)
    acc = [b.load(s, typ=v.type) for s, v in zip(slots, init)]
    if row.warp:
        for mask in (16, 8, 4, 2, 1):
            other = [_shfl_any(k, v, mask) for v in acc]
            acc = list(combine(acc, other))
    return acc


def _shfl_any(k: GpuKernel, v: ir.Value, mask: int) -> ir.Value:
    """A butterfly shuffle of any 32- or 64-bit scalar (64-bit ones as two halves)."""
    b = k.b
    t = v.type
    if isinstance(t, ir.IntType) and t.width < 32:
        return b.trunc(k.shfl_xor(b.sext(v, ir.IntType(32)), mask), t)
    if isinstance(t, ir.IntType) and t.width == 64 or isinstance(t, ir.DoubleType):
        bits = b.bitcast(v, ir.IntType(64)) if isinstance(t, ir.DoubleType) else v
        lo = b.trunc(bits, ir.IntType(32))
        hi = b.trunc(b.lshr(bits, ir.Constant(ir.IntType(64), 32)), ir.IntType(32))
        lo, hi = k.shfl_xor(lo, mask), k.shfl_xor(hi, mask)
        out = b.or_(b.zext(lo, ir.IntType(64)), b.shl(b.zext(hi, ir.IntType(64)), ir.Constant(ir.IntType(64), 32)))
        return b.bitcast(out, t) if isinstance(t, ir.DoubleType) else out
    if isinstance(t, ir.HalfType):
        return b.fptrunc(k.shfl_xor(b.fpext(v, ir.FloatType()), mask), t)
    return k.shfl_xor(v, mask)


@contextlib.contextmanager
def lane_loop(k: GpuKernel, row: Row, row_len: int) -> Iterator[ir.Value]:
    """This lane's share of the row's elements (all of them in thread mode)."""
    with k.loop(k.i(row_len), start=row.lane, step=WARP if row.warp else 1, name="w") as j:
        yield j
