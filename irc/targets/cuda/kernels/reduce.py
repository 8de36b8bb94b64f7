"""Reductions, arg-reductions, softmax and the normalizations, all as row kernels (rows.py).

Floats accumulate in f32 (f64 in f64); integers in their own type, wrapping as the reference
does. A row is the set of input elements that make one output: for ``reduce_*`` over ``axes``
the rows are the kept coordinates and the row elements the reduced ones; for softmax and
layer/instance norm the row is the normalized axis or axes (read up to three times: max or
mean, then the sum, then the write, all within one warp, so nothing leaves registers but the
tensor itself).
"""

from __future__ import annotations

import math

import numpy as np
from llvmlite import ir

from irc.ir.graph import Node
from irc.ir.types import DType
from irc.targets.cuda.kernel import GpuKernel, Launch
from irc.targets.cuda.kernels.registry import cuda_kernel
from irc.targets.cuda.kernels.rows import fold, lane_loop, rows, rows_launch
from irc.targets.llvm import lltypes as T
from irc.targets.llvm.builder import c_strides

# ------------------------------------------------------------------------------ value helpers


def acc_type(dt: DType) -> ir.Type:
    if dt is DType.f64:
        return T.F64
    if dt.is_float:
        return T.F32
    return T.compute_type(dt)


def widen(k: GpuKernel, v, dt: DType):
    """A loaded compute value as the accumulator type of ``dt``."""
    if dt is DType.f16:
        return k.b.fpext(v, T.F32)
    return v


def narrow(k: GpuKernel, v, dt: DType):
    if dt is DType.f16:
        return k.b.fptrunc(v, T.F16)
    return v


def fconst(t: ir.Type, v: float) -> ir.Constant:
    return ir.Constant(t, float(v))


def intrinsic(k: GpuKernel, name: str, *args):
    t = args[0].type
    return k.b.call(k.mod.declare(f"llvm.{name}.{T.suffix(t)}", t, [t] * len(args)), list(args))


class Segments:
    """Rows of a tensor of ``shape`` reduced over ``axes``: offsets of row r, element j."""

    def __init__(self, shape, axes):
        self.shape = tuple(shape)
        self.axes = tuple(sorted(axes))
        kept = [d for d in range(len(shape)) if d not in self.axes]
        st = c_strides(shape)
        self.kept_shape = [shape[d] for d in kept]
        self.kept_strides = [st[d] for d in kept]
        self.red_shape = [shape[d] for d in self.axes]
        self.red_strides = [st[d] for d in self.axes]
        self.n_rows = math.prod(self.kept_shape)
        self.row_len = math.prod(self.red_shape)

    def base(self, k: GpuKernel, r):
        return k.offset(k.unravel(r, self.kept_shape), self.kept_strides) if self.kept_shape else k.i(0)

    def at(self, k: GpuKernel, base, j):
        if not self.red_shape:
            return base
        return k.add(base, k.offset(k.unravel(j, self.red_shape), self.red_strides))


# -------------------------------------------------------------------------------- reduce_*

_FLOAT_ONLY = {"reduce_l2", "reduce_log_sum", "reduce_log_sum_exp"}


def _reduce_init(op: str, dt: DType, t: ir.Type):
    if dt is DType.bool:
        return ir.Constant(T.I1, 0 if op == "reduce_max" else 1)
    if op in ("reduce_max", "reduce_min"):
        if dt.is_float:
            return fconst(t, -math.inf if op == "reduce_max" else math.inf)
        info = np.iinfo(dt.numpy)
        return ir.Constant(t, int(info.min if op == "reduce_max" else info.max))
    if op == "reduce_prod":
        return fconst(t, 1.0) if dt.is_float else ir.Constant(t, 1)
    return fconst(t, 0.0) if dt.is_float else ir.Constant(t, 0)


def _combine(k: GpuKernel, op: str, dt: DType, a, b):
    bld = k.b
    f = dt.is_float
    if op == "reduce_max":
        if dt is DType.bool:
            return bld.or_(a, b)
        return intrinsic(k, "maximum", a, b) if f else bld.select(_icmp(k, dt, ">", a, b), a, b)
    if op == "reduce_min":
        if dt is DType.bool:
            return bld.and_(a, b)
        return intrinsic(k, "minimum", a, b) if f else bld.select(_icmp(k, dt, "<", a, b), a, b)
    if op == "reduce_prod":
        return bld.fmul(a, b) if f else bld.mul(a, b)
    return bld.fadd(a, b) if f else bld.add(a, b)


def _icmp(k, dt: DType, op: str, a, b):
    return k.b.icmp_signed(op, a, b) if dt.is_signed else k.b.icmp_unsigned(op, a, b)


def _element(k: GpuKernel, op: str, dt: DType, v):
    """What one element contributes before combining (|x| for l1, x*x for squares)."""
    bld = k.b
    if op == "reduce_l1":
        if dt.is_float:
            return intrinsic(k, "fabs", v)
        return bld.select(bld.icmp_signed("<", v, ir.Constant(v.type, 0)), bld.neg(v), v) if dt.is_signed else v
    if op in ("reduce_sum_square", "reduce_l2"):
        return bld.fmul(v, v) if dt.is_float else bld.mul(v, v)
    return v


_COMBINE_OF = {"reduce_sum": "reduce_sum", "reduce_mean": "reduce_sum", "reduce_max": "reduce_max",
               "reduce_min": "reduce_min", "reduce_prod": "reduce_prod", "reduce_l1": "reduce_sum",
               "reduce_sum_square": "reduce_sum", "reduce_l2": "reduce_sum", "reduce_log_sum": "reduce_sum",
               "reduce_log_sum_exp": "reduce_sum"}


@cuda_kernel(*_COMBINE_OF, kind="reduce")
def _reduce(k: GpuKernel, node: Node) -> Launch:
    x, out = k.ins[0], k.outs[0]
    op = node.op
    dt = x.dtype
    seg = Segments(x.shape, node.attrs["axes"])
    t = acc_type(dt) if dt is not DType.bool else T.I1
    mean_int = op == "reduce_mean" and not dt.is_float
    if mean_int:
        t = T.I64
    comb = _COMBINE_OF[op]
    with rows(k, seg.n_rows, seg.row_len) as row:
        base = seg.base(k, row.index)
        shift = None
        if op == "reduce_log_sum_exp":
            (m,) = fold(k, row, seg.row_len, [fconst(t, -math.inf)],
                        lambda acc, j: [intrinsic(k, "maxnum", acc[0], widen(k, k.load(x, seg.at(k, base, j)), dt))],
                        lambda a, b: [intrinsic(k, "maxnum", a[0], b[0])])
            finite = k.b.fcmp_ordered("<", intrinsic(k, "fabs", m), fconst(t, math.inf))
            shift = k.b.select(finite, m, fconst(t, 0.0))

        def step(acc, j):
            v = widen(k, k.load(x, seg.at(k, base, j)), dt)
            if mean_int:
                v = k.b.sext(v, T.I64) if dt.is_signed else k.b.zext(v, T.I64)
            if shift is not None:
                v = intrinsic(k, "exp", k.b.fsub(v, shift))
            return [_combine(k, comb, dt if not mean_int else DType.i64, acc[0], _element(k, op, dt, v))]

        init = _reduce_init(comb, dt if not mean_int else DType.i64, t)
        (acc,) = fold(k, row, seg.row_len, [init], step,
                      lambda a, b: [_combine(k, comb, dt if not mean_int else DType.i64, a[0], b[0])])
        if op == "reduce_mean":
            if dt.is_float:
                acc = k.b.fdiv(acc, fconst(t, seg.row_len))
            else:
                acc = k.b.trunc(k.b.sdiv(acc, ir.Constant(T.I64, seg.row_len)), T.compute_type(dt))
        elif op == "reduce_l2":
            acc = intrinsic(k, "sqrt", acc)
        elif op == "reduce_log_sum":
            acc = intrinsic(k, "log", acc)
        elif op == "reduce_log_sum_exp":
            acc = k.b.fadd(intrinsic(k, "log", acc), shift)
        with k.if_(k.b.icmp_unsigned("==", row.lane, k.i(0))):
            k.store(out, row.index, narrow(k, acc, dt))
    return rows_launch(seg.n_rows, seg.row_len)


# ---------------------------------------------------------------------------- argmax / argmin


@cuda_kernel("argmax", "argmin", kind="reduce")
def _arg(k: GpuKernel, node: Node) -> Launch:
    x, out = k.ins[0], k.outs[0]
    dt = x.dtype
    axis = node.attrs["axis"]
    last = bool(node.attrs["select_last_index"])
    is_max = node.op == "argmax"
    seg = Segments(x.shape, (axis,))
    bld = k.b

    def better(va, ia, vb, ib):
        """(va, ia) wins over (vb, ib): more extreme, NaN above all, ties to the first (last) index."""
        if dt.is_float:
            cmp = bld.fcmp_ordered(">" if is_max else "<", va, vb)
            a_nan = bld.fcmp_unordered("uno", va, va)
            b_nan = bld.fcmp_unordered("uno", vb, vb)
            cmp = bld.or_(cmp, bld.and_(a_nan, bld.not_(b_nan)))
            tie = bld.or_(bld.fcmp_ordered("==", va, vb), bld.and_(a_nan, b_nan))
        else:
            cmp = _icmp(k, dt, ">" if is_max else "<", va, vb)
            tie = bld.icmp_signed("==", va, vb)
        idx_wins = bld.icmp_signed(">" if last else "<", ia, ib)
        return bld.or_(cmp, bld.and_(tie, idx_wins))

    def pick(a, b):
        w = better(a[0], a[1], b[0], b[1])
        return [bld.select(w, a[0], b[0]), bld.select(w, a[1], b[1])]

    with rows(k, seg.n_rows, seg.row_len) as row:
        base = seg.base(k, row.index)
        first = widen(k, k.load(x, base), dt)
        init = [first, ir.Constant(T.I64, 0)]

        def step(acc, j):
            v = widen(k, k.load(x, seg.at(k, base, j)), dt)
            j64 = bld.sext(j, T.I64) if j.type != T.I64 else j
            return pick(acc, [v, j64])

        _, idx = fold(k, row, seg.row_len, init, step, pick)
        with k.if_(bld.icmp_unsigned("==", row.lane, k.i(0))):
            k.store(out, row.index, idx)
    return rows_launch(seg.n_rows, seg.row_len)


# ------------------------------------------------------------------------------- global pools


@cuda_kernel("global_average_pool", "global_max_pool", kind="pool")
def _global_pool(k: GpuKernel, node: Node) -> Launch:
    x, out = k.ins[0], k.outs[0]
    dt = x.dtype
    seg = Segments(x.shape, range(2, len(x.shape)))
    is_max = node.op == "global_max_pool"
    t = acc_type(dt)
    comb = "reduce_max" if is_max else "reduce_sum"
    with rows(k, seg.n_rows, seg.row_len) as row:
        base = seg.base(k, row.index)
        (acc,) = fold(k, row, seg.row_len, [_reduce_init(comb, dt, t)],
                      lambda acc, j: [_combine(k, comb, dt, acc[0], widen(k, k.load(x, seg.at(k, base, j)), dt))],
                      lambda a, b: [_combine(k, comb, dt, a[0], b[0])])
        if not is_max:
            acc = k.b.fdiv(acc, fconst(t, seg.row_len))
        with k.if_(k.b.icmp_unsigned("==", row.lane, k.i(0))):
            k.store(out, row.index, narrow(k, acc, dt))
    return rows_launch(seg.n_rows, seg.row_len)


def _float_input(node: Node, arch) -> str | None:
    return None if node.inputs[0].dtype.is_float else "float input required"


# ------------------------------------------------------------------------------------ softmax


@cuda_kernel("softmax", "log_softmax", kind="softmax")
def _softmax(k: GpuKernel, node: Node) -> Launch:
    x, out = k.ins[0], k.outs[0]
    dt = x.dtype
    t = acc_type(dt)
    seg = Segments(x.shape, (node.attrs["axis"],))
    log = node.op == "log_softmax"
    bld = k.b
    with rows(k, seg.n_rows, seg.row_len) as row:
        base = seg.base(k, row.index)

        def val(j):
            return widen(k, k.load(x, seg.at(k, base, j)), dt)

        (m,) = fold(k, row, seg.row_len, [fconst(t, -math.inf)],
                    lambda acc, j: [intrinsic(k, "maximum", acc[0], val(j))],
                    lambda a, b: [intrinsic(k, "maximum", a[0], b[0])])
        (s,) = fold(k, row, seg.row_len, [fconst(t, 0.0)],
                    lambda acc, j: [bld.fadd(acc[0], intrinsic(k, "exp", bld.fsub(val(j), m)))],
                    lambda a, b: [bld.fadd(a[0], b[0])])
        if log:
            ls = intrinsic(k, "log", s)
        else:
            inv = bld.fdiv(fconst(t, 1.0), s)
        with lane_loop(k, row, seg.row_len) as j:
            d = bld.fsub(val(j), m)
            y = bld.fsub(d, ls) if log else bld.fmul(intrinsic(k, "exp", d), inv)
            k.store(out, seg.at(k, base, j), narrow(k, y, dt))
    return rows_launch(seg.n_rows, seg.row_len)


# ------------------------------------------------------------------------------ normalizations


def _standardize(k: GpuKernel, row, seg: Segments, base, x, dt, t, epsilon: float):
    """(mean, 1/sqrt(var + eps)) of one row, two passes (mean, then squared deviations)."""
    bld = k.b

    def val(j):
        return widen(k, k.load(x, seg.at(k, base, j)), dt)

    (s,) = fold(k, row, seg.row_len, [fconst(t, 0.0)], lambda a, j: [bld.fadd(a[0], val(j))],
                lambda a, b: [bld.fadd(a[0], b[0])])
    mean = bld.fdiv(s, fconst(t, seg.row_len))

    def sq(a, j):
        d = bld.fsub(val(j), mean)
        return [intrinsic(k, "fma", d, d, a[0])]

    (ss,) = fold(k, row, seg.row_len, [fconst(t, 0.0)], sq, lambda a, b: [bld.fadd(a[0], b[0])])
    var = bld.fdiv(ss, fconst(t, seg.row_len))
    rstd = bld.fdiv(fconst(t, 1.0), intrinsic(k, "sqrt", bld.fadd(var, fconst(t, epsilon))))
    return val, mean, rstd


@cuda_kernel("layer_norm", kind="norm", check=_float_input)
def _layer_norm(k: GpuKernel, node: Node) -> Launch:
    x, out = k.ins[0], k.outs[0]
    scale = k.ins[1]
    bias = k.ins[2] if len(k.ins) > 2 else None
    dt = x.dtype
    t = acc_type(dt)
    axis = node.attrs["axis"]
    seg = Segments(x.shape, range(axis, len(x.shape)))
    bld = k.b

    def bstrides(p):
        pad = len(x.shape) - len(p.shape)
        st = c_strides(p.shape)
        return [0 if d < pad or p.shape[d - pad] == 1 else st[d - pad] for d in range(len(x.shape))]

    sst = bstrides(scale)
    bst = bstrides(bias) if bias is not None else None
    with rows(k, seg.n_rows, seg.row_len) as row:
        base = seg.base(k, row.index)
        val, mean, rstd = _standardize(k, row, seg, base, x, dt, t, node.attrs["epsilon"])
        with lane_loop(k, row, seg.row_len) as j:
            off = seg.at(k, base, j)
            idx = k.unravel(off, x.shape)
            y = bld.fmul(bld.fmul(bld.fsub(val(j), mean), rstd), widen(k, k.load(scale, k.offset(idx, sst)), dt))
            if bias is not None:
                y = bld.fadd(y, widen(k, k.load(bias, k.offset(idx, bst)), dt))
            k.store(out, off, narrow(k, y, dt))
    return rows_launch(seg.n_rows, seg.row_len)


@cuda_kernel("instance_norm", kind="norm", check=_float_input)
def _instance_norm(k: GpuKernel, node: Node) -> Launch:
    x, scale, bias = k.ins
    out = k.outs[0]
    dt = x.dtype
    t = acc_type(dt)
    seg = Segments(x.shape, range(2, len(x.shape)))
    c = x.shape[1]
    bld = k.b
    with rows(k, seg.n_rows, seg.row_len) as row:
        base = seg.base(k, row.index)
        ch = k.urem(row.index, c)
        val, mean, rstd = _standardize(k, row, seg, base, x, dt, t, node.attrs["epsilon"])
        sc = bld.fmul(rstd, widen(k, k.load(scale, ch), dt))
        bi = widen(k, k.load(bias, ch), dt)
        with lane_loop(k, row, seg.row_len) as j:
            y = intrinsic(k, "fma", bld.fsub(val(j), mean), sc, bi)
            k.store(out, seg.at(k, base, j), narrow(k, y, dt))
    return rows_launch(seg.n_rows, seg.row_len)


@cuda_kernel("batch_norm", kind="norm", check=_float_input)
def _batch_norm(k: GpuKernel, node: Node) -> Launch:
    """Inference batch norm (when fold_batchnorm could not fold it): a per-channel affine map."""
    from irc.targets.cuda.kernel import grid1d

    x, scale, bias, mean, var = k.ins
    out = k.outs[0]
    dt = x.dtype
    t = acc_type(dt)
    c = x.shape[1]
    inner = math.prod(x.shape[2:])
    bld = k.b
    with k.grid_stride(out.size) as i:
        ch = k.urem(k.udiv(i, inner), c)

        def ld(buf):
            return widen(k, k.load(buf, ch), dt)

        rstd = bld.fdiv(fconst(t, 1.0), intrinsic(k, "sqrt", bld.fadd(ld(var), fconst(t, node.attrs["epsilon"]))))
        y = bld.fmul(bld.fsub(widen(k, k.load(x, i), dt), ld(mean)), rstd)
        y = bld.fadd(bld.fmul(y, ld(scale)), ld(bias))
        k.store(out, i, narrow(k, y, dt))
    return grid1d(out.size)


@cuda_kernel("lrn", kind="norm", check=_float_input)
def _lrn(k: GpuKernel, node: Node) -> Launch:
    from irc.targets.cuda.kernel import grid1d

    x, out = k.ins[0], k.outs[0]
    dt = x.dtype
    t = acc_type(dt)
    at = node.attrs
    size = at["size"]
    c = x.shape[1]
    inner = math.prod(x.shape[2:])
    lo = (size - 1) // 2
    bld = k.b
    with bld.goto_entry_block():
        slot = bld.alloca(t)
    with k.grid_stride(out.size) as i:
        ch = k.urem(k.udiv(i, inner), c)
        bld.store(fconst(t, 0.0), slot)
        for d in range(-lo, size - lo):
            cc = bld.add(ch, k.i(d))
            ok = bld.and_(k.ge(cc, 0), k.lt(cc, c))
            off = bld.select(ok, bld.add(i, k.i(d * inner)), i)
            v = widen(k, k.load(x, off), dt)
            v = bld.select(ok, bld.fmul(v, v), fconst(t, 0.0))
            bld.store(bld.fadd(bld.load(slot, typ=t), v), slot)
        base = bld.fadd(fconst(t, at["bias"]), bld.fmul(fconst(t, at["alpha"] / size), bld.load(slot, typ=t)))
        den = intrinsic(k, "pow", base, fconst(t, at["beta"]))
        k.store(out, i, narrow(k, bld.fdiv(widen(k, k.load(x, i), dt), den), dt))
    return grid1d(out.size)
