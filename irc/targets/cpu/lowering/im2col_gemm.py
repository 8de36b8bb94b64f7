"""Lowering of convolutions and matrix products onto the CPU's packed GEMM engine, for
inference (constant weights, packed here) and training (run-time weights, packed by a
pack_conv_weights node each step; weight gradients as conv_dot; data gradients as conv_gemm or
conv_transpose_gemm). Which kernel a convolution gets is decided by the rules below."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from irc.ir.graph import Graph, Node, Value
from irc.ir.ops.registry import get_op
from irc.ir.types import DType
from irc.passes.registry import Pass, register_pass
from irc.passes.rewrite import RewriteContext, rewrite
from irc.targets.cpu.gemm import choose_tile
from irc.targets.cpu.lowering import winograd_rule
from irc.targets.cpu.lowering.ops import pack_panels
from irc.targets.cpu.lowering.winograd import pack_weights as pack_winograd_weights

#: Cost rule for convolutions. im2col + GEMM reaches the GEMM's speed but pays for copying the
#: input K = Cin/group*kh*kw times; it wins when each GEMM tile has enough work: K and the
#: output channels per group at least MIN_K and MIN_COUT. Depthwise (Cin/group = 1) and tiny
#: convolutions go to the direct kernel, which reads the input in place.
MIN_K = 8
MIN_COUT = 8


def uses_gemm(node: Node) -> bool:
    """The written-down rule: does this conv run as im2col + GEMM?"""
    x, w = node.inputs[0].type, node.inputs[1].type
    group = node.attrs["group"]
    k = (x.shape[1] // group) * math.prod(w.shape[2:])
    return (x.dtype is DType.f32 and x.rank == 4 and w.shape[1] > 1 and k >= MIN_K
            and w.shape[0] // group >= MIN_COUT)


def uses_dot(node: Node) -> bool:
    """The written-down rule for conv_dot: a 2-D f32 convolution with no epilogue whose kernel
    window has more taps than it has outputs per image (a weight-gradient convolution: the
    reduction runs along the window, which both operands hold contiguously)."""
    x, w, y = node.inputs[0].type, node.inputs[1].type, node.outputs[0].type
    plain = len(node.inputs) == 2 and node.attrs.get("act", "none") == "none"
    return x.dtype is DType.f32 and x.rank == 4 and plain and math.prod(w.shape[2:]) > math.prod(y.shape[2:])


def _packed_weights(w: Value, ctx: RewriteContext, mr: int, group: int, layout: str) -> Value:
    """A GEMM's packed weights: packed here when constant, by a pack_conv_weights node when they
    are a run-time tensor (a train step's)."""
    attrs = dict(mr=mr, group=group, layout=layout)
    wc = ctx.const(w)
    if wc is not None:
        return ctx.param(get_op("pack_conv_weights").reference(wc, **attrs), "w_packed")
    return ctx.make("pack_conv_weights", [w], **attrs)


def _conv(node: Node, ctx: RewriteContext):
    """conv_fused -> conv_dot (run-time weights, ``uses_dot``) or conv_gemm (``uses_gemm``)."""
    w = node.inputs[1]
    if ctx.const(w) is None and uses_dot(node):
        a = node.attrs
        return (ctx.make("conv_dot", node.inputs[:2], strides=a["strides"], pads=a["pads"],
                         dilations=a["dilations"], group=a["group"]),)
    if not uses_gemm(node):
        return None
    group = node.attrs["group"]
    cout, cin_g, *ks = w.shape
    p = math.prod(node.outputs[0].shape[2:])
    tile = choose_tile(cout // group, p, ctx.options["vector_bits"])
    a = node.attrs
    m = winograd_rule.choose(node, ctx.options["winograd"], ctx.const(w) is not None, ctx.options["vector_bits"])
    if m is not None:
        mr = winograd_rule.weight_rows(cout, ctx.options["vector_bits"])
        up = ctx.param(pack_winograd_weights(ctx.const(w), m, mr), "w_winograd")
        return (ctx.make("conv_winograd", [node.inputs[0], up, *node.inputs[2:]], cout=cout, pads=a["pads"], m=m,
                         act=a["act"], act_alpha=a["act_alpha"], act_beta=a["act_beta"]),)
    return (ctx.make("conv_gemm", [node.inputs[0], _packed_weights(w, ctx, tile.mr, group, "conv"), *node.inputs[2:]],
                     kernel_shape=tuple(ks), cout=cout, strides=a["strides"], pads=a["pads"],
                     dilations=a["dilations"], group=group, act=a["act"], act_alpha=a["act_alpha"],
                     act_beta=a["act_beta"]),)


def transpose_pads(node: Node) -> tuple[int, ...] | None:
    """Pads of the convolution equal to a stride-1 conv_transpose (kernel flipped, channels
    exchanged): (k-1)*d - pad on each side, plus output_padding at the end; None when a pad
    would be negative."""
    a = node.attrs
    ks = node.inputs[1].shape[2:]
    sp = len(ks)
    reach = [(k - 1) * d for k, d in zip(ks, a["dilations"])]
    pads = (*(r - p for r, p in zip(reach, a["pads"][:sp])),
            *(r - p + o for r, p, o in zip(reach, a["pads"][sp:], a["output_padding"])))
    return pads if min(pads) >= 0 else None


def _conv_transpose(node: Node, ctx: RewriteContext):
    """A conv_transpose (the data gradient of a conv) on the GEMM engine. Stride 1: it is a
    convolution, the same conv_gemm with its weights packed flipped and transposed. Strided:
    GEMM + col2im (conv_transpose_gemm). The rule is conv's: the GEMM needs K >= MIN_K and
    MIN_COUT rows per group; depthwise and thin ones stay on the direct kernel."""
    x, w = node.inputs[0].type, node.inputs[1]
    group = node.attrs["group"]
    if x.dtype is not DType.f32 or x.rank != 4 or x.shape[1] // group <= 1:
        return None
    a = node.attrs
    cg, mg, taps = x.shape[1] // group, w.shape[1], math.prod(w.shape[2:])
    if all(s == 1 for s in a["strides"]):
        pads = transpose_pads(node)
        if pads is None or cg * taps < MIN_K or mg < MIN_COUT:
            return None
        tile = choose_tile(mg, math.prod(node.outputs[0].shape[2:]), ctx.options["vector_bits"])
        return (ctx.make("conv_gemm", [node.inputs[0], _packed_weights(w, ctx, tile.mr, group, "flipped"),
                                       *node.inputs[2:]],
                         kernel_shape=tuple(w.shape[2:]), cout=mg * group, strides=(1, 1), pads=pads,
                         dilations=a["dilations"], group=group, act="none", act_alpha=0.0, act_beta=0.0),)
    if cg < MIN_K or mg * taps < MIN_COUT:
        return None
    tile = choose_tile(mg * taps, math.prod(x.shape[2:]), ctx.options["vector_bits"])
    return (ctx.make("conv_transpose_gemm", [node.inputs[0], _packed_weights(w, ctx, tile.mr, group, "taps"),
                                             *node.inputs[2:]],
                     kernel_shape=tuple(w.shape[2:]), cout=mg * group, strides=a["strides"], pads=a["pads"],
                     dilations=a["dilations"], group=group, output_padding=a["output_padding"]),)


def _gemm(node: Node, ctx: RewriteContext):
    a, b = node.inputs[:2]
    bc = ctx.const(b)
    if bc is None or a.dtype is not DType.f32:
        return None
    m, n = node.outputs[0].shape
    tile = choose_tile(m, n, ctx.options["vector_bits"])
    bp = ctx.param(pack_panels(np.ascontiguousarray(bc.T), tile.nr), "b_packed")
    return (ctx.make("gemm_packed", [a, bp, *node.inputs[2:]], n=n,
                     **{k: node.attrs[k] for k in ("act", "act_alpha", "act_beta")}),)


def im2col_gemm(g: Graph, *, vector_bits: int = 512, winograd: str = "auto") -> Graph:
    """The im2col_gemm pass as a function (see Im2colGemm)."""
    return rewrite(g, {"conv_fused": [_conv], "conv_transpose": [_conv_transpose], "gemm_fused": [_gemm]},
                   options={"vector_bits": vector_bits, "winograd": winograd_rule.check_mode(winograd)})


@register_pass
@dataclass(frozen=True)
class Im2colGemm(Pass):
    """Matches f32 conv_fused, conv_transpose and gemm_fused (with a constant right operand).
    Convolutions that pass the cost rule (``uses_gemm``) become conv_gemm: im2col + GEMM per
    image and group, weights packed into MR-row panels here, once, when constant, or by a
    pack_conv_weights node when a run-time tensor. A convolution with run-time weights whose
    window outgrows its output (``uses_dot``: a weight gradient) becomes conv_dot. A
    conv_transpose becomes conv_gemm (stride 1, flipped weights) or conv_transpose_gemm (GEMM +
    col2im). Products become gemm_packed with B packed into NR-column panels. The tile (MR, NR)
    comes from the GEMM's cost rule for this CPU's vector width (``vector_bits``, see
    irc.targets.cpu.gemm.choose_tile). Depthwise and thin convolutions keep the direct kernels.
    3x3 stride-1 convolutions with constant weights become conv_winograd where ``winograd``
    (auto | on | off) says so (lowering/winograd_rule.py)."""

    name: ClassVar[str] = "im2col_gemm"
    vector_bits: int = 512
    winograd: str = "auto"

    def run(self, g: Graph) -> Graph:
        return im2col_gemm(g, vector_bits=self.vector_bits, winograd=self.winograd)
