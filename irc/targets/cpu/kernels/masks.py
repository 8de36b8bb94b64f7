"""Kernels of trilu and one_hot: each output element is chosen by its position (an element of x
or 0; values[1] or values[0]), a select per element that LLVM vectorises along the rows."""

from __future__ import annotations

import math

from llvmlite import ir

from irc.ir.graph import Node
from irc.ir.types import DType
from irc.targets.cpu.kernel import KernelBuilder
from irc.targets.cpu.kernels.indexing import zero
from irc.targets.cpu.kernels.registry import cpu_kernel
from irc.targets.cpu.kernels.strided import add, load_raw, parallel_nest, store_raw
from irc.targets.llvm import lltypes as T
from irc.targets.llvm.scalar import convert


@cpu_kernel("trilu")
def _trilu(k: KernelBuilder, node: Node) -> None:
    out, x = k.outs[0], k.ins[0]
    if out.size == 0:
        return
    rows, cols = x.shape[-2:]
    upper, diag = node.attrs["upper"], node.attrs["k"]
    with parallel_nest(k, [math.prod(x.shape[:-2]), rows], cols, name="t") as (m, i):
        b = k.b
        base = b.mul(b.add(b.mul(m, k.i64(rows)), i), k.i64(cols))
        with k.loop(cols, name="j") as j:
            d = b.sub(j, i)
            keep = b.icmp_signed(">=" if upper else "<=", d, k.i64(diag))
            v = load_raw(k, x, add(k, base, j))
            store_raw(k, out, add(k, base, j), b.select(keep, v, zero(x.dtype)))


def _checked(k: KernelBuilder, v: ir.Value, dt: DType, depth: int) -> tuple[ir.Value, ir.Value]:
    """(in [-depth, depth) after truncation, the index wrapped into [0, depth)) of an index of
    any numeric type; a float is range-checked before it is converted (NaN is out of range)."""
    b = k.b
    if dt.is_float:
        lo, hi = ir.Constant(v.type, float(-depth - 1)), ir.Constant(v.type, float(depth))
        ok = b.and_(b.fcmp_ordered(">", v, lo), b.fcmp_ordered("<", v, hi))
        i = b.fptosi(b.select(ok, v, ir.Constant(v.type, 0.0)), T.I64)
    else:
        i = convert(k, v, dt, DType.i64)
        ok = b.and_(b.icmp_signed(">=", i, k.i64(-depth)), b.icmp_signed("<", i, k.i64(depth)))
    wrapped = b.select(b.icmp_signed("<", i, k.i64(0)), b.add(i, k.i64(depth)), i)
    return ok, b.select(ok, wrapped, k.i64(-1))


@cpu_kernel("one_hot")
def _one_hot(k: KernelBuilder, node: Node) -> None:
    """out as [outer, depth, inner] around the new axis; indices as [outer, inner]."""
    out, indices, values = k.outs[0], k.ins[0], k.ins[1]
    if out.size == 0:
        return
    depth, axis = node.attrs["depth"], node.attrs["axis"]
    outer, inner = math.prod(indices.shape[:axis]), math.prod(indices.shape[axis:])
    with parallel_nest(k, [outer, inner], depth, name="h") as (o, j):
        b = k.b
        _, pos = _checked(k, k.load(indices, b.add(b.mul(o, k.i64(inner)), j)), indices.dtype, depth)
        off, on = load_raw(k, values, 0), load_raw(k, values, 1)
        base = add(k, b.mul(o, k.i64(depth * inner)), j)
        with k.loop(depth, name="d") as d:
            store_raw(k, out, add(k, base, b.mul(d, k.i64(inner))), b.select(b.icmp_signed("==", d, pos), on, off))
