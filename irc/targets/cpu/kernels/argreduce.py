"""Kernels of argmax and argmin: the i64 position of the extreme element along one axis.

numpy's rules, which the references follow: the first of equal extremes wins (the last with
``select_last_index``), and a NaN beats every number, in argmin as in argmax, so the first (or
last) NaN is the answer when there is one. f16 and bf16 are compared in f32 (exactly).

The input is [outer, n, inner] around the axis. With inner > 1 a chunk of neighbouring outputs
is a vector: each step along the axis loads one vector and keeps lanes where it is better.
With inner = 1 each lane of a vector follows every vl-th element of the row; the lanes and the
scalar tail are merged at the end, ties going to the lower (or higher) index, so the result is
the one a scalar scan would give.
"""

from __future__ import annotations

import math

from llvmlite import ir

from irc.ir.graph import Node
from irc.ir.types import DType
from irc.targets.cpu.kernel import KernelBuilder
from irc.targets.cpu.kernels import typed_io as io
from irc.targets.cpu.kernels.registry import cpu_kernel
from irc.targets.cpu.kernels.strided import add, parallel_nest
from irc.targets.llvm import lltypes as T
from irc.targets.llvm.scalar import Scalar

#: Bits per vector: one AVX-512 register of values, at most MAX_LANES of them (each lane also
#: carries an i64 index).
VECTOR_BITS = 512
MAX_LANES = 16


def _cmp_type(dt: DType) -> DType:
    return DType.f32 if dt in (DType.f16, DType.bf16) else dt


def better(s: Scalar, x: ir.Value, best: ir.Value, largest: bool, last: bool) -> ir.Value:
    """Whether ``x``, met after ``best`` in scan order, replaces it."""
    b = s.b
    if not s.is_float:
        op = (">=" if last else ">") if largest else ("<=" if last else "<")
        return s._cmp(op, x, best)
    op = (">=" if last else ">") if largest else ("<=" if last else "<")
    wins = b.fcmp_ordered(op, x, best)
    if last:
        return b.or_(wins, s.is_nan(x))  # the latest NaN wins
    return b.or_(wins, b.and_(s.is_nan(x), b.not_(s.is_nan(best))))


def _beats(s: Scalar, xv, xi, bv, bi, largest: bool, last: bool) -> ir.Value:
    """Whether candidate (xv, xi) beats (bv, bi) in any order: better value, or an equal one
    (both NaN counts as equal) at the preferred index."""
    b = s.b
    op = ">" if largest else "<"
    strictly = s._cmp(op, xv, bv)
    if s.is_float:
        strictly = b.or_(strictly, b.and_(s.is_nan(xv), b.not_(s.is_nan(bv))))
        equal = b.or_(b.fcmp_ordered("==", xv, bv), b.and_(s.is_nan(xv), s.is_nan(bv)))
    else:
        equal = b.icmp_unsigned("==", xv, bv)
    earlier = b.icmp_signed(">" if last else "<", xi, bi)
    return b.or_(strictly, b.and_(equal, earlier))


def _emit(k: KernelBuilder, node: Node) -> None:
    out, x = k.outs[0], k.ins[0]
    if out.size == 0:
        return
    axis = node.attrs["axis"]
    largest = node.op == "argmax"
    last = bool(node.attrs["select_last_index"])
    outer, n, inner = math.prod(x.shape[:axis]), x.shape[axis], math.prod(x.shape[axis + 1:])
    cdt = _cmp_type(x.dtype)
    vl = max(2, min(MAX_LANES, VECTOR_BITS // (8 * cdt.itemsize)))
    if inner > 1:
        _along_outer(k, outer, n, inner, cdt, min(vl, inner), largest, last)
    else:
        _along_row(k, outer, n, cdt, vl, largest, last)


def _slot(k: KernelBuilder, t: ir.Type, init: ir.Value) -> ir.Value:
    with k.b.goto_entry_block():
        p = k.b.alloca(t)
    k.b.store(init, p)
    return p


def _get(k: KernelBuilder, slot: ir.Value) -> ir.Value:
    return k.b.load(slot, typ=slot.allocated_type)


def _along_outer(k, outer, n, inner, cdt, chunk, largest, last) -> None:
    out, x = k.outs[0], k.ins[0]
    nfull, tail = divmod(inner, chunk)
    with parallel_nest(k, [outer, nfull + (1 if tail else 0)], chunk * n, name="a") as (o, c):
        b = k.b
        c0 = b.mul(c, k.i64(chunk))
        xbase = add(k, b.mul(o, k.i64(n * inner)), c0)
        obase = add(k, b.mul(o, k.i64(inner)), c0)

        def body(lanes: int) -> None:
            s = Scalar(k, cdt, lanes)
            si = Scalar(k, DType.i64, lanes)
            best = _slot(k, s.t, io.load(k, x, xbase, lanes, cdt))
            where = _slot(k, si.t, si.c(0))
            with k.loop(n, start=1, name="n") as j:
                v = io.load(k, x, add(k, xbase, b.mul(j, k.i64(inner))), lanes, cdt)
                take = better(s, v, _get(k, best), largest, last)
                k.b.store(s.select(take, v, _get(k, best)), best)
                k.b.store(si.select(take, _splat(k, j, lanes), _get(k, where)), where)
            io.store(k, out, obase, _get(k, where), DType.i64)

        if not tail:
            body(chunk)
        elif not nfull:
            body(tail)
        else:
            with b.if_else(b.icmp_signed("<", c, k.i64(nfull))) as (then, other):
                with then:
                    body(chunk)
                with other:
                    body(tail)


def _along_row(k, outer, n, cdt, vl, largest, last) -> None:
    out, x = k.outs[0], k.ins[0]
    whole = n // vl * vl if n >= 2 * vl else 0
    with parallel_nest(k, [outer], n, name="a") as (o,):
        b = k.b
        row = b.mul(o, k.i64(n))
        s0, i0 = Scalar(k, cdt), Scalar(k, DType.i64)
        if whole:
            s, si = Scalar(k, cdt, vl), Scalar(k, DType.i64, vl)
            best = _slot(k, s.t, io.load(k, x, row, vl, cdt))
            where = _slot(k, si.t, ir.Constant(si.t, list(range(vl))))
            with k.loop(whole, start=vl, step=vl, name="v") as j:
                v = io.load(k, x, add(k, row, j), vl, cdt)
                take = better(s, v, _get(k, best), largest, last)
                k.b.store(s.select(take, v, _get(k, best)), best)
                pos = b.add(_splat(k, j, vl), ir.Constant(si.t, list(range(vl))))
                k.b.store(si.select(take, pos, _get(k, where)), where)
            bv, bi = _merge_lanes(k, cdt, _get(k, best), _get(k, where), largest, last)
            val, idx = _slot(k, s0.t, bv), _slot(k, i0.t, bi)
            start = whole
        else:
            val = _slot(k, s0.t, io.load(k, x, row, 0, cdt))
            idx = _slot(k, i0.t, k.i64(0))
            start = 1
        if n > start:
            with k.loop(n, start=start, name="t") as j:
                v = io.load(k, x, add(k, row, j), 0, cdt)
                take = better(s0, v, _get(k, val), largest, last)
                k.b.store(s0.select(take, v, _get(k, val)), val)
                k.b.store(i0.select(take, j, _get(k, idx)), idx)
        io.store(k, out, o, _get(k, idx), DType.i64)


def _merge_lanes(k: KernelBuilder, cdt: DType, v: ir.Value, i: ir.Value, largest: bool, last: bool):
    """The winning (value, index) among the lanes, halving: the upper half against the lower."""
    b = k.b
    n = v.type.count
    while n > 1:
        half = n // 2
        lo_mask = ir.Constant(ir.VectorType(T.I32, half), list(range(half)))
        hi_mask = ir.Constant(ir.VectorType(T.I32, half), list(range(half, n)))
        lv, hv = (b.shuffle_vector(v, ir.Constant(v.type, ir.Undefined), m) for m in (lo_mask, hi_mask))
        li, hi = (b.shuffle_vector(i, ir.Constant(i.type, ir.Undefined), m) for m in (lo_mask, hi_mask))
        take = _beats(Scalar(k, cdt, half), hv, hi, lv, li, largest, last)
        v, i = b.select(take, hv, lv), b.select(take, hi, li)
        n = half
    zero = ir.Constant(T.I32, 0)
    return b.extract_element(v, zero), b.extract_element(i, zero)


def _splat(k: KernelBuilder, v: ir.Value, lanes: int) -> ir.Value:
    if not lanes:
        return v
    vt = ir.VectorType(v.type, lanes)
    one = k.b.insert_element(ir.Constant(vt, ir.Undefined), v, ir.Constant(T.I32, 0))
    return k.b.shuffle_vector(one, ir.Constant(vt, ir.Undefined), ir.Constant(ir.VectorType(T.I32, lanes), [0] * lanes))


cpu_kernel("argmax", "argmin")(_emit)
