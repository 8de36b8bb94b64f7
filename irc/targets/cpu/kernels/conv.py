"""Direct convolution kernels: ``conv``, ``conv_fused`` (with its bias, residual and
activation epilogue) and ``conv_transpose``, for any groups (depthwise included), strides,
dilations, pads and spatial rank, in every float type.

These run what the im2col_gemm pass leaves: depthwise and thin convolutions, where im2col
would copy the input K times for little GEMM work, and whatever is not f32 or 2-D. They read
the input in place through the sliding-window engine (window.py): each tile of outputs for a
few output channels sits in registers while every input channel and tap is accumulated.

conv_transpose is computed as the convolution it is the adjoint of, read backwards: output o
gathers input i through tap j wherever o = i*stride + j*dilation - pad, which is a stride-1
convolution with the kernel flipped over the input upsampled by the stride.
"""

from __future__ import annotations

import math

from llvmlite import ir

from irc.ir.graph import Node
from irc.targets.cpu.kernel import KernelBuilder
from irc.targets.cpu.kernels.lanes import Lanes
from irc.targets.cpu.kernels.registry import cpu_kernel
from irc.targets.cpu.kernels.window import Geometry, TileSite, emit_windows, plan_tile
from irc.targets.llvm.elementwise import ACTIVATION_EMITTERS


class _Channels:
    """How an output plane index splits into (sample, group, block of output channels)."""

    def __init__(self, k: KernelBuilder, group: int, per_group: int, block: int):
        self.k, self.group, self.per_group, self.block = k, group, per_group, block
        self.blocks = per_group // block

    @property
    def planes_per_image(self) -> int:
        return self.group * self.blocks

    def split(self, plane: ir.Value) -> tuple[ir.Value, ir.Value, ir.Value]:
        """(image, group, first output channel of the block)."""
        b, k = self.k.b, self.k
        img = b.sdiv(plane, k.i64(self.planes_per_image))
        within = b.srem(plane, k.i64(self.planes_per_image))
        g = b.sdiv(within, k.i64(self.blocks))
        m0 = b.add(b.mul(g, k.i64(self.per_group)), b.mul(b.srem(within, k.i64(self.blocks)), k.i64(self.block)))
        return img, g, m0


def _epilogue(k: KernelBuilder, lv: Lanes, node: Node, ch: _Channels, plane_size: int, width: int, rows: int):
    """finish(plane, site, acc) writing y = epilogue(acc) for one tile accumulator.

    conv and conv_transpose add the bias before rounding to the output type (their
    references do); conv_fused rounds the convolution first and applies bias, residual and
    activation in the output type, as fused.apply_epilogue does."""
    y = k.outs[0]
    fused = node.op == "conv_fused"
    bias = k.ins[2] if len(k.ins) > 2 else None
    residual = k.ins[3] if len(k.ins) > 3 else None
    act = node.attrs.get("act", "none")
    m_total = y.shape[1]

    def finish(plane: ir.Value, site: TileSite, acc: ir.Value) -> None:
        b = k.b
        img, _, m0 = ch.split(plane)
        m = b.add(m0, k.i64(site.channel))
        off = b.add(b.mul(b.add(b.mul(img, k.i64(m_total)), m), k.i64(plane_size)),
                    b.add(b.mul(site.row, k.i64(width)), site.o0))
        v = lv.round_trip(acc, lv.vl) if fused else acc
        if bias is not None:
            v = lv.v.add(v, lv.splat(lv.load(k.ptr(bias), m, 0)))
            v = lv.round_trip(v, lv.vl) if fused else v
        if residual is not None:
            v = lv.round_trip(lv.v.add(v, lv.load_masked(k.ptr(residual), off, site.mask)), lv.vl)
        if act != "none":
            a = node.attrs
            v = ACTIVATION_EMITTERS[act](lv.v, v, a["act_alpha"], a["act_beta"])
        lv.store_masked(k.ptr(y), off, v, site.mask)

    return finish


def _emit(k: KernelBuilder, node: Node, lv: Lanes, geom: Geometry, tile, ch: _Channels, cin_g: int, weight) -> None:
    """The window loops of a (transposed) convolution: FMAs of the input planes of each group's
    channels with ``weight(plane, j, ci, row_tap, kx)``, then the epilogue."""
    x, y = k.ins[0], k.outs[0]
    c, in_plane = x.shape[1], math.prod(x.shape[2:])

    def input_plane(plane, ci):
        b = k.b
        img, g, _ = ch.split(plane)
        chan = b.add(b.add(b.mul(img, k.i64(c)), b.mul(g, k.i64(cin_g))), ci)
        return b.gep(k.ptr(x), [b.mul(chan, k.i64(in_plane))], inbounds=True, source_etype=lv.storage)

    emit_windows(k, lv, geom, tile, planes=x.shape[0] * ch.planes_per_image, channel_loop=cin_g,
                 input_plane=input_plane, weight=weight, combine="fma", fill=0,
                 init=lambda plane, j: lv.v.c(0.0),
                 finish=_epilogue(k, lv, node, ch, math.prod(y.shape[2:]), y.shape[-1], geom.rows), cost=2)


@cpu_kernel("conv", "conv_fused")
def _conv(k: KernelBuilder, node: Node) -> None:
    x, w, y = k.ins[0], k.ins[1], k.outs[0]
    if y.size == 0:
        return
    a = node.attrs
    rank = x.type.rank - 2
    size = x.shape[2:]
    m, cin_g, kernel = w.shape[0], w.shape[1], w.shape[2:]
    group = a["group"]
    geom = Geometry(tuple(size), tuple(y.shape[2:]), tuple(kernel), tuple(a["strides"]), tuple(a["dilations"]),
                    tuple(a["pads"][:rank]))
    lv = Lanes(k, x.dtype)
    tile = plan_tile(geom, lv.vl, m // group)
    ch = _Channels(k, group, m // group, tile.channels)
    taps, kw = math.prod(kernel), kernel[-1]

    def weight(plane, j, ci, row_tap, kx):
        b = k.b
        _, _, m0 = ch.split(plane)
        mj = b.add(m0, k.i64(j))
        off = b.add(b.mul(b.add(b.mul(mj, k.i64(cin_g)), ci), k.i64(taps)), b.add(b.mul(row_tap, k.i64(kw)), kx))
        return lv.load(k.ptr(w), off, 0)

    _emit(k, node, lv, geom, tile, ch, cin_g, weight)


@cpu_kernel("conv_transpose")
def _conv_transpose(k: KernelBuilder, node: Node) -> None:
    x, w, y = k.ins[0], k.ins[1], k.outs[0]
    if y.size == 0:
        return
    a = node.attrs
    rank = x.type.rank - 2
    c, size = x.shape[1], x.shape[2:]
    per_group, kernel = w.shape[1], w.shape[2:]
    group = a["group"]
    cin_g = c // group
    dil = tuple(a["dilations"])
    # Flipped taps: j' = K-1-j reads upsampled position o + j'*d - ((K-1)*d - pad).
    pads = tuple((kk - 1) * d - p for kk, d, p in zip(kernel, dil, a["pads"][:rank]))
    geom = Geometry(tuple(size), tuple(y.shape[2:]), tuple(kernel), (1,) * rank, dil, pads,
                    upsample=tuple(a["strides"]))
    lv = Lanes(k, x.dtype)
    tile = plan_tile(geom, lv.vl, per_group)
    ch = _Channels(k, group, per_group, tile.channels)
    taps, kw = math.prod(kernel), kernel[-1]
    row_taps = taps // kw

    def weight(plane, j, ci, row_tap, kx):
        b = k.b
        _, g, m0 = ch.split(plane)
        mo = b.sub(b.add(m0, k.i64(j)), b.mul(g, k.i64(per_group)))
        cin = b.add(b.mul(g, k.i64(cin_g)), ci)
        # Flipping every axis reverses the C-order flat index of the taps.
        tap = b.add(b.mul(b.sub(k.i64(row_taps - 1), row_tap), k.i64(kw)), b.sub(k.i64(kw - 1), kx))
        off = b.add(b.mul(b.add(b.mul(cin, k.i64(per_group)), mo), k.i64(taps)), tap)
        return lv.load(k.ptr(w), off, 0)

    _emit(k, node, lv, geom, tile, ch, cin_g, weight)
