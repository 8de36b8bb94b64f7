"""Kernels of the backward-only ops (irc.ir.ops.grad).

``max_pool_grad``: one (sample, channel) plane per parallel iteration, so no two threads ever
add into the same element. The plane of dx is zeroed, then every output position scans its
window in row-major tap order, keeps the first strictly largest input element (padding never
wins: taps outside the input are skipped) and adds its dy there. A window whose elements are
all -inf (or that lies in the padding) routes nothing, as the reference does.
"""

from __future__ import annotations

import math

from llvmlite import ir

from irc.ir.graph import Node
from irc.targets.cpu.kernel import KernelBuilder
from irc.targets.cpu.kernels.registry import cpu_kernel
from irc.targets.llvm import lltypes as T
from irc.targets.llvm.builder import c_strides


def _slot(k: KernelBuilder, t: ir.Type) -> ir.Value:
    with k.b.goto_entry_block():
        return k.b.alloca(t)


def _float_only(node: Node) -> str | None:
    return None if node.inputs[0].dtype.is_float else "max_pool_grad takes float tensors"


@cpu_kernel("max_pool_grad", check=_float_only)
def _max_pool_grad(k: KernelBuilder, node: Node) -> None:
    dx, x, dy = k.outs[0], k.ins[0], k.ins[1]
    a = node.attrs
    kernel, strides, pads, dil = a["kernel_shape"], a["strides"], a["pads"], a["dilations"]
    sp = len(kernel)
    size, out = x.shape[2:], dy.shape[2:]
    planes = x.shape[0] * x.shape[1]
    in_plane, out_plane = math.prod(size), math.prod(out)
    if planes == 0 or in_plane == 0:
        return
    in_strides, out_strides = c_strides(size), c_strides(out)
    ct = T.compute_type(x.dtype)
    item = x.dtype.itemsize
    with k.parallel_loop(planes, work_per_iter=out_plane * math.prod(kernel) + in_plane, name="plane") as p:
        b = k.b
        in0 = b.mul(p, k.i64(in_plane))
        out0 = b.mul(p, k.i64(out_plane))
        k.memset(k.addr(dx, in0), 0, in_plane * item)
        best = _slot(k, ct)
        where = _slot(k, T.I64)
        with k.nest(out, name="o") as o:
            b = k.b
            b.store(ir.Constant(ct, -math.inf), best)
            b.store(k.i64(-1), where)
            with k.nest(kernel, name="t") as t:
                b = k.b
                inside = ir.Constant(T.I1, 1)
                pos = []
                for i in range(sp):
                    q = b.add(b.sub(b.mul(o[i], k.i64(strides[i])), k.i64(pads[i])), b.mul(t[i], k.i64(dil[i])))
                    inside = b.and_(inside, b.and_(b.icmp_signed(">=", q, k.i64(0)),
                                                   b.icmp_signed("<", q, k.i64(size[i]))))
                    pos.append(q)
                with b.if_then(inside):
                    off = b.add(in0, k.offset(pos, in_strides))
                    v = k.load(x, off)
                    with b.if_then(b.fcmp_ordered(">", v, b.load(best, typ=ct))):
                        b.store(v, best)
                        b.store(off, where)
            b = k.b
            w = b.load(where, typ=T.I64)
            with b.if_then(b.icmp_signed(">=", w, k.i64(0))):
                g = k.load(dy, b.add(out0, k.offset(o, out_strides)))
                k.store(dx, w, b.fadd(k.load(dx, w), g))
