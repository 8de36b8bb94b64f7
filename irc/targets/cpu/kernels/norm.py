"""Normalization kernels: softmax, log_softmax, batch_norm, instance_norm, layer_norm, lrn.

Each works on rows in registers, one row (or one vector of columns) per parallel iteration:
statistics by vector reductions with several accumulators (lanes.py), then one more pass
that writes the result. Softmax subtracts the row maximum before exp, so no input
overflows; its exp is the vectorised one of lanes.py. Everything computes in f32 at least
(f16 and bf16 are widened), as the references do for the normalizations.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator

from llvmlite import ir

from irc.ir.graph import Node
from irc.targets.cpu.kernel import KernelBuilder
from irc.targets.cpu.kernels.lanes import Lanes, add, exp, maximum
from irc.targets.cpu.kernels.registry import cpu_kernel
from irc.targets.llvm.builder import c_strides
from irc.targets.llvm.elementwise import broadcast_strides
from irc.targets.llvm.scalar import Scalar

#: Relative cost of one element of exp, for parallel thresholds.
EXP_COST = 8


def _first_input(node: Node) -> list[int]:
    """Each element is read before its output is written, so the output may reuse input 0."""
    return [0] if node.inputs[0].type == node.outputs[0].type else []


# ---------------------------------------------------------------------------- softmax


@cpu_kernel("softmax", "log_softmax", inplace=_first_input)
def _softmax(k: KernelBuilder, node: Node) -> None:
    """Three passes per row: maximum; exp(x - max) and its sum; scale (or subtract log-sum)."""
    x, y = k.ins[0], k.outs[0]
    if y.size == 0:
        return
    axis = node.attrs["axis"]
    outer, n, inner = math.prod(x.shape[:axis]), x.shape[axis], math.prod(x.shape[axis + 1:])
    lv = Lanes(k, x.dtype)
    log = node.op == "log_softmax"
    if inner == 1:
        with k.parallel_loop(outer, work_per_iter=n * EXP_COST) as r:
            base = k.b.mul(r, k.i64(n))
            _softmax_row(k, lv, lv.at(k.ptr(x), base), lv.at(k.ptr(y), base), n, log)
        return
    # The axis is not the last one: each vector holds ``vl`` neighbouring columns, and the
    # reductions run down the axis with no horizontal step.
    full, tail = divmod(inner, lv.vl)
    groups = full + (1 if tail else 0)
    with k.parallel_loop(outer * groups, work_per_iter=n * lv.vl * EXP_COST) as u:
        b = k.b
        o, grp = b.sdiv(u, k.i64(groups)), b.srem(u, k.i64(groups))
        plane = b.mul(o, k.i64(n * inner))

        def columns(j0: ir.Value, lanes: int) -> None:
            off = b.add(plane, j0)
            _softmax_columns(k, lv, lv.at(k.ptr(x), off), lv.at(k.ptr(y), off), n, inner, lanes, log)

        def vector_group() -> None:
            columns(b.mul(grp, k.i64(lv.vl)), lv.vl)

        def scalar_tail() -> None:
            with k.loop(inner, start=full * lv.vl, name="j") as j:
                columns(j, 0)

        if not tail:
            vector_group()
        elif not full:
            scalar_tail()
        else:
            with b.if_else(b.icmp_signed("<", grp, k.i64(full))) as (then, other):
                with then:
                    vector_group()
                with other:
                    scalar_tail()


def _softmax_row(k: KernelBuilder, lv: Lanes, xp, yp, n: int, log: bool) -> None:
    m = lv.reduce(n, lambda i, ln: lv.load(xp, i, ln), maximum, -math.inf)

    def shifted(i, ln):
        s = lv.ops(ln)
        return s.sub(lv.load(xp, i, ln), lv.splat(m, ln))

    def exp_and_store(i, ln):
        e = exp(lv.ops(ln), shifted(i, ln))
        if not log:
            lv.store(yp, i, e, ln)
        return e

    total = lv.reduce(n, exp_and_store, add, 0.0)
    if log:
        lse = lv.s.intrinsic("log", total)
        lv.for_each(n, lambda i, ln: lv.store(yp, i, lv.ops(ln).sub(shifted(i, ln), lv.splat(lse, ln)), ln))
    else:
        inv = k.b.fdiv(lv.s.c(1.0), total)
        lv.for_each(n, lambda i, ln: lv.store(yp, i, lv.ops(ln).mul(lv.load(yp, i, ln), lv.splat(inv, ln)), ln))


def _softmax_columns(k: KernelBuilder, lv: Lanes, xp, yp, n: int, stride: int, lanes: int, log: bool) -> None:
    s, b = lv.ops(lanes), k.b
    m_slot = lv.slot(lanes, s.c(-math.inf))
    with k.loop(n, name="l") as i:
        b.store(s.max(lv.get(m_slot), lv.load(xp, b.mul(i, k.i64(stride)), lanes)), m_slot)
    m = lv.get(m_slot)
    sum_slot = lv.slot(lanes, s.c(0.0))
    with k.loop(n, name="l") as i:
        off = b.mul(i, k.i64(stride))
        e = exp(s, s.sub(lv.load(xp, off, lanes), m))
        if not log:
            lv.store(yp, off, e, lanes)
        b.store(s.add(lv.get(sum_slot), e), sum_slot)
    total = lv.get(sum_slot)
    if log:
        lse = s.intrinsic("log", total)
        with k.loop(n, name="l") as i:
            off = b.mul(i, k.i64(stride))
            lv.store(yp, off, s.sub(s.sub(lv.load(xp, off, lanes), m), lse), lanes)
    else:
        inv = b.fdiv(s.c(1.0), total)
        with k.loop(n, name="l") as i:
            off = b.mul(i, k.i64(stride))
            lv.store(yp, off, s.mul(lv.load(yp, off, lanes), inv), lanes)


# ---------------------------------------------------------------------------- batch / instance norm


def _channel_param(k: KernelBuilder, lv: Lanes, buf, c: ir.Value) -> ir.Value:
    return lv.load(k.ptr(buf), c, 0)


def _affine(k: KernelBuilder, lv: Lanes, xp, yp, n: int, shift: ir.Value, mul: ir.Value, add_: ir.Value) -> None:
    """y = (x - shift) * mul + add over a contiguous run of n elements (scalars broadcast)."""

    def body(i, ln):
        s = lv.ops(ln)
        v = s.mul(s.sub(lv.load(xp, i, ln), lv.splat(shift, ln)), lv.splat(mul, ln))
        lv.store(yp, i, s.add(v, lv.splat(add_, ln)), ln)

    lv.for_each(n, body)


@cpu_kernel("batch_norm", inplace=_first_input)
def _batch_norm(k: KernelBuilder, node: Node) -> None:
    """Per (sample, channel) plane: one scale and shift from the running statistics."""
    x, y = k.ins[0], k.outs[0]
    lv = Lanes(k, x.dtype)
    s = lv.s
    for c, base, plane in _planes(k, lambda plane: plane + 8):
        scale, bias, mean, var = (_channel_param(k, lv, buf, c) for buf in k.ins[1:5])
        mul = k.b.fdiv(scale, s.intrinsic("sqrt", s.add(var, s.c(node.attrs["epsilon"]))))
        _affine(k, lv, lv.at(k.ptr(x), base), lv.at(k.ptr(y), base), plane, mean, mul, bias)


def _planes(k: KernelBuilder, work: Callable[[int], int]) -> Iterator[tuple[ir.Value, ir.Value, int]]:
    """The body once per (sample, channel) plane of ``k.ins[0]``, on the thread pool: yields
    (channel, offset of the plane, plane size); ``work(plane size)`` is the work per plane.
    Nothing when the output is empty."""
    x = k.ins[0]
    if k.outs[0].size == 0:
        return
    ch, plane = x.shape[1], math.prod(x.shape[2:])
    with k.parallel_loop(x.shape[0] * ch, work_per_iter=work(plane)) as u:
        yield k.b.srem(u, k.i64(ch)), k.b.mul(u, k.i64(plane)), plane


def _mean_and_rstd(k: KernelBuilder, lv: Lanes, xp, n: int, epsilon: float) -> tuple[ir.Value, ir.Value]:
    """Mean and 1/sqrt(variance + epsilon) of a contiguous row, variance from a second pass."""
    s, b = lv.s, k.b
    mean = b.fdiv(lv.reduce(n, lambda i, ln: lv.load(xp, i, ln), add, 0.0), s.c(n))

    def square(i, ln):
        o = lv.ops(ln)
        d = o.sub(lv.load(xp, i, ln), lv.splat(mean, ln))
        return o.mul(d, d)

    var = b.fdiv(lv.reduce(n, square, add, 0.0), s.c(n))
    return mean, b.fdiv(s.c(1.0), s.intrinsic("sqrt", s.add(var, s.c(epsilon))))


@cpu_kernel("instance_norm", inplace=_first_input)
def _instance_norm(k: KernelBuilder, node: Node) -> None:
    x, y = k.ins[0], k.outs[0]
    lv = Lanes(k, x.dtype)
    for c, base, plane in _planes(k, lambda plane: 3 * plane):
        xp, yp = lv.at(k.ptr(x), base), lv.at(k.ptr(y), base)
        mean, rstd = _mean_and_rstd(k, lv, xp, plane, node.attrs["epsilon"])
        scale, bias = (_channel_param(k, lv, buf, c) for buf in k.ins[1:3])
        _affine(k, lv, xp, yp, plane, mean, lv.s.mul(rstd, scale), bias)


# ---------------------------------------------------------------------------- layer norm


class _Broadcast:
    """Where a parameter broadcast to x (unidirectionally) is read, split at the normalized
    axis: a per-row offset and, inside the row, contiguous, constant or anything else."""

    def __init__(self, shape, pshape, axis: int):
        st = broadcast_strides(pshape, shape)
        self.lead_shape, self.lead = shape[:axis], st[:axis]
        self.trail_shape, self.trail = shape[axis:], st[axis:]
        live = [d for d, n in enumerate(self.trail_shape) if n != 1]
        dense = c_strides(self.trail_shape)
        if all(self.trail[d] == 0 for d in live):
            self.kind = "constant"
        elif all(self.trail[d] == dense[d] for d in live):
            self.kind = "contiguous"
        else:
            self.kind = "strided"

    def row_offset(self, k: KernelBuilder, row: ir.Value) -> ir.Value:
        return flat_offset(k, row, self.lead_shape, self.lead)

    def offset(self, k: KernelBuilder, row_off: ir.Value, i: ir.Value) -> ir.Value:
        if self.kind == "constant":
            return row_off
        if self.kind == "contiguous":
            return k.b.add(row_off, i)
        return k.b.add(row_off, flat_offset(k, i, self.trail_shape, self.trail))


def flat_offset(k: KernelBuilder, i: ir.Value, shape, strides) -> ir.Value:
    """Offset of the C-order flat index ``i`` over ``shape`` in an array with ``strides``."""
    b = k.b
    dense = c_strides(shape)
    acc = k.i64(0)
    for d, (n, st) in enumerate(zip(shape, strides)):
        if n == 1 or st == 0:
            continue
        idx = b.sdiv(i, k.i64(dense[d])) if dense[d] != 1 else i
        if d > 0:
            idx = b.srem(idx, k.i64(n))
        acc = b.add(acc, b.mul(idx, k.i64(st)))
    return acc


@cpu_kernel("layer_norm", inplace=_first_input)
def _layer_norm(k: KernelBuilder, node: Node) -> None:
    x, y = k.ins[0], k.outs[0]
    if y.size == 0:
        return
    axis = node.attrs["axis"]
    rows, n = math.prod(x.shape[:axis]), math.prod(x.shape[axis:])
    params = [(buf, _Broadcast(x.shape, buf.shape, axis)) for buf in k.ins[1:]]
    lv = Lanes(k, x.dtype)
    vector = all(p.kind != "strided" for _, p in params)
    with k.parallel_loop(rows, work_per_iter=3 * n) as r:
        b = k.b
        base = b.mul(r, k.i64(n))
        xp, yp = lv.at(k.ptr(x), base), lv.at(k.ptr(y), base)
        mean, rstd = _mean_and_rstd(k, lv, xp, n, node.attrs["epsilon"])
        row_offs = [p.row_offset(k, r) for _, p in params]

        def body(i, ln):
            s = lv.ops(ln)
            v = s.mul(s.sub(lv.load(xp, i, ln), lv.splat(mean, ln)), lv.splat(rstd, ln))
            for (buf, p), ro in zip(params, row_offs):
                val = lv.load(k.ptr(buf), p.offset(k, ro, i), 0 if p.kind == "constant" else ln)
                val = lv.splat(val, ln) if p.kind == "constant" else val
                v = s.mul(v, val) if buf is k.ins[1] else s.add(v, val)
            lv.store(yp, i, v, ln)

        if vector:
            lv.for_each(n, body)
        else:
            with k.loop(n, name="e") as i:
                body(i, 0)


# ---------------------------------------------------------------------------- lrn


@cpu_kernel("lrn")
def _lrn(k: KernelBuilder, node: Node) -> None:
    """Per (sample, channel): the sum of squares over the channel window, vectorised along the
    spatial positions, then x / (bias + alpha/size * sum) ** beta."""
    x, y = k.ins[0], k.outs[0]
    if y.size == 0:
        return
    a = node.attrs
    size = a["size"]
    ch = x.shape[1]
    plane = math.prod(x.shape[2:])
    before = (size - 1) // 2
    lv = Lanes(k, x.dtype)
    with k.parallel_loop(x.shape[0] * ch, work_per_iter=plane * min(size, ch) + 16 * plane) as u:
        b = k.b
        c = b.srem(u, k.i64(ch))
        img = b.sub(u, c)  # first channel of this sample, as a channel index
        lo = b.sub(c, k.i64(before))
        lo = b.select(b.icmp_signed("<", lo, k.i64(0)), k.i64(0), lo)
        hi = b.add(c, k.i64(size - before))
        hi = b.select(b.icmp_signed(">", hi, k.i64(ch)), k.i64(ch), hi)
        xs = k.ptr(x)
        out_base = b.mul(u, k.i64(plane))

        def body(j, ln):
            s = lv.ops(ln)
            acc = lv.slot(ln, s.c(0.0))
            with k.loop(hi, start=lo, name="cc") as cc:
                v = lv.load(xs, b.add(b.mul(b.add(img, cc), k.i64(plane)), j), ln)
                b.store(s.add(lv.get(acc), s.mul(v, v)), acc)
            base = s.add(s.c(a["bias"]), s.mul(s.c(a["alpha"] / size), lv.get(acc)))
            off = b.add(out_base, j)
            lv.store(k.ptr(y), off, s.b.fdiv(lv.load(xs, off, ln), _power(s, base, a["beta"])), ln)

        lv.for_each(plane, body)


def _power(s: Scalar, base: ir.Value, beta: float) -> ir.Value:
    """base ** beta; the common exponents through sqrt, which vectorises (pow does not)."""
    if beta == 1.0:
        return base
    if beta == 0.5:
        return s.intrinsic("sqrt", base)
    if beta == 0.75:
        r = s.intrinsic("sqrt", base)
        return s.mul(r, s.intrinsic("sqrt", r))
    return s.intrinsic("pow", base, s.c(beta))
