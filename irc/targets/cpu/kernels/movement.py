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
from irc.targets.cpu.kernels.registry import cpu_kernel
from irc.targets.cpu.kernels.strided import emit_copy
from irc.targets.llvm.elementwise import broadcast_strides


@cpu_kernel("transpose")
def _transpose(k: KernelBuilder, node: Node) -> None:
    out, x = k.outs[0], k.ins[0]
    perm = node.attrs["perm"]
    emit_copy(k, out.shape, out, 0, out.strides, x, 0, [x.strides[p] for p in perm])


@cpu_kernel("concat")
def _concat(k: KernelBuilder, node: Node) -> None:
    _slabs(k, k.outs[0], k.ins, node.attrs["axis"], into_whole=True)


@cpu_kernel("split")
def _split(k: KernelBuilder, node: Node) -> None:
    _slabs(k, k.ins[0], k.outs, node.attrs["axis"], into_whole=False)


def _slabs(k: KernelBuilder, whole, parts, axis: int, *, into_whole: bool) -> None:
    """Copies between ``whole`` and its consecutive slabs ``parts`` along ``axis``."""
    at = 0
    for part in parts:
        slab = at * whole.strides[axis]
        if into_whole:
            emit_copy(k, part.shape, whole, slab, whole.strides, part, 0, part.strides)
        else:
            emit_copy(k, part.shape, part, 0, part.strides, whole, slab, whole.strides)
        at += part.shape[axis]


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
