"""Lowering of convolutions and matrix products onto the CPU's packed GEMM engine."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from irc.ir.graph import Graph, Node
from irc.ir.types import DType
from irc.passes.registry import Pass, register_pass
from irc.passes.rewrite import RewriteContext, rewrite
from irc.targets.cpu.gemm import choose_tile
from irc.targets.cpu.lowering.ops import pack_panels

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


def _conv(node: Node, ctx: RewriteContext):
    w = ctx.const(node.inputs[1])
    if w is None or not uses_gemm(node):
        return None
    group = node.attrs["group"]
    cout, cin_g, *ks = w.shape
    cout_g = cout // group
    p = math.prod(node.outputs[0].shape[2:])
    tile = choose_tile(cout_g, p, ctx.options["vector_bits"])
    wp = np.stack([pack_panels(w[g * cout_g:(g + 1) * cout_g].reshape(cout_g, -1), tile.mr) for g in range(group)])
    a = node.attrs
    return (ctx.make("conv_gemm", [node.inputs[0], ctx.param(wp, "w_packed"), *node.inputs[2:]],
                     kernel_shape=tuple(ks), cout=cout, strides=a["strides"], pads=a["pads"],
                     dilations=a["dilations"], group=group, act=a["act"], act_alpha=a["act_alpha"],
                     act_beta=a["act_beta"]),)


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


def im2col_gemm(g: Graph, *, vector_bits: int = 512) -> Graph:
    """The im2col_gemm pass as a function (see Im2colGemm)."""
    return rewrite(g, {"conv_fused": [_conv], "gemm_fused": [_gemm]}, options={"vector_bits": vector_bits})


@register_pass
@dataclass(frozen=True)
class Im2colGemm(Pass):
    """Matches conv_fused with constant weights and gemm_fused with a constant right operand
    (f32). Convolutions that pass the cost rule (``uses_gemm``) become conv_gemm: im2col + GEMM
    per image and group, weights packed here, once, into MR-row panels. Products become
    gemm_packed with B packed into NR-column panels. The tile (MR, NR) comes from the GEMM's
    cost rule for this CPU's vector width (``vector_bits``, see irc.targets.cpu.gemm.choose_tile)."""

    name: ClassVar[str] = "im2col_gemm"
    vector_bits: int = 512

    def run(self, g: Graph) -> Graph:
        return im2col_gemm(g, vector_bits=self.vector_bits)
