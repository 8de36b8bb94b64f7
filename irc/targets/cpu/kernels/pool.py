"""Pooling kernels: max_pool and average_pool on the sliding-window engine (window.py), and
the global pools as one vector reduction per (sample, channel) plane.

Windows follow the op definitions (irc.ir.ops.pool): padding never wins a maximum, averages
divide by the taps inside the input (or inside input and explicit padding), and a window
that holds no input element at all gives the lowest finite value (max) or 0 (average). Which
windows are partial or empty is known at compile time, so those facts are per-axis tables
in the module: a window's count is the product of its axes' counts.
"""

from __future__ import annotations

import math

import ml_dtypes
import numpy as np
from llvmlite import ir

from irc.ir.graph import Node
from irc.ir.types import DType
from irc.targets.cpu.kernel import KernelBuilder
from irc.targets.cpu.kernels.lanes import Lanes, add, constant_array, maximum
from irc.targets.cpu.kernels.registry import cpu_kernel
from irc.targets.cpu.kernels.window import Geometry, TileSite, emit_windows, plan_tile, row_coords

#: Integer pools work on 16 lanes: the lane index arithmetic stays one register wide.
INT_LANES = 16


def _geometry(node: Node, x, y) -> Geometry:
    a = node.attrs
    rank = x.type.rank - 2
    return Geometry(tuple(x.shape[2:]), tuple(y.shape[2:]), tuple(a["kernel_shape"]), tuple(a["strides"]),
                    tuple(a["dilations"]), tuple(a["pads"][:rank]))


def taps_per_axis(node: Node, x, y, include_pad: bool) -> list[np.ndarray]:
    """For each spatial axis, how many taps of each output's window land inside the input
    (or, with ``include_pad``, inside the input and its explicit padding)."""
    a = node.attrs
    rank = x.type.rank - 2
    out = []
    for i in range(rank):
        size, pb, pe = x.shape[2 + i], a["pads"][i], a["pads"][rank + i]
        lo, hi = (-pb, size + pe) if include_pad else (0, size)
        pos = (np.arange(y.shape[2 + i])[:, None] * a["strides"][i] - pb
               + np.arange(a["kernel_shape"][i])[None, :] * a["dilations"][i])
        out.append(((pos >= lo) & (pos < hi)).sum(axis=1))
    return out


class _AxisTables:
    """Per-axis tables in the module, read per row (outer axes) and per vector (last axis);
    the last axis's table is padded so that a whole tile of vectors can be loaded."""

    def __init__(self, k: KernelBuilder, lv: Lanes, counts: list[np.ndarray], tile_lanes: int, dt: DType):
        self.k, self.lv, self.dt = k, lv, dt
        last = counts[-1]
        padded = np.zeros(math.ceil(len(last) / tile_lanes) * tile_lanes, last.dtype)
        padded[:len(last)] = last
        self.outer = [constant_array(k, c, dt) for c in counts[:-1]]
        self.outer_sizes = [len(c) for c in counts[:-1]]
        self.last = constant_array(k, padded, dt)

    def row(self, row: ir.Value) -> ir.Value:
        """Product over the outer axes of this row's entries (a scalar)."""
        k = self.k
        s = Lanes(k, self.dt)
        acc = s.s.c(1)
        for table, coord in zip(self.outer, row_coords(k, row, self.outer_sizes)):
            acc = s.s.mul(acc, s.load(table, coord, 0))
        return acc

    def lanes(self, o0: ir.Value, lanes: int) -> ir.Value:
        return Lanes(self.k, self.dt, lanes).load(self.last, o0, lanes)


def _lowest(dt: DType):
    """The value of a max-pool window with no input element: the lowest finite value."""
    if dt.is_float:
        return float(ml_dtypes.finfo(dt.numpy).min)
    return int(np.iinfo(dt.numpy).min)


@cpu_kernel("max_pool")
def _max_pool(k: KernelBuilder, node: Node) -> None:
    x, y = k.ins[0], k.outs[0]
    if y.size == 0:
        return
    lv = Lanes(k, x.dtype, INT_LANES if x.dtype.is_int else None)
    geom, tile = _plan(node, lv)
    fill = -math.inf if x.dtype.is_float else _lowest(x.dtype)
    counts = taps_per_axis(node, x, y, False)
    empty = x.dtype.is_float and any((c == 0).any() for c in counts)
    tables = _AxisTables(k, lv, [(c > 0).astype(np.int32) for c in counts], tile.vectors * lv.vl, DType.i32) \
        if empty else None

    def value(site: TileSite, acc: ir.Value) -> ir.Value:
        if tables is None:
            return acc
        b = k.b
        has = b.mul(lv.splat(tables.row(site.row)), tables.lanes(site.o0, lv.vl))
        return b.select(b.icmp_signed("==", has, ir.Constant(has.type, None)), lv.v.c(_lowest(x.dtype)), acc)

    _emit_pool(k, lv, geom, tile, "max", fill, value)


@cpu_kernel("average_pool")
def _average_pool(k: KernelBuilder, node: Node) -> None:
    x, y = k.ins[0], k.outs[0]
    if y.size == 0:
        return
    lv = Lanes(k, x.dtype)
    geom, tile = _plan(node, lv)
    counts = taps_per_axis(node, x, y, bool(node.attrs["count_include_pad"]))
    tables = _AxisTables(k, lv, [c.astype(np.float64) for c in counts], tile.vectors * lv.vl, lv.acc)

    def value(site: TileSite, acc: ir.Value) -> ir.Value:
        s = lv.v
        count = s.mul(lv.splat(tables.row(site.row)), tables.lanes(site.o0, lv.vl))
        # Windows with no element to average give 0 (dilation can step over a short input).
        mean = k.b.fdiv(acc, s.max(count, s.c(1.0)))
        return s.select(s.gt(count, s.c(0.0)), mean, s.c(0.0))

    _emit_pool(k, lv, geom, tile, "add", 0, value)


def _plan(node: Node, lv: Lanes):
    """The window geometry of a pool node and its tile for ``lv``'s vector length."""
    geom = _geometry(node, lv.k.ins[0], lv.k.outs[0])
    return geom, plan_tile(geom, lv.vl, 1)


def _emit_pool(k: KernelBuilder, lv: Lanes, geom, tile, combine: str, fill, value) -> None:
    """The window loops of a pool over every (sample, channel) plane, ``combine`` over each
    window from ``fill``; ``value(site, acc)`` is what each output site stores."""
    x, y = k.ins[0], k.outs[0]
    plane_in, plane_out = math.prod(x.shape[2:]), math.prod(y.shape[2:])

    def finish(plane: ir.Value, site: TileSite, acc: ir.Value) -> None:
        b = k.b
        off = b.add(b.mul(plane, k.i64(plane_out)), b.add(b.mul(site.row, k.i64(y.shape[-1])), site.o0))
        lv.store_masked(k.ptr(y), off, value(site, acc), site.mask)

    emit_windows(k, lv, geom, tile, planes=x.shape[0] * x.shape[1], channel_loop=1,
                 input_plane=lambda plane, ci: lv.at(k.ptr(x), k.b.mul(plane, k.i64(plane_in))),
                 weight=None, combine=combine, fill=fill, init=lambda plane, j: lv.v.c(fill), finish=finish)


@cpu_kernel("global_average_pool", "global_max_pool")
def _global_pool(k: KernelBuilder, node: Node) -> None:
    """One vector reduction per (sample, channel) plane, planes in parallel."""
    x, y = k.ins[0], k.outs[0]
    if y.size == 0:
        return
    n = math.prod(x.shape[2:])
    is_max = node.op == "global_max_pool"
    lv = Lanes(k, x.dtype)
    with k.parallel_loop(x.shape[0] * x.shape[1], work_per_iter=n) as u:
        xp = lv.at(k.ptr(x), k.b.mul(u, k.i64(n)))
        load = lambda i, ln: lv.load(xp, i, ln)  # noqa: E731
        if is_max:
            v = lv.reduce(n, load, maximum, -math.inf if x.dtype.is_float else _lowest(x.dtype))
        else:
            v = k.b.fdiv(lv.reduce(n, load, add, 0.0), lv.s.c(n))
        lv.store(k.ptr(y), u, v, 0)
