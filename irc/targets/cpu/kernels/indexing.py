"""Kernels of the ops that select elements by position: slice, gather, gather_elements.

``slice`` arrives with one clamped (start, step) per axis, so it is a strided copy from
``start`` with strides ``step * stride`` (negative for reversed axes). The gathers read
indices at run time: each one is checked against [-n, n) before it is used, and an index out
of range writes 0 instead of reading, so no input can make a kernel read outside its buffer.
"""

from __future__ import annotations

import math

from llvmlite import ir

from irc.ir.graph import Node
from irc.targets.cpu.kernel import KernelBuilder
from irc.targets.cpu.kernels.registry import cpu_kernel
from irc.targets.cpu.kernels.strided import add, elem_ptr, emit_copy, load_raw, parallel_nest, store_raw
from irc.targets.llvm import lltypes as T
from irc.targets.llvm.builder import Buf


@cpu_kernel("slice")
def _slice(k: KernelBuilder, node: Node) -> None:
    out, x = k.outs[0], k.ins[0]
    if out.size == 0:
        return
    starts, steps = node.attrs["starts"], node.attrs["steps"]
    base = sum(s * st for s, st in zip(starts, x.strides))
    emit_copy(k, out.shape, out, 0, out.strides, x, base, [t * st for t, st in zip(steps, x.strides)])


def checked_index(k: KernelBuilder, indices: Buf, off: ir.Value, n: int) -> tuple[ir.Value, ir.Value]:
    """(in range, index in [0, n)) of element ``off`` of an i32/i64 index buffer; the index is
    0 when out of range, so reading with it is always safe."""
    b = k.b
    i = b.load(elem_ptr(k, indices, off), typ=T.storage_type(indices.dtype))
    if i.type != T.I64:
        i = b.sext(i, T.I64)
    ok = b.and_(b.icmp_signed(">=", i, k.i64(-n)), b.icmp_signed("<", i, k.i64(n)))
    wrapped = b.select(b.icmp_signed("<", i, k.i64(0)), b.add(i, k.i64(n)), i)
    return ok, b.select(ok, wrapped, k.i64(0))


def zero(dt) -> ir.Constant:
    st = T.storage_type(dt)
    return ir.Constant(st, 0.0 if isinstance(st, (ir.HalfType, ir.FloatType, ir.DoubleType)) else 0)


@cpu_kernel("gather")
def _gather(k: KernelBuilder, node: Node) -> None:
    """x as [outer, n, inner], out as [outer, m, inner]: a row of ``inner`` elements per index."""
    out, x, indices = k.outs[0], k.ins[0], k.ins[1]
    if out.size == 0:
        return
    axis = node.attrs["axis"]
    outer, n, inner = math.prod(x.shape[:axis]), x.shape[axis], math.prod(x.shape[axis + 1:])
    m = indices.size
    item = x.dtype.itemsize
    with parallel_nest(k, [outer, m], inner, name="g") as (o, j):
        b = k.b
        ok, i = checked_index(k, indices, j, n)
        dst = elem_ptr(k, out, k.offset([o, j], [m * inner, inner]))
        with b.if_else(ok) as (then, other):
            with then:
                k.memcpy(dst, elem_ptr(k, x, k.offset([o, i], [n * inner, inner])), inner * item)
            with other:
                k.memset(dst, 0, inner * item)


@cpu_kernel("gather_elements")
def _gather_elements(k: KernelBuilder, node: Node) -> None:
    """out[i] = x[i with i[axis] replaced by indices[i]], walking the indices' shape."""
    out, x, indices = k.outs[0], k.ins[0], k.ins[1]
    if out.size == 0:
        return
    axis = node.attrs["axis"]
    n = x.shape[axis]  # > 0: the op refuses to gather from an empty axis
    shape = indices.shape
    xs = list(x.strides)
    axis_stride = xs[axis]
    xs[axis] = 0
    with parallel_nest(k, shape[:-1], shape[-1], name="e") as idx:
        b = k.b
        row_x = k.offset(idx, xs[:-1])
        row_o = k.offset(idx, out.strides[:-1])
        with k.loop(shape[-1], name="j") as j:
            ok, i = checked_index(k, indices, add(k, row_o, j), n)
            src = add(k, row_x, b.add(b.mul(i, k.i64(axis_stride)), b.mul(j, k.i64(xs[-1]))))
            v = load_raw(k, x, src)
            store_raw(k, out, add(k, row_o, j), b.select(ok, v, zero(x.dtype)))
