"""Strided copies: the one engine behind every data-movement kernel.

Reshape, transpose, concat, split, expand, tile and slice all copy elements from one strided
view to another, so each states its copy as (shape, source strides, destination strides) and
``emit_copy`` picks the loop: dimensions that both sides walk contiguously are merged, a
contiguous innermost run becomes one ``memcpy`` per row, a transposed pair of dimensions is
copied in cache-sized tiles, and anything else is an element loop. Elements are copied as
their raw storage bits (no conversion, so bf16 and NaN payloads survive untouched).

Outer dimensions run on the thread pool through ``parallel_nest``, which flattens enough
leading dimensions to give every thread work even when the first one is small.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Sequence

from llvmlite import ir

from irc.targets.cpu.kernel import PARALLEL_MIN_WORK, KernelBuilder
from irc.targets.llvm import lltypes as T
from irc.targets.llvm.builder import Buf
from irc.targets.llvm.elementwise import collapse

#: A parallel nest flattens leading dimensions until there are this many iterations to share.
FLATTEN_MIN = 64


def elem_ptr(k: KernelBuilder, buf: Buf, off: ir.Value | int) -> ir.Value:
    """Address of element ``off`` of ``buf`` (valid in the function being emitted now)."""
    off = k.i64(off) if isinstance(off, int) else off
    return k.b.gep(k.ptr(buf), [off], inbounds=True, source_etype=T.storage_type(buf.dtype))


def load_raw(k: KernelBuilder, buf: Buf, off: ir.Value | int) -> ir.Value:
    st = T.storage_type(buf.dtype)
    return k.b.load(elem_ptr(k, buf, off), typ=st)


def store_raw(k: KernelBuilder, buf: Buf, off: ir.Value | int, v: ir.Value) -> None:
    k.b.store(v, elem_ptr(k, buf, off))


def memcpy(k: KernelBuilder, dst: ir.Value, src: ir.Value, nbytes: ir.Value | int) -> None:
    """memcpy with a size known only at run time (KernelBuilder.memcpy takes a constant)."""
    if isinstance(nbytes, int):
        k.memcpy(dst, src, nbytes)
        return
    fn = k.state.declare("llvm.memcpy.p0.p0.i64", T.VOID, [T.PTR, T.PTR, T.I64, T.I1])
    k.b.call(fn, [dst, src, nbytes, ir.Constant(T.I1, 0)])


def delinearize(k: KernelBuilder, flat: ir.Value, dims: Sequence[int]) -> list[ir.Value]:
    """The row-major multi-index of ``flat`` over ``dims`` (divisions by constants)."""
    idx = []
    for d in reversed(dims[1:]):
        idx.append(k.b.urem(flat, k.i64(d)))
        flat = k.b.udiv(flat, k.i64(d))
    idx.append(flat)
    return idx[::-1]


def add(k: KernelBuilder, a: ir.Value, b: ir.Value | int) -> ir.Value:
    if isinstance(b, int):
        if b == 0:
            return a
        b = k.i64(b)
    return k.b.add(a, b, flags=["nsw"])


@contextlib.contextmanager
def parallel_nest(k: KernelBuilder, dims: Sequence[int], work: int = 1, name: str = "o") -> Iterator[list[ir.Value]]:
    """Loops over ``dims`` (outermost first), ``work`` element-operations per iteration; yields
    the index list. When the whole is worth a parallel region, leading dimensions are flattened
    until there are FLATTEN_MIN iterations and those are shared by the pool."""
    dims = list(dims)
    if not dims:
        yield []
        return
    total = math.prod(dims) * work
    if k.state.threads_global is None or total < PARALLEL_MIN_WORK or math.prod(dims) < 2:
        with k.nest(dims, name=name) as idx:
            yield idx
        return
    p, count = 1, dims[0]
    while p < len(dims) and count < FLATTEN_MIN:
        count *= dims[p]
        p += 1
    with k.parallel_loop(count, work_per_iter=total // count, name=name) as flat:
        head = delinearize(k, flat, dims[:p])
        with k.nest(dims[p:], name=name + "n") as rest:
            yield head + rest


#: Element sizes whose full tiles are transposed with vector shuffles (AVX-512 has two-source
#: permutes for 16-, 32- and 64-bit lanes).
REGISTER_TRANSPOSE_ITEMS = (2, 4, 8)


def transpose_tile(itemsize: int) -> int:
    """Tile edge for transposed copies: one 64-byte cache line of elements, 8 at least."""
    return max(8, 64 // itemsize)


def emit_copy(k: KernelBuilder, shape: Sequence[int], dst: Buf, dst_off: int, dst_strides: Sequence[int],
              src: Buf, src_off: int, src_strides: Sequence[int]) -> None:
    """dst[dst_off + sum(i*dst_strides)] = src[src_off + sum(i*src_strides)] for every index i of
    ``shape``. Strides are in elements and may be zero (broadcast) or negative (reversal)."""
    if math.prod(shape) == 0:
        return
    dims, (ss, ds) = collapse(shape, [list(src_strides), list(dst_strides)])
    item = dst.dtype.itemsize
    last = len(dims) - 1
    if ss[last] == 1 and ds[last] == 1:
        _copy_rows(k, dims, ss, ds, dst, dst_off, src, src_off, item)
        return
    q = next((d for d in range(last) if ss[d] == 1), None)
    if ds[last] == 1 and q is not None and ss[last] != 0:
        _copy_tiles(k, dims, ss, ds, q, dst, dst_off, src, src_off, item)
        return
    run = dims[last]
    with parallel_nest(k, dims[:-1], run) as idx:
        so = add(k, k.offset(idx, ss[:-1]), src_off)
        do = add(k, k.offset(idx, ds[:-1]), dst_off)
        if ss[last] == 0:  # broadcast along the row: one load, a run of stores
            v = load_raw(k, src, so)
            with k.loop(run, name="j") as j:
                store_raw(k, dst, add(k, do, k.b.mul(j, k.i64(ds[last]))), v)
        else:
            with k.loop(run, name="j") as j:
                v = load_raw(k, src, add(k, so, k.b.mul(j, k.i64(ss[last]))))
                store_raw(k, dst, add(k, do, k.b.mul(j, k.i64(ds[last]))), v)


def _copy_rows(k, dims, ss, ds, dst, dst_off, src, src_off, item) -> None:
    """Innermost dimension contiguous on both sides: a memcpy per row. A single run is cut
    into one piece per thread."""
    run = dims[-1]
    if len(dims) == 1:
        with k.parallel_chunks(run, 1) as (lo, hi, _tid, _):
            n = k.b.mul(k.b.sub(hi, lo), k.i64(item))
            memcpy(k, elem_ptr(k, dst, add(k, lo, dst_off)), elem_ptr(k, src, add(k, lo, src_off)), n)
        return
    with parallel_nest(k, dims[:-1], run) as idx:
        so = add(k, k.offset(idx, ss[:-1]), src_off)
        do = add(k, k.offset(idx, ds[:-1]), dst_off)
        k.memcpy(elem_ptr(k, dst, do), elem_ptr(k, src, so), run * item)


def _copy_tiles(k, dims, ss, ds, q, dst, dst_off, src, src_off, item) -> None:
    """Dimension ``q`` is contiguous in the source, the last one in the destination: copy
    square tiles so that both sides touch whole cache lines while they are cached."""
    t = transpose_tile(item)
    last = len(dims) - 1
    dq, dl = dims[q], dims[last]
    outer = [d for d in range(last) if d != q]
    grid = [dims[d] for d in outer] + [-(-dq // t), -(-dl // t)]
    b = k.b
    with parallel_nest(k, grid, t * t) as idx:
        b = k.b
        base = idx[:-2]
        q0 = b.mul(idx[-2], k.i64(t))
        l0 = b.mul(idx[-1], k.i64(t))
        so = add(k, k.offset(base, [ss[d] for d in outer]), src_off)
        do = add(k, k.offset(base, [ds[d] for d in outer]), dst_off)
        so = add(k, so, add(k, q0, b.mul(l0, k.i64(ss[last]))))
        do = add(k, do, add(k, b.mul(q0, k.i64(ds[q])), l0))
        qn = _min(k, k.b.sub(k.i64(dq), q0), t)
        ln = _min(k, k.b.sub(k.i64(dl), l0), t)
        full = b.and_(b.icmp_signed("==", qn, k.i64(t)), b.icmp_signed("==", ln, k.i64(t)))
        with b.if_else(full) as (then, other):
            with then:
                if item in REGISTER_TRANSPOSE_ITEMS:
                    _tile_in_registers(k, t, so, do, ss[last], ds[q], dst, src)
                else:
                    _tile(k, t, t, so, do, ss[last], ds[q], dst, src)
            with other:
                _tile(k, qn, ln, so, do, ss[last], ds[q], dst, src)


def _tile_in_registers(k, t, so, do, src_row, dst_row, dst, src) -> None:
    """A full t x t tile: t vector loads, log2(t) rounds of two-source shuffles that swap
    ever larger off-diagonal blocks, t vector stores."""
    b = k.b
    it = ir.IntType(8 * dst.dtype.itemsize)
    vt = ir.VectorType(it, t)
    rows = []
    for c in range(t):
        ptr = b.gep(k.ptr(src), [add(k, so, c * src_row)], inbounds=True, source_etype=it)
        rows.append(b.load(ptr, typ=vt, align=dst.dtype.itemsize))
    blk = 1
    while blk < t:
        nxt = list(rows)
        for i in range(t):
            if i & blk:
                continue
            p = i | blk
            lo = [j if not j & blk else t + j - blk for j in range(t)]
            hi = [j + blk if not j & blk else t + j for j in range(t)]
            nxt[i] = b.shuffle_vector(rows[i], rows[p], ir.Constant(ir.VectorType(T.I32, t), lo))
            nxt[p] = b.shuffle_vector(rows[i], rows[p], ir.Constant(ir.VectorType(T.I32, t), hi))
        rows = nxt
        blk *= 2
    for a in range(t):
        ptr = b.gep(k.ptr(dst), [add(k, do, a * dst_row)], inbounds=True, source_etype=it)
        b.store(rows[a], ptr, align=dst.dtype.itemsize)


def _tile(k, qn, ln, so, do, src_row, dst_row, dst, src) -> None:
    b = k.b
    with k.loop(qn, name="tq") as a:
        s_row = add(k, so, a)
        d_row = add(k, do, b.mul(a, k.i64(dst_row)))
        with k.loop(ln, name="tl") as c:
            v = load_raw(k, src, add(k, s_row, b.mul(c, k.i64(src_row))))
            store_raw(k, dst, add(k, d_row, c), v)


def _min(k: KernelBuilder, v: ir.Value, c: int) -> ir.Value:
    return k.b.select(k.b.icmp_signed("<", v, k.i64(c)), v, k.i64(c))


def fill(k: KernelBuilder, dst: Buf, off: ir.Value, n: ir.Value | int, value: ir.Constant, byte: int | None) -> None:
    """``n`` elements of ``dst`` from ``off`` set to the storage constant ``value``; ``byte``
    when every byte of the value is that byte (a memset)."""
    if byte is not None:
        nbytes = k.b.mul(n, k.i64(dst.dtype.itemsize)) if not isinstance(n, int) else k.i64(n * dst.dtype.itemsize)
        fn = k.state.declare("llvm.memset.p0.i64", T.VOID, [T.PTR, T.I8, T.I64, T.I1])
        k.b.call(fn, [elem_ptr(k, dst, off), ir.Constant(T.I8, byte), nbytes, ir.Constant(T.I1, 0)])
        return
    with k.loop(n, name="f") as j:
        store_raw(k, dst, add(k, off, j), value)
