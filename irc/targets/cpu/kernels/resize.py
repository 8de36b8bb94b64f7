"""Kernel of ``resize``: nearest or N-linear resampling through per-axis tables.

Everything that depends only on positions (which input index an output index reads, the
neighbours and weight of a linear sample) is computed at compile time with the op's own
functions (irc.ir.ops.resize) and stored as constant tables, so the generated loop only looks
up offsets and weights: no coordinate arithmetic, no rounding-mode logic at run time, and the
same rounding decisions as the reference. Linear samples are accumulated in f64 as the
reference does. Work is split over the outer output positions; the innermost axis is the loop.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
from llvmlite import ir

from irc.ir.graph import Node
from irc.ir.ops.resize import _round, source_coords
from irc.ir.types import DType
from irc.targets.cpu.kernel import KernelBuilder
from irc.targets.cpu.kernels.lanes import constant_array
from irc.targets.cpu.kernels.registry import cpu_kernel
from irc.targets.llvm import lltypes as T
from irc.targets.llvm.builder import elements


def axis_tables(mode: str, transform: str, nearest_mode: str, in_len: int, out_len: int, scale: float, stride: int):
    """For one axis: None when it is left as it is, else (lo offsets, hi offsets, weights of hi)
    in elements of the input; nearest sampling has hi = lo and weight 0."""
    if out_len == in_len and math.isclose(scale, 1.0):
        return None
    src = source_coords(transform, out_len, in_len, scale)
    if mode == "nearest":
        idx = np.clip(_round(src, nearest_mode), 0, in_len - 1).astype(np.int64)
        return idx * stride, None, None
    lo = np.floor(src)
    frac = src - lo
    i0 = np.clip(lo, 0, in_len - 1).astype(np.int64)
    i1 = np.clip(lo + 1, 0, in_len - 1).astype(np.int64)
    return i0 * stride, i1 * stride, frac


def _lookup(k: KernelBuilder, table: ir.GlobalVariable, i: ir.Value, typ: ir.Type) -> ir.Value:
    return k.b.load(k.b.gep(table, [ir.Constant(T.I64, 0), i], inbounds=True, source_etype=table.value_type), typ=typ)


@cpu_kernel("resize")
def _resize(k: KernelBuilder, node: Node) -> None:
    x, y = k.ins[0], k.outs[0]
    a = node.attrs
    rank = len(y.shape)
    linear = a["mode"] == "linear"
    tables = []
    for d in range(rank):
        t = axis_tables(a["mode"], a["coordinate_transformation_mode"], a["nearest_mode"], x.shape[d], y.shape[d],
                        a["scales"][d], x.strides[d])
        if t is None:
            tables.append(None)
            continue
        lo, hi, w = t
        tables.append((constant_array(k, lo, DType.i64),
                       constant_array(k, hi, DType.i64) if hi is not None else None,
                       constant_array(k, w, DType.f64) if w is not None else None))
    inner = y.shape[-1] if rank else 1
    outer = elements(y.shape[:-1]) if rank else 1

    with k.parallel_loop(outer, work_per_iter=inner * (4 if linear else 1)) as o:
        b = k.b
        # The outer index split into its axes, and each axis's contribution to the offsets.
        rest = o
        parts = []  # per outer axis: (lo offset, hi offset or None, weight or None)
        for d in reversed(range(rank - 1)):
            idx = b.urem(rest, k.i64(y.shape[d])) if d else rest
            rest = b.udiv(rest, k.i64(y.shape[d])) if d else rest
            parts.append(_axis_offsets(k, tables[d], idx, x.strides[d]))
        parts.reverse()
        out_base = b.mul(o, k.i64(inner))
        with k.loop(inner, name="w") as j:
            last = _axis_offsets(k, tables[-1], j, x.strides[-1]) if rank else (k.i64(0), None, None)
            axes = parts + [last]
            out_off = b.add(out_base, j)
            if linear:
                _emit_linear(k, x, y, axes, out_off)
            else:
                off = k.i64(0)
                for lo, _, _ in axes:
                    off = b.add(off, lo)
                k.store(y, out_off, k.load(x, off))


def _emit_linear(k: KernelBuilder, x, y, axes, out_off: ir.Value) -> None:
    """One output element: the weighted sum over the 2^L corners of its L interpolated axes."""
    b = k.b
    lin = [ax for ax in axes if ax[1] is not None]
    base = k.i64(0)
    for lo, hi, _ in axes:
        if hi is None:
            base = b.add(base, lo)
    acc = ir.Constant(T.F64, 0.0)
    one = ir.Constant(T.F64, 1.0)
    for corner in itertools.product((0, 1), repeat=len(lin)):
        off, wt = base, one
        for (lo, hi, w), c in zip(lin, corner):
            off = b.add(off, hi if c else lo)
            wt = b.fmul(wt, w if c else b.fsub(one, w))
        v = _to_f64(k, k.load(x, off), x.dtype)
        acc = b.fadd(acc, b.fmul(wt, v))
    k.store(y, out_off, _from_f64(k, acc, y.dtype))


def _axis_offsets(k: KernelBuilder, table, idx: ir.Value, stride: int):
    if table is None:
        return k.b.mul(idx, k.i64(stride)), None, None
    lo_t, hi_t, w_t = table
    lo = _lookup(k, lo_t, idx, T.I64)
    if hi_t is None:
        return lo, None, None
    return lo, _lookup(k, hi_t, idx, T.I64), _lookup(k, w_t, idx, T.F64)


def _to_f64(k: KernelBuilder, v: ir.Value, dt: DType) -> ir.Value:
    return v if dt is DType.f64 else k.b.fpext(v, T.F64)


def _from_f64(k: KernelBuilder, v: ir.Value, dt: DType) -> ir.Value:
    return v if dt is DType.f64 else k.b.fptrunc(v, T.compute_type(dt))
