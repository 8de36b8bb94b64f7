"""Data movement: reshape (a copy only when the memory plan cannot alias it), transpose, slice,
pad (constant, reflect, edge, wrap; negative pads crop), concat, split, expand, tile, gather and
gather_elements. One thread per output element computes where its value comes from, so writes
are coalesced; every shape and stride is a compile-time constant. Gather indices are data:
negative ones count from the end, out-of-range ones give 0 (the op's definition), never a read
outside the tensor."""

from __future__ import annotations

import math

from llvmlite import ir

from irc.ir.graph import Node
from irc.targets.cuda.kernel import GpuKernel, Launch, grid1d
from irc.targets.cuda.kernels.elementwise import emit_map
from irc.targets.cuda.kernels.registry import cuda_kernel
from irc.targets.llvm import lltypes as T
from irc.targets.llvm.builder import c_strides


def _copy(k: GpuKernel, src, dst, n: int, src_off=None, dst_off=None) -> None:
    with k.grid_stride(n) as i:
        v = k.b.load(k.addr(src, i if src_off is None else src_off(i)), typ=T.storage_type(src.dtype))
        k.b.store(v, k.addr(dst, i if dst_off is None else dst_off(i)))


@cuda_kernel("reshape", kind="movement", view=True)
def _reshape(k: GpuKernel, node: Node) -> Launch:
    out = k.outs[0]
    _copy(k, k.ins[0], out, out.size)
    return grid1d(out.size)


@cuda_kernel("transpose", kind="movement")
def _transpose(k: GpuKernel, node: Node) -> Launch:
    xs = c_strides(k.ins[0].shape)
    st = [xs[p] for p in node.attrs["perm"]]
    return _copy_from(k, lambda idx: k.offset(idx, st))


@cuda_kernel("slice", kind="movement")
def _slice(k: GpuKernel, node: Node) -> Launch:
    at = node.attrs
    xs = c_strides(k.ins[0].shape)

    def src(idx):
        off = k.i(sum(s * st for s, st in zip(at["starts"], xs)))
        for d, v in enumerate(idx):
            off = k.add(off, k.mul(v, at["steps"][d] * xs[d]))
        return off

    return _copy_from(k, src)


def _copy_from(k: GpuKernel, src_off) -> Launch:
    """out[idx] = x[src_off(idx)] for every coordinate list idx of the output."""
    x, out = k.ins[0], k.outs[0]
    _copy(k, x, out, out.size, src_off=lambda i: src_off(k.unravel(i, out.shape)))
    return grid1d(out.size)


@cuda_kernel("expand", kind="movement")
def _expand(k: GpuKernel, node: Node) -> Launch:
    return emit_map(k, lambda v: v)


@cuda_kernel("tile", kind="movement")
def _tile(k: GpuKernel, node: Node) -> Launch:
    x, out = k.ins[0], k.outs[0]
    xs = c_strides(x.shape)
    if out.size == 0:
        return grid1d(0)
    return _copy_from(k, lambda idx: k.offset([k.urem(v, x.shape[d]) for d, v in enumerate(idx)], xs))


@cuda_kernel("pad", kind="movement")
def _pad(k: GpuKernel, node: Node) -> Launch:
    x, out = k.ins[0], k.outs[0]
    at = node.attrs
    r = len(x.shape)
    pads, mode = at["pads"], at["mode"]
    xs = c_strides(x.shape)
    bld = k.b
    with k.grid_stride(out.size) as i:
        idx = k.unravel(i, out.shape)
        ok = None
        off = k.i(0)
        for d in range(r):
            lo, hi = max(-pads[d], 0), x.shape[d] - max(-pads[d + r], 0)
            p = bld.sub(idx[d], k.i(pads[d]))
            if mode == "constant":
                c = bld.and_(k.ge(p, lo), k.lt(p, hi))
                ok = c if ok is None else bld.and_(ok, c)
            elif mode == "edge":
                p = bld.select(k.lt(p, lo), k.i(lo), p)
                p = bld.select(k.ge(p, hi), k.i(hi - 1), p)
            elif mode == "reflect":
                n = hi - lo
                q = bld.sub(p, k.i(lo))
                q = bld.select(k.lt(q, 0), bld.neg(q), q)
                q = bld.select(k.ge(q, n), bld.sub(k.i(2 * (n - 1)), q), q)
                p = k.add(q, lo)
            else:  # wrap
                n = hi - lo
                q = bld.srem(bld.sub(p, k.i(lo)), k.i(n))
                q = bld.select(k.lt(q, 0), k.add(q, n), q)
                p = k.add(q, lo)
            off = k.add(off, k.mul(p, xs[d]))
        if ok is not None:
            off = bld.select(ok, off, k.i(0))
        v = k.load(x, off)
        if ok is not None:
            v = bld.select(ok, v, k.const(x.dtype, at["value"]))
        k.store(out, i, v)
    return grid1d(out.size)


@cuda_kernel("concat", kind="movement")
def _concat(k: GpuKernel, node: Node) -> Launch:
    """One grid-stride loop per input, each writing its slab of the output."""
    return _slabs(k, k.outs[0], k.ins, node.attrs["axis"], into_whole=True)


@cuda_kernel("split", kind="movement")
def _split(k: GpuKernel, node: Node) -> Launch:
    """One grid-stride loop per output, each reading its slab of the input."""
    return _slabs(k, k.ins[0], k.outs, node.attrs["axis"], into_whole=False)


def _slabs(k: GpuKernel, whole, parts, axis: int, *, into_whole: bool) -> Launch:
    """Copies between ``whole`` and its consecutive slabs ``parts`` along ``axis``."""
    inner = math.prod(whole.shape[axis + 1:])
    start = 0
    for part in parts:
        n_ax = part.shape[axis]
        if part.size:
            def slab(i, start=start, n_ax=n_ax):
                o, rest = k.udiv(i, n_ax * inner), k.urem(i, n_ax * inner)
                return k.add(k.mul(o, whole.shape[axis] * inner), k.add(rest, start * inner))

            if into_whole:
                _copy(k, part, whole, part.size, dst_off=slab)
            else:
                _copy(k, whole, part, part.size, src_off=slab)
        start += n_ax
    return grid1d(max((p.size for p in parts), default=0))


def _index(k: GpuKernel, ind, off, n: int):
    """(in-range flag, wrapped index as the kernel's index type) of indices[off] on an axis of n."""
    bld = k.b
    v = k.load(ind, off)
    v = bld.sext(v, T.I64) if v.type != T.I64 else v
    v = bld.select(bld.icmp_signed("<", v, ir.Constant(T.I64, 0)), bld.add(v, ir.Constant(T.I64, n)), v)
    ok = bld.and_(bld.icmp_signed(">=", v, ir.Constant(T.I64, 0)), bld.icmp_signed("<", v, ir.Constant(T.I64, n)))
    v = bld.select(ok, v, ir.Constant(T.I64, 0))
    return ok, (bld.trunc(v, k.ity) if k.ity != T.I64 else v)


@cuda_kernel("gather", kind="movement")
def _gather(k: GpuKernel, node: Node) -> Launch:
    x, ind = k.ins
    out = k.outs[0]
    axis = node.attrs["axis"]
    n = x.shape[axis]
    inner = math.prod(x.shape[axis + 1:])
    ni = math.prod(ind.shape)
    bld = k.b
    with k.grid_stride(out.size) as i:
        o = k.udiv(i, ni * inner)
        rest = k.urem(i, ni * inner)
        j, w = k.udiv(rest, inner), k.urem(rest, inner)
        ok, v = _index(k, ind, j, n)
        src = k.add(k.mul(k.add(k.mul(o, n), v), inner), w)
        val = k.load(x, src)
        k.store(out, i, bld.select(ok, val, k.const(x.dtype, 0)))
    return grid1d(out.size)


@cuda_kernel("gather_elements", kind="movement")
def _gather_elements(k: GpuKernel, node: Node) -> Launch:
    x, ind = k.ins
    out = k.outs[0]
    axis = node.attrs["axis"]
    xs = c_strides(x.shape)
    bld = k.b
    with k.grid_stride(out.size) as i:
        idx = k.unravel(i, out.shape)
        ok, v = _index(k, ind, i, x.shape[axis])
        idx[axis] = v
        val = k.load(x, k.offset(idx, xs))
        k.store(out, i, bld.select(ok, val, k.const(x.dtype, 0)))
    return grid1d(out.size)
