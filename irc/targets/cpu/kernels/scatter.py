"""Kernels of gather_nd, scatter_nd and scatter_elements (irc/ir/ops/scatter.py).

Every index is checked against [-n, n) before it is used (``indexing.checked_index``): a row
with an index out of range reads zeros (gather_nd) or writes nothing (the scatters), so no input
can make a kernel touch memory outside its buffers. The scatters copy ``data`` to the output,
then apply the updates one by one in the indices' row-major order on the calling thread: that
order is what makes the last of repeated indices win, as the reference says.
"""

from __future__ import annotations

import math

from llvmlite import ir

from irc.ir.graph import Node
from irc.targets.cpu.kernel import KernelBuilder
from irc.targets.cpu.kernels.indexing import checked_index
from irc.targets.cpu.kernels.registry import cpu_kernel
from irc.targets.cpu.kernels.strided import add, elem_ptr, emit_copy, load_raw, parallel_nest, store_raw
from irc.targets.llvm.builder import Buf, c_strides
from irc.targets.llvm.scalar import Scalar


def index_row(k: KernelBuilder, indices: Buf, row: ir.Value, dims, strides) -> tuple[ir.Value, ir.Value]:
    """(all in range, element offset) of the index row starting at element ``row`` of
    ``indices``: component c indexes an axis of size dims[c] with element stride strides[c]."""
    b = k.b
    ok, off = None, k.i64(0)
    for c, (n, st) in enumerate(zip(dims, strides)):
        good, i = checked_index(k, indices, add(k, row, c), n)
        ok = good if ok is None else b.and_(ok, good)
        off = add(k, off, b.mul(i, k.i64(st)))
    return ok, off


@cpu_kernel("gather_nd")
def _gather_nd(k: KernelBuilder, node: Node) -> None:
    """data as [nb, d_1..d_q, inner], out as [nb, m, inner]: one row of ``inner`` per index row."""
    out, data, indices = k.outs[0], k.ins[0], k.ins[1]
    if out.size == 0:
        return
    bd, q = node.attrs["batch_dims"], indices.shape[-1]
    nb = math.prod(data.shape[:bd])
    m = math.prod(indices.shape[bd:-1])
    inner = math.prod(data.shape[bd + q:])
    per_batch = math.prod(data.shape[bd:])
    strides = c_strides(data.shape[bd:])[:q]
    item = data.dtype.itemsize
    with parallel_nest(k, [nb, m], inner, name="g") as (bi, j):
        b = k.b
        row = b.add(b.mul(bi, k.i64(m)), j)
        ok, off = index_row(k, indices, b.mul(row, k.i64(q)), data.shape[bd:bd + q], strides)
        dst = elem_ptr(k, out, b.mul(row, k.i64(inner)))
        with b.if_else(ok) as (then, other):
            with then:
                k.memcpy(dst, elem_ptr(k, data, add(k, b.mul(bi, k.i64(per_batch)), off)), inner * item)
            with other:
                k.memset(dst, 0, inner * item)


def _update(k: KernelBuilder, out: Buf, at: ir.Value, updates: Buf, src: ir.Value, reduction: str) -> None:
    """out[at] = updates[src], or out[at] combined with it."""
    if reduction == "none":
        store_raw(k, out, at, load_raw(k, updates, src))
        return
    s = Scalar(k, out.dtype)
    old, new = k.load(out, at), k.load(updates, src)
    k.store(out, at, {"add": s.add, "mul": s.mul, "max": s.max, "min": s.min}[reduction](old, new))


def _copy_data(k: KernelBuilder) -> None:
    out, data = k.outs[0], k.ins[0]
    emit_copy(k, (data.size,), out, 0, (1,), data, 0, (1,))


@cpu_kernel("scatter_nd")
def _scatter_nd(k: KernelBuilder, node: Node) -> None:
    out, data, indices, updates = k.outs[0], *k.ins
    _copy_data(k)
    q = indices.shape[-1]
    rows = math.prod(indices.shape[:-1])
    inner = math.prod(data.shape[q:])
    if rows == 0 or inner == 0:
        return
    strides = c_strides(data.shape)[:q]
    reduction = node.attrs["reduction"]
    with k.loop(rows, name="r") as r:
        b = k.b
        ok, off = index_row(k, indices, b.mul(r, k.i64(q)), data.shape[:q], strides)
        src = b.mul(r, k.i64(inner))
        with k.if_(ok):
            if reduction == "none":
                k.memcpy(elem_ptr(k, out, off), elem_ptr(k, updates, src), inner * data.dtype.itemsize)
            else:
                with k.loop(inner, name="j") as j:
                    _update(k, out, add(k, off, j), updates, add(k, src, j), reduction)


@cpu_kernel("scatter_elements")
def _scatter_elements(k: KernelBuilder, node: Node) -> None:
    out, data, indices, updates = k.outs[0], *k.ins
    _copy_data(k)
    if indices.size == 0:
        return
    axis, reduction = node.attrs["axis"], node.attrs["reduction"]
    n = data.shape[axis]
    ds = list(data.strides)
    axis_stride, ds[axis] = ds[axis], 0
    with k.nest(indices.shape, name="e") as idx:
        b = k.b
        src = k.offset(idx, indices.strides)
        ok, i = checked_index(k, indices, src, n)
        at = add(k, k.offset(idx, ds), b.mul(i, k.i64(axis_stride)))
        with k.if_(ok):
            _update(k, out, at, updates, src, reduction)
