"""Kernels of the reductions (reduce_sum, _mean, _max, _min, _prod, _l1, _l2, _sum_square,
_log_sum, _log_sum_exp).

A reduction is a plan: the type it accumulates in, one or more passes over the reduced
elements (log-sum-exp first finds the maximum, then sums exp(x - max)), each an initial value,
a per-element transform and a combining op, and a final step (divide, sqrt, log). Float sums
and products accumulate in f64, as the reference does, so results agree with it however the
elements are grouped; integer ones wrap in their own type; max and min run in the input's type.

The input is collapsed to alternating runs of kept and reduced dimensions, and one of two loop
shapes runs the plan, in parallel over the outputs:
- innermost run reduced: each output sums a contiguous run with wide vectors (several
  registers, so several independent accumulators) and folds the lanes at the end;
- innermost run kept: a block of neighbouring outputs keeps a row of accumulators on the stack
  (in L1), and every reduced position streams one contiguous block of the input into it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from llvmlite import ir

from irc.ir.graph import Node
from irc.ir.types import DType
from irc.targets.cpu.kernel import KernelBuilder
from irc.targets.cpu.kernels import lanes
from irc.targets.cpu.kernels import typed_io as io
from irc.targets.cpu.kernels.lanes import fold_lanes
from irc.targets.cpu.kernels.registry import cpu_kernel
from irc.targets.cpu.kernels.strided import add, parallel_nest
from irc.targets.llvm import lltypes as T
from irc.targets.llvm.builder import c_strides
from irc.targets.llvm.scalar import Scalar

#: Bits of accumulator per vector step along a reduced run: four AVX-512 registers, so four
#: independent chains hide the latency of the combining instruction.
STEP_BITS = 2048
#: Along a kept run: bits per vector step, and bytes of stack for the rows of accumulators
#: (they stay in L1 while the reduced positions stream past).
ROW_STEP_BITS = 1024
ROW_BYTES = 16384

Combine = Callable[[Scalar, ir.Value, ir.Value], ir.Value]


@dataclass(frozen=True)
class Pass:
    """One sweep over the reduced elements: acc = combine(acc, pre(x, earlier results))."""

    init: object
    combine: Combine
    pre: Callable[[Scalar, ir.Value, list[ir.Value]], ir.Value] = lambda s, x, prev: x


@dataclass(frozen=True)
class Plan:
    """How one reduction of one element type is computed."""

    acc: DType
    passes: tuple[Pass, ...]
    #: (ops, results of the passes, element count) -> the output value, in ``result``
    finish: Callable[[Scalar, list[ir.Value], int], ir.Value] = lambda s, r, n: r[-1]
    #: the type the finished value is in (``acc`` unless given)
    result: DType | None = None
    #: the type the input's bytes are read as (its own unless given)
    load_as: DType | None = None

    def __post_init__(self):
        if self.result is None:
            object.__setattr__(self, "result", self.acc)


def _add(s: Scalar, a, b):
    return s.add(a, b)


def _mul(s: Scalar, a, b):
    return s.mul(a, b)


def _max(s: Scalar, acc, x):
    """numpy.max's rule: a NaN anywhere wins. One compare-select, then NaN in x kept; a NaN
    already in acc stays since no comparison with it is true."""
    if not s.is_float:
        return s.max(acc, x)
    m = s.select(s.b.fcmp_ordered(">", x, acc), x, acc)
    return s.select(s.is_nan(x), x, m)


def _min(s: Scalar, acc, x):
    if not s.is_float:
        return s.min(acc, x)
    m = s.select(s.b.fcmp_ordered("<", x, acc), x, acc)
    return s.select(s.is_nan(x), x, m)


def _square(s: Scalar, x, prev):
    return s.mul(x, x)


def _lowest(dt: DType, low: bool):
    """Identity of max (low) or min in ``dt``: what a reduction over no elements gives."""
    if dt.is_float:
        return -math.inf if low else math.inf
    info = np.iinfo(dt.numpy)
    return io.int_const(T.compute_type(dt), int(info.min if low else info.max))


def _finite_or_zero(s: Scalar, m):
    """The max that log-sum-exp shifts by: 0 where it is infinite or NaN (as the reference)."""
    finite = s.b.fcmp_ordered("<", s.intrinsic("fabs", m), s.c(math.inf))
    return s.select(finite, m, s.c(0.0))


def _int_mean(s: Scalar, r, n):
    """Sum (i64) over count truncated toward zero: (|s| // n) * sign(s), numpy's floor division
    on |s| included (it differs only for the wrapped |INT64_MIN|)."""
    b = s.b
    total = r[0]
    neg = b.icmp_signed("<", total, s.c(0))
    mag = s.select(neg, b.sub(s.c(0), total), total)
    q = b.sdiv(mag, s.c(n))
    floor_fix = b.and_(b.icmp_signed("<", mag, s.c(0)), b.icmp_signed("!=", b.srem(mag, s.c(n)), s.c(0)))
    q = b.sub(q, b.zext(floor_fix, q.type))
    sign = s.select(neg, s.c(-1), s.select(b.icmp_signed("==", total, s.c(0)), s.c(0), s.c(1)))
    return b.mul(q, sign)


def plan_for(op: str, dt: DType) -> Plan:
    """The plan of reduction ``op`` over ``dt`` data."""
    wide = DType.f64 if dt.is_float else dt
    if dt is DType.bool:  # bytes 0/1: max is any, min is all
        low = op == "reduce_max"
        return Plan(DType.u8, (Pass(0 if low else 1, _max if low else _min),),
                    lambda s, r, n: s.b.icmp_unsigned("!=", r[0], s.c(0)), result=DType.bool, load_as=DType.u8)
    if op in ("reduce_max", "reduce_min"):
        acc = DType.f32 if dt in (DType.f16, DType.bf16) else dt
        low = op == "reduce_max"
        return Plan(acc, (Pass(_lowest(acc, low), _max if low else _min),))
    if op == "reduce_mean":
        if dt.is_float:
            return Plan(wide, (Pass(0, _add),), lambda s, r, n: s.b.fdiv(r[0], s.c(n)))
        return Plan(DType.i64, (Pass(0, _add),), _int_mean)
    simple = {
        "reduce_sum": Pass(0, _add),
        "reduce_prod": Pass(1, _mul),
        "reduce_l1": Pass(0, _add, lambda s, x, prev: s.abs(x)),
        "reduce_sum_square": Pass(0, _add, _square),
    }
    if op in simple:
        return Plan(wide, (simple[op],))
    if op == "reduce_l2":
        return Plan(wide, (Pass(0, _add, _square),), lambda s, r, n: s.intrinsic("sqrt", r[0]))
    if op == "reduce_log_sum":
        return Plan(wide, (Pass(0, _add),), lambda s, r, n: s.intrinsic("log", r[0]))
    if op == "reduce_log_sum_exp":
        def shifted_exp(s, x, prev):
            return _exp(s, s.sub(x, _finite_or_zero(s, _spread(s, prev[0]))), dt)

        return Plan(wide, (Pass(-math.inf, _max), Pass(0, _add, shifted_exp)),
                    lambda s, r, n: s.add(s.intrinsic("log", r[1]), _finite_or_zero(s, _spread(s, r[0]))))
    raise AssertionError(op)


def _exp(s: Scalar, x: ir.Value, dt: DType) -> ir.Value:
    """exp of f64 values. For data that was f32 or narrower, f32's vectorised exp is accurate
    enough (the arguments are <= 0 and the sum is >= 1) and far faster than libm per lane."""
    if dt is DType.f64:
        return s.intrinsic("exp", x)
    t = io.vec(T.F32, s.lanes)
    y = lanes.exp(Scalar(s.k, DType.f32, s.lanes), s.b.fptrunc(x, t))
    return s.b.fpext(y, s.t)


def _spread(s: Scalar, v: ir.Value) -> ir.Value:
    """A per-output value as ``s``'s lanes (it is a scalar in the innermost-reduced shape)."""
    if not s.lanes or isinstance(v.type, ir.VectorType):
        return v
    vt = ir.VectorType(v.type, s.lanes)
    one = s.b.insert_element(ir.Constant(vt, ir.Undefined), v, ir.Constant(T.I32, 0))
    return s.b.shuffle_vector(one, ir.Constant(vt, ir.Undefined), ir.Constant(ir.VectorType(T.I32, s.lanes), [0] * s.lanes))


def layout(shape: Sequence[int], axes: Sequence[int]) -> list[tuple[int, bool]]:
    """(size, reduced) runs of the input: size-1 dimensions dropped, neighbours of one kind
    merged; at least one reduced run, innermost when nothing is reduced."""
    runs: list[list] = []
    for d, n in enumerate(shape):
        if n == 1:
            continue
        red = d in axes
        if runs and runs[-1][1] == red:
            runs[-1][0] *= n
        else:
            runs.append([n, red])
    if not any(r for _, r in runs):
        runs.append([1, True])
    return [(n, r) for n, r in runs]


def step_lanes(plan: Plan, dt: DType) -> int:
    bits = max(8 * dt.itemsize, _bits(plan.acc))
    return max(2, STEP_BITS // bits)


def _bits(dt: DType) -> int:
    t = T.compute_type(dt)
    return {T.F16: 16, T.F32: 32, T.F64: 64}.get(t) or max(8, t.width)


def _emit(k: KernelBuilder, node: Node) -> None:
    out, x = k.outs[0], k.ins[0]
    if out.size == 0:
        return
    plan = plan_for(node.op, x.dtype)
    runs = layout(x.shape, node.attrs["axes"])
    count = math.prod(x.shape[a] for a in node.attrs["axes"])
    sizes = [n for n, _ in runs]
    xs = c_strides(sizes)
    kept = [i for i, (_, r) in enumerate(runs) if not r]
    red = [i for i, (_, r) in enumerate(runs) if r]
    os_ = dict(zip(kept, c_strides([sizes[i] for i in kept])))
    if runs[-1][1]:
        _inner_reduced(k, plan, runs, xs, kept, red, os_, count)
    else:
        _inner_kept(k, plan, runs, xs, kept, red, os_, count)


def _inner_reduced(k, plan, runs, xs, kept, red, os_, count) -> None:
    out, x = k.outs[0], k.ins[0]
    run = runs[-1][0]
    outer_red = red[:-1]
    big = step_lanes(plan, x.dtype)
    widths = [w for w in (big, big // 4) if w >= 2]
    red_total = math.prod(runs[i][0] for i in red)
    with parallel_nest(k, [runs[i][0] for i in kept], red_total, name="r") as idx:
        base = k.offset(idx, [xs[i] for i in kept])
        results: list[ir.Value] = []
        for p in plan.passes:
            slots = [_slot(k, plan.acc, w, p.init) for w in widths] + [_slot(k, plan.acc, 0, p.init)]
            with k.nest([runs[i][0] for i in outer_red], name="rr") as ridx:
                row = add(k, base, k.offset(ridx, [xs[i] for i in outer_red]))
                start = 0
                for w, slot in zip(widths + [0], slots):
                    step = max(w, 1)
                    stop = start + (run - start) // step * step
                    if stop > start:
                        s = Scalar(k, plan.acc, w)
                        with k.loop(stop, start=start, step=step, name=f"v{w}") as i:
                            v = p.pre(s, io.load(k, x, add(k, row, i), w, plan.acc, plan.load_as), results)
                            k.b.store(p.combine(s, k.b.load(slot, typ=slot.allocated_type), v), slot)
                    start = stop
            s0 = Scalar(k, plan.acc)
            total = k.b.load(slots[-1], typ=slots[-1].allocated_type)
            for slot in slots[:-1]:
                total = p.combine(s0, total, fold_lanes(k, plan.acc, k.b.load(slot, typ=slot.allocated_type), p.combine))
            results.append(total)
        value = plan.finish(Scalar(k, plan.acc), results, count)
        io.store(k, out, k.offset(idx, [os_[i] for i in kept]), value, plan.result)


def _inner_kept(k, plan, runs, xs, kept, red, os_, count) -> None:
    """Outputs along the innermost run, in blocks whose accumulators (one row per pass) sit on
    the stack in L1: every reduced position streams one contiguous block of the input."""
    out, x = k.outs[0], k.ins[0]
    width = runs[-1][0]
    vl = max(2, ROW_STEP_BITS // _bits(plan.acc))
    acc_bytes = _bits(plan.acc) // 8
    block = min(width, max(vl, ROW_BYTES // (acc_bytes * len(plan.passes)) // vl * vl))
    nfull, tail = divmod(width, block)
    outer = kept[:-1]
    red_sizes = [runs[i][0] for i in red]
    red_strides = [xs[i] for i in red]
    with parallel_nest(k, [runs[i][0] for i in outer] + [nfull + (1 if tail else 0)],
                       block * math.prod(red_sizes), name="c") as idx:
        b = k.b
        c0 = b.mul(idx[-1], k.i64(block))
        base = add(k, k.offset(idx[:-1], [xs[i] for i in outer]), c0)
        obase = add(k, k.offset(idx[:-1], [os_[i] for i in outer]), c0)

        def body(w: int) -> None:
            acc_t = T.compute_type(plan.acc)
            rows = []
            for p in plan.passes:
                with k.b.goto_entry_block():
                    rows.append(k.b.alloca(ir.ArrayType(acc_t, w)))
                _for_lanes(k, w, vl, lambda j, n, row=rows[-1], p=p: _row_store(k, row, j, Scalar(k, plan.acc, n).c(p.init)))
                with k.nest(red_sizes, name="cr") as ridx:
                    src = add(k, base, k.offset(ridx, red_strides))

                    def step(j, n, p=p, src=src):
                        s = Scalar(k, plan.acc, n)
                        prev = [_row_load(k, r, j, acc_t, n) for r in rows[:-1]]
                        v = p.pre(s, io.load(k, x, add(k, src, j), n, plan.acc, plan.load_as), prev)
                        _row_store(k, rows[-1], j, p.combine(s, _row_load(k, rows[-1], j, acc_t, n), v))

                    _for_lanes(k, w, vl, step)

            def finish(j, n):
                s = Scalar(k, plan.acc, n)
                value = plan.finish(s, [_row_load(k, r, j, acc_t, n) for r in rows], count)
                io.store(k, out, add(k, obase, j), value, plan.result)

            _for_lanes(k, w, vl, finish)

        if not tail:
            body(block)
        elif not nfull:
            body(tail)
        else:
            with b.if_else(b.icmp_signed("<", idx[-1], k.i64(nfull))) as (then, other):
                with then:
                    body(block)
                with other:
                    body(tail)


def _for_lanes(k: KernelBuilder, n: int, vl: int, body: Callable[[ir.Value, int], None]) -> None:
    """body(j, lanes) over [0, n): whole vectors of ``vl``, then one vector of the remainder."""
    whole = n // vl * vl
    if whole == vl:
        body(k.i64(0), vl)
    elif whole:
        with k.loop(whole, step=vl, name="j") as j:
            body(j, vl)
    if n > whole:
        body(k.i64(whole), n - whole if n - whole > 1 else 0)


def _row_at(k: KernelBuilder, row: ir.Value, j: ir.Value, t: ir.Type) -> ir.Value:
    """Pointer to element ``j`` of a stack row, typed for a value of type ``t``."""
    ptr = k.b.gep(row, [k.i64(0), j], inbounds=True, source_etype=row.allocated_type)
    return k.b.bitcast(ptr, ir.PointerType(t))


def _row_load(k: KernelBuilder, row: ir.Value, j: ir.Value, t: ir.Type, lanes: int) -> ir.Value:
    vt = io.vec(t, lanes)
    return k.b.load(_row_at(k, row, j, vt), typ=vt, align=_type_bytes(t))


def _row_store(k: KernelBuilder, row: ir.Value, j: ir.Value, v: ir.Value) -> None:
    t = v.type.element if isinstance(v.type, ir.VectorType) else v.type
    k.b.store(v, _row_at(k, row, j, v.type), align=_type_bytes(t))


def _type_bytes(t: ir.Type) -> int:
    return {T.F16: 2, T.F32: 4, T.F64: 8}.get(t) or t.width // 8


def _slot(k: KernelBuilder, acc: DType, lanes: int, init) -> ir.Value:
    """An accumulator on the stack (LLVM keeps it in registers), set to ``init``."""
    s = Scalar(k, acc, lanes)
    with k.b.goto_entry_block():
        p = k.b.alloca(s.t)
    k.b.store(s.c(init), p)
    return p


REDUCTIONS = ("reduce_sum", "reduce_mean", "reduce_max", "reduce_min", "reduce_prod", "reduce_l1", "reduce_l2",
              "reduce_sum_square", "reduce_log_sum", "reduce_log_sum_exp")
cpu_kernel(*REDUCTIONS)(_emit)
