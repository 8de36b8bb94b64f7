"""Kernels that backward graphs need: ``conv_transpose`` (a convolution's data gradient, and
average pooling's) and ``max_pool_grad``. Both gather rather than scatter, one thread per
output element, so no atomics and a deterministic sum:

- conv_transpose: y[n, co, o] = sum over the group's input channels and the taps k with
  o + pad = i * stride + k * dilation of x[n, ci, i] * w[ci, co, k] (+ bias[co]);
- max_pool_grad: dx[n, c, p] = sum of dy over the windows whose winner is p; each candidate
  window (one per tap that could cover p) recomputes its winner (first maximum in row-major tap
  order; a window wholly in the padding has none), as the op defines.
"""

from __future__ import annotations

import math

from irc.ir.graph import Node
from irc.targets.cuda.kernel import GpuKernel, Launch, grid1d
from irc.targets.cuda.kernels.gemm import to_f32
from irc.targets.cuda.kernels.linalg import float_only, from_f32
from irc.targets.cuda.kernels.reduce import fconst
from irc.targets.cuda.kernels.registry import cuda_kernel
from irc.targets.llvm import lltypes as T


def _taps(kernel) -> list[tuple[int, ...]]:
    out = [()]
    for d in kernel:
        out = [t + (j,) for t in out for j in range(d)]
    return out


@cuda_kernel("conv_transpose", kind="conv", check=float_only)
def _conv_transpose(k: GpuKernel, node: Node) -> Launch:
    x, w = k.ins[0], k.ins[1]
    bias = k.ins[2] if len(k.ins) > 2 else None
    out = k.outs[0]
    at = node.attrs
    nsp = len(x.shape) - 2
    group = at["group"]
    cin, cin_g = x.shape[1], x.shape[1] // group
    mg = w.shape[1]
    kernel = w.shape[2:]
    kprod = math.prod(kernel)
    in_sp = x.shape[2:]
    b = k.b
    with b.goto_entry_block():
        slot = b.alloca(T.F32)
    with k.grid_stride(out.size) as flat:
        idx = k.unravel(flat, out.shape)
        img, co, oc = idx[0], idx[1], idx[2:]
        g, cg = k.udiv(co, mg), k.urem(co, mg)
        b.store(k.f32(0.0), slot)
        with k.loop(cin_g, name="ci") as c:
            ci = k.add(k.mul(g, cin_g), c)
            for tap in _taps(kernel):
                ok = None
                pos = []
                for d in range(nsp):
                    num = b.sub(k.add(oc[d], at["pads"][d]), k.i(tap[d] * at["dilations"][d]))
                    s = at["strides"][d]
                    q = k.udiv(num, s) if s > 1 else num
                    c1 = k.ge(num, 0)
                    if s > 1:
                        c1 = b.and_(c1, b.icmp_signed("==", k.urem(num, s), k.i(0)))
                    c1 = b.and_(c1, k.lt(q, in_sp[d]))
                    ok = c1 if ok is None else b.and_(ok, c1)
                    pos.append(q)
                off = k.add(k.mul(img, cin), ci)
                for d in range(nsp):
                    off = k.add(k.mul(off, in_sp[d]), pos[d])
                off = b.select(ok, off, k.i(0))
                r = sum(t * math.prod(kernel[d + 1:]) for d, t in enumerate(tap))
                woff = k.add(k.mul(k.add(k.mul(ci, mg), cg), kprod), r)
                xv = b.select(ok, to_f32(k, k.load(x, off), x.dtype), k.f32(0.0))
                wv = to_f32(k, k.load(w, woff), w.dtype)
                fma = k.mod.declare_raw("llvm.fma.f32", T.F32, [T.F32] * 3)
                b.store(b.call(fma, [xv, wv, b.load(slot, typ=T.F32)]), slot)
        acc = b.load(slot, typ=T.F32)
        if bias is not None:
            acc = b.fadd(acc, to_f32(k, k.load(bias, co), bias.dtype))
        k.store(out, flat, from_f32(k, acc, out.dtype))
    return grid1d(out.size, 128)


@cuda_kernel("max_pool_grad", kind="pool", check=float_only)
def _max_pool_grad(k: GpuKernel, node: Node) -> Launch:
    x, dy = k.ins
    dx = k.outs[0]
    at = node.attrs
    nsp = len(x.shape) - 2
    kernel, strides, dil, pads = at["kernel_shape"], at["strides"], at["dilations"], at["pads"]
    in_sp, out_sp = x.shape[2:], dy.shape[2:]
    taps = _taps(kernel)
    b = k.b
    f32 = T.F32
    with b.goto_entry_block():
        acc_slot = b.alloca(f32)
        best_slot = b.alloca(f32)
        win_slot = b.alloca(k.ity)
    with k.grid_stride(dx.size) as flat:
        idx = k.unravel(flat, x.shape)
        nc = k.add(k.mul(idx[0], x.shape[1]), idx[1])
        pc = idx[2:]
        b.store(k.f32(0.0), acc_slot)
        for tap in taps:  # the window that covers p with this tap, if any
            ok = None
            oc = []
            for d in range(nsp):
                num = b.sub(k.add(pc[d], pads[d]), k.i(tap[d] * dil[d]))
                q = k.udiv(num, strides[d]) if strides[d] > 1 else num
                c1 = b.and_(k.ge(num, 0), k.lt(q, out_sp[d]))
                if strides[d] > 1:
                    c1 = b.and_(c1, b.icmp_signed("==", k.urem(num, strides[d]), k.i(0)))
                ok = c1 if ok is None else b.and_(ok, c1)
                oc.append(b.select(c1, q, k.i(0)))
            with k.if_(ok):
                # the window's winner: first maximum over its taps, in row-major tap order
                b.store(fconst(f32, -math.inf), best_slot)
                b.store(k.i(-1), win_slot)
                for t2 in taps:
                    inside = None
                    off = nc
                    for d in range(nsp):
                        pos = b.sub(k.add(k.mul(oc[d], strides[d]), k.i(t2[d] * dil[d])), k.i(pads[d]))
                        c2 = b.and_(k.ge(pos, 0), k.lt(pos, in_sp[d]))
                        inside = c2 if inside is None else b.and_(inside, c2)
                        off = k.add(k.mul(off, in_sp[d]), pos)
                    off = b.select(inside, off, k.i(0))
                    v = to_f32(k, k.load(x, off), x.dtype)
                    better = b.and_(inside, b.fcmp_ordered(">", v, b.load(best_slot, typ=f32)))
                    b.store(b.select(better, v, b.load(best_slot, typ=f32)), best_slot)
                    b.store(b.select(better, off, b.load(win_slot, typ=k.ity)), win_slot)
                won = b.icmp_signed("==", b.load(win_slot, typ=k.ity), flat)
                dyo = nc
                for d in range(nsp):
                    dyo = k.add(k.mul(dyo, out_sp[d]), oc[d])
                g = to_f32(k, k.load(dy, dyo), dy.dtype)
                cur = b.load(acc_slot, typ=f32)
                b.store(b.select(won, b.fadd(cur, g), cur), acc_slot)
        k.store(dx, flat, from_f32(k, b.load(acc_slot, typ=f32), dx.dtype))
    return grid1d(dx.size, 128)
