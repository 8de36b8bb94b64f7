"""Kernels of the data-movement ops: transpose, concat, split, expand, tile.

Each is one or more strided copies (see strided.py), stated as the source strides seen from
the destination's index space:
- transpose: the input's strides permuted;
- concat / split: one copy per piece, offset along the axis (rows become memcpys);
- expand: zero strides on broadcast axes;
- tile: every axis split into (repeat, size) with a zero stride on the repeat.
"""

from __future__ import annotations

from irc.ir.graph import Node
from irc.targets.cpu.kernel import KernelBuilder
from irc.targets.cpu.kernels.elementwise import broadcast_strides
from irc.targets.cpu.kernels.registry import cpu_kernel
from irc.targets.cpu.kernels.strided import emit_copy


@cpu_kernel("transpose")
def _transpose(k: KernelBuilder, node: Node) -> None:
    out, x = k.outs[0], k.ins[0]
    perm = node.attrs["perm"]
    emit_copy(k, out.shape, out, 0, out.strides, x, 0, [x.strides[p] for p in perm])


@cpu_kernel("concat")
def _concat(k: KernelBuilder, node: Node) -> None:
    out = k.outs[0]
    axis = node.attrs["axis"]
    at = 0
    for x in k.ins:
        emit_copy(k, x.shape, out, at * out.strides[axis], out.strides, x, 0, x.strides)
        at += x.shape[axis]


@cpu_kernel("split")
def _split(k: KernelBuilder, node: Node) -> None:
    x = k.ins[0]
    axis = node.attrs["axis"]
    at = 0
    for out in k.outs:
        emit_copy(k, out.shape, out, 0, out.strides, x, at * x.strides[axis], x.strides)
        at += out.shape[axis]


@cpu_kernel("expand")
def _expand(k: KernelBuilder, node: Node) -> None:
    out, x = k.outs[0], k.ins[0]
    emit_copy(k, out.shape, out, 0, out.strides, x, 0, broadcast_strides(x.shape, out.shape))


@cpu_kernel("tile")
def _tile(k: KernelBuilder, node: Node) -> None:
    out, x = k.outs[0], k.ins[0]
    shape, src, dst = [], [], []
    for r, d, xs, os in zip(node.attrs["repeats"], x.shape, x.strides, out.strides):
        shape += [r, d]
        src += [0, xs]
        dst += [d * os, os]
    emit_copy(k, shape, out, 0, dst, x, 0, src)
