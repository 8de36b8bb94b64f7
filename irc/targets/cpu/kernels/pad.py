"""Kernel of ``pad`` in its four modes (constant, reflect, edge, wrap), negative pads cropping.

The output is walked row by row, a row being the last padded (or cropped) axis with the
untouched trailing axes folded into each of its elements ("units"). Every output index of an
outer axis maps to one source index, or, in constant mode, to none (the row is all ``value``).
A row is then its left border, the interior as one memcpy from the cropped source row, and its
right border: borders are ``value`` in constant mode, otherwise units copied from the source
positions the mode names. Every output byte is written exactly once.
"""

from __future__ import annotations

import math

import numpy as np
from llvmlite import ir

from irc.ir.graph import Node
from irc.ir.types import DType
from irc.targets.cpu.kernel import KernelBuilder
from irc.targets.cpu.kernels.registry import cpu_kernel
from irc.targets.cpu.kernels.strided import add, elem_ptr, emit_copy, fill, parallel_nest
from irc.targets.llvm import lltypes as T


def pad_value_bits(value: float, dt) -> tuple[ir.Constant, int | None]:
    """The constant ``value`` in ``dt``'s storage as numpy converts it, and its byte if all its
    bytes are equal (so a fill is a memset)."""
    raw = np.array(value).astype(dt.numpy)
    data = raw.tobytes()
    bits = int.from_bytes(data, "little", signed=True)
    st = T.storage_type(dt)
    if dt.is_float and dt is not DType.bf16:
        const = ir.Constant(st, float(raw))
    else:
        const = ir.Constant(st, bits)
    return const, data[0] if len(set(data)) == 1 else None


class _Axis:
    """One axis of a pad: cropped source [crop, crop + n), ``before`` and ``after`` new units."""

    def __init__(self, size: int, begin: int, end: int):
        self.size = size
        self.crop = max(-begin, 0)
        self.n = size - self.crop - max(-end, 0)
        self.before, self.after = max(begin, 0), max(end, 0)
        self.out = self.n + self.before + self.after

    @property
    def trivial(self) -> bool:
        return self.n == self.size and self.before == 0 and self.after == 0


def source_index(k: KernelBuilder, mode: str, t: ir.Value, n: int) -> ir.Value:
    """The position in a source axis of ``n`` elements that position ``t`` (which may lie
    outside it) takes its value from, in a non-constant mode; as numpy.pad, borders wider than
    the axis repeat the rule (reflect and wrap are periodic)."""
    b = k.b
    if mode == "edge" or n == 1:
        t = b.select(b.icmp_signed("<", t, k.i64(0)), k.i64(0), t)
        return b.select(b.icmp_signed(">", t, k.i64(n - 1)), k.i64(n - 1), t)
    period = n if mode == "wrap" else 2 * (n - 1)
    m = b.srem(t, k.i64(period))
    m = b.select(b.icmp_signed("<", m, k.i64(0)), b.add(m, k.i64(period)), m)
    if mode == "wrap":
        return m
    return b.select(b.icmp_signed("<", m, k.i64(n)), m, b.sub(k.i64(period), m))


@cpu_kernel("pad")
def _pad(k: KernelBuilder, node: Node) -> None:
    out, x = k.outs[0], k.ins[0]
    mode, pads = node.attrs["mode"], node.attrs["pads"]
    r = x.type.rank
    if out.size == 0:
        return
    axes = [_Axis(x.shape[d], pads[d], pads[d + r]) for d in range(r)]
    value, byte = pad_value_bits(node.attrs["value"], out.dtype)
    if mode == "constant" and any(a.n == 0 for a in axes):
        with k.parallel_chunks(out.size, 1) as (lo, hi, _tid, _):
            fill(k, out, lo, k.b.sub(hi, lo), value, byte)
        return
    row = max((d for d in range(r) if not axes[d].trivial), default=None)
    if row is None:  # nothing padded or cropped: a plain copy
        emit_copy(k, (out.size,), out, 0, (1,), x, 0, (1,))
        return
    unit = math.prod(x.shape[row + 1:])
    outer = axes[:row]
    ax = axes[row]
    xs = x.strides[:row]
    item = out.dtype.itemsize
    with parallel_nest(k, [a.out for a in outer], ax.out * unit) as idx:
        b = k.b
        src = k.i64(ax.crop * unit)
        inside = None
        for a, i, stride in zip(outer, idx, xs):
            t = b.sub(i, k.i64(a.before))
            if mode == "constant":
                ok = b.and_(b.icmp_signed(">=", t, k.i64(0)), b.icmp_signed("<", t, k.i64(a.n)))
                inside = ok if inside is None else b.and_(inside, ok)
                s = t
            else:
                s = source_index(k, mode, t, a.n)
            src = b.add(src, b.mul(add(k, s, a.crop), k.i64(stride)))
        dst = k.offset(idx, out.strides[:row])

        def row_body():
            _row(k, mode, ax, unit, item, out, dst, x, src, value, byte)

        if inside is None:
            row_body()
        else:
            with b.if_else(inside) as (then, other):
                with then:
                    row_body()
                with other:
                    fill(k, out, dst, ax.out * unit, value, byte)


def _row(k, mode, ax: _Axis, unit, item, out, dst, x, src, value, byte) -> None:
    """One output row: border, interior, border. ``src`` is the cropped source row's start."""
    b = k.b
    left, right = ax.before * unit, ax.after * unit
    interior = add(k, dst, left)
    k.memcpy(elem_ptr(k, out, interior), elem_ptr(k, x, src), ax.n * unit * item)
    if mode == "constant":
        if left:
            fill(k, out, dst, left, value, byte)
        if right:
            fill(k, out, add(k, interior, ax.n * unit), right, value, byte)
        return
    row0 = b.sub(src, k.i64(ax.crop * unit))  # the uncropped row start; sources are crop + index
    for start, count in ((0, ax.before), (ax.before + ax.n, ax.after)):
        if not count:
            continue
        with k.loop(start + count, start=start, name="u") as j:
            s = source_index(k, mode, k.b.sub(j, k.i64(ax.before)), ax.n)
            s = b.mul(add(k, s, ax.crop), k.i64(unit))
            k.memcpy(elem_ptr(k, out, add(k, dst, b.mul(j, k.i64(unit)))), elem_ptr(k, x, add(k, row0, s)),
                     unit * item)
