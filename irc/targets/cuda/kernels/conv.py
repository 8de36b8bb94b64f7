"""Convolutions: implicit GEMM on the tiled GEMM kernel, and a direct kernel for depthwise.

Implicit GEMM (any rank, groups, strides, dilations, padding): per group g,

    out[img, g*Mg + i, p] = sum_kk W_g[i, kk] * X_col[kk, img*P + p]

with Mg = Cout/group rows, K = Cin/group * prod(kernel) and P = prod(output spatial). X_col is
never formed: its reader (``Operand``) turns (kk, column) into an input coordinate and loads it,
zero outside the padded input, straight into the GEMM's shared-memory tile. The batch is folded
into the GEMM's columns, so batch-1 and batch-64 take the same kernel with a wider grid; the
group is the grid's z axis.

Depthwise (and channel-multiplier) convolutions, Cin/group = 1, have K = prod(kernel) (9 for
3x3): nothing for a GEMM tile to reuse, so they run direct: one thread per output element
loops over the kernel taps, reading its input window from cache.

Both take the fused epilogue (bias, residual, activation) of ``conv_fused``.
"""

from __future__ import annotations

import math

from llvmlite import ir

from irc.ir.graph import Node
from irc.ir.types import DType
from irc.targets.cuda.kernel import GpuKernel, Launch, grid1d
from irc.targets.cuda.kernels.gemm import Operand, to_f32
from irc.targets.cuda.kernels.linalg import epilogue_store, float_only, gemm_any
from irc.targets.cuda.kernels.registry import cuda_kernel
from irc.targets.llvm import lltypes as T


def _geometry(k: GpuKernel, node: Node):
    x, w = k.ins[0], k.ins[1]
    out = k.outs[0]
    at = node.attrs
    nsp = len(x.shape) - 2
    return dict(
        x=x, w=w, out=out, nsp=nsp, batch=x.shape[0], cin=x.shape[1], cout=w.shape[0],
        group=at["group"], kernel=tuple(w.shape[2:]), in_sp=tuple(x.shape[2:]), out_sp=tuple(out.shape[2:]),
        strides=tuple(at["strides"]), pads=tuple(at["pads"][:nsp]), dil=tuple(at["dilations"]),
    )


class Im2col:
    """The convolution as a grouped GEMM (grid z: groups) over implicit matrices: W [group][mg,
    kd] (rows: output channels of the group) times the im2col matrix [kd, batch * pixels]."""

    def __init__(self, geo):
        self.geo = geo
        self.group = geo["group"]
        self.mg = geo["cout"] // self.group
        self.cin_g = geo["cin"] // self.group
        self.kprod = math.prod(geo["kernel"])
        self.kd = self.cin_g * self.kprod
        self.p = math.prod(geo["out_sp"])
        self.ncols = geo["batch"] * self.p

    def w_offset(self, k: GpuKernel, g, i, kk):
        """Offset of weight row i (of group g), column kk."""
        row = k.add(k.mul(g, self.mg), i) if self.group > 1 else i
        return k.add(k.mul(row, self.kd), kk)

    def x_offset(self, k: GpuKernel, g, j, kk):
        """(offset, inside-the-input flag or None) of im2col element (kk, j) of group g."""
        geo = self.geo
        img, pix = k.udiv(j, self.p), k.urem(j, self.p)
        oc = k.unravel(pix, geo["out_sp"])
        ci, r = k.udiv(kk, self.kprod), k.urem(kk, self.kprod)
        kc = k.unravel(r, geo["kernel"])
        if self.group > 1:
            ci = k.add(k.mul(g, self.cin_g), ci)
        return _input_offset(k, geo, img, ci, oc, kc)

    def out_offset(self, k: GpuKernel, g, i, j):
        """(output channel, output offset) of GEMM element (i, j) of group g."""
        co = k.add(k.mul(g, self.mg), i) if self.group > 1 else i
        img, pix = k.udiv(j, self.p), k.urem(j, self.p)
        return co, k.add(k.mul(k.add(k.mul(img, self.geo["cout"]), co), self.p), pix)


def _input_offset(k: GpuKernel, geo, img, ci, ocoords, kcoords):
    """(offset of x[img, ci, o*s - pad + kc*d], inside-the-input flag) for one tap."""
    b = k.b
    ok = None
    off = k.add(k.mul(img, geo["cin"]), ci)
    for d in range(geo["nsp"]):
        pos = k.add(k.mul(ocoords[d], geo["strides"][d]), k.mul(kcoords[d], geo["dil"][d]))
        pos = b.sub(pos, k.i(geo["pads"][d]))
        if geo["pads"][d] or (geo["out_sp"][d] - 1) * geo["strides"][d] + (geo["kernel"][d] - 1) * geo["dil"][d] \
                >= geo["in_sp"][d]:
            c = b.and_(k.ge(pos, 0), k.lt(pos, geo["in_sp"][d]))
            ok = c if ok is None else b.and_(ok, c)
        off = k.add(k.mul(off, geo["in_sp"][d]), pos)
    if ok is not None:
        off = b.select(ok, off, k.i(0))
    return off, ok


def _epilogue_args(k: GpuKernel, node: Node):
    rest = k.ins[2:]
    bias = rest[0] if rest else None
    res = rest[1] if len(rest) > 1 else None
    at = node.attrs
    return dict(bias=bias, residual=res, act=at.get("act", "none"), alpha=at.get("act_alpha", 0.0),
                beta=at.get("act_beta", 0.0))


def is_depthwise(node: Node) -> bool:
    return node.inputs[1].shape[1] == 1


@cuda_kernel("conv_fused", "conv", kind="conv", check=float_only)
def _conv(k: GpuKernel, node: Node) -> Launch:
    if is_depthwise(node):
        return _direct(k, node)
    geo = _geometry(k, node)
    x, w, out = geo["x"], geo["w"], geo["out"]
    im = Im2col(geo)
    epi = _epilogue_args(k, node)

    def load_w(k, g, i, kk):
        return to_f32(k, k.load(w, im.w_offset(k, g, i, kk)), w.dtype)

    def raw_w(k, g, i, kk):
        return k.b.load(k.addr(w, im.w_offset(k, g, i, kk)), typ=T.I16, align=2)

    def load_x(k, g, j, kk):
        off, ok = im.x_offset(k, g, j, kk)
        v = to_f32(k, k.load(x, off), x.dtype)
        return v if ok is None else k.b.select(ok, v, k.f32(0.0))

    def raw_x(k, g, j, kk):
        off, ok = im.x_offset(k, g, j, kk)
        v = k.b.load(k.addr(x, off), typ=T.I16, align=2)
        return v if ok is None else k.b.select(ok, v, ir.Constant(T.I16, 0))

    def store(k, g, i, j, acc):
        co, off = im.out_offset(k, g, i, j)
        epilogue_store(k, out, off, acc, bias_index=co, **epi)

    sixteen = x.dtype in (DType.f16, DType.bf16)
    return gemm_any(k, im.mg, im.ncols, im.kd, im.group, Operand(load_w, True, raw_w if sixteen else None),
                    Operand(load_x, False, raw_x if sixteen else None), store, x.dtype)


def _direct(k: GpuKernel, node: Node) -> Launch:
    """One thread per output element; Cin/group = 1 (depthwise, or a channel multiplier)."""
    geo = _geometry(k, node)
    x, w, out = geo["x"], geo["w"], geo["out"]
    mult = geo["cout"] // geo["group"]
    epi = _epilogue_args(k, node)
    b = k.b
    with b.goto_entry_block():
        slot = b.alloca(k.f32(0.0).type)
    with k.grid_stride(out.size) as flat:
        idx = k.unravel(flat, out.shape)
        img, co, oc = idx[0], idx[1], idx[2:]
        ci = k.udiv(co, mult)
        b.store(k.f32(0.0), slot)
        # the taps are unrolled: kernels are small (3x3, 5x5, 7x7)
        for r in range(math.prod(geo["kernel"])):
            kc_const = _unravel_const(r, geo["kernel"])
            kc = [k.i(c) for c in kc_const]
            off, ok = _input_offset(k, geo, img, ci, oc, kc)
            xv = to_f32(k, k.load(x, off), x.dtype)
            if ok is not None:
                xv = b.select(ok, xv, k.f32(0.0))
            wv = to_f32(k, k.load(w, k.add(k.mul(co, math.prod(geo["kernel"])), r)), w.dtype)
            fma = k.mod.declare_raw("llvm.fma.f32", xv.type, [xv.type] * 3)
            b.store(b.call(fma, [xv, wv, b.load(slot, typ=xv.type)]), slot)
        epilogue_store(k, out, flat, b.load(slot, typ=k.f32(0.0).type), bias_index=co, **epi)
    return grid1d(out.size, 128)


def _unravel_const(r: int, shape) -> list[int]:
    out = []
    for d in reversed(shape):
        out.append(r % d)
        r //= d
    return out[::-1]
