"""Windowed pooling (max and average, any number of spatial axes): one thread per output element
walks its window. Windows follow the op definitions exactly: padding never wins a max, average
divides by the taps inside the input (or inside input + explicit padding with
``count_include_pad``), and a ceil-mode window's part past the padded input counts for nothing.
Integer max pooling (quantized graphs pool their int8 values) is exact."""

from __future__ import annotations

import math

import numpy as np
from llvmlite import ir

from irc.ir.graph import Node
from irc.targets.cuda.kernel import GpuKernel, Launch, grid1d
from irc.targets.cuda.kernels.reduce import acc_type, fconst, intrinsic, narrow, widen
from irc.targets.cuda.kernels.registry import cuda_kernel

#: windows up to this many taps are unrolled; larger ones loop
UNROLL_TAPS = 64


@cuda_kernel("max_pool", "average_pool", kind="pool")
def _pool(k: GpuKernel, node: Node) -> Launch:
    x, out = k.ins[0], k.outs[0]
    dt = x.dtype
    at = node.attrs
    nsp = len(x.shape) - 2
    kernel, strides, dil = at["kernel_shape"], at["strides"], at["dilations"]
    pads = at["pads"]
    in_sp = x.shape[2:]
    is_max = node.op == "max_pool"
    include_pad = bool(at.get("count_include_pad", 0))
    t = acc_type(dt)
    bld = k.b
    taps = math.prod(kernel)
    with bld.goto_entry_block():
        acc_slot = bld.alloca(t)
        cnt_slot = bld.alloca(ir.IntType(32))
    if is_max:
        init = fconst(t, -math.inf) if dt.is_float else ir.Constant(t, int(np.iinfo(dt.numpy).min))
    else:
        init = fconst(t, 0.0)
    with k.grid_stride(out.size) as flat:
        idx = k.unravel(flat, out.shape)
        nc = k.add(k.mul(idx[0], x.shape[1]), idx[1])
        bld.store(init, acc_slot)
        bld.store(ir.Constant(ir.IntType(32), 0), cnt_slot)

        def tap(kc):
            ok = None
            cnt_ok = None
            off = nc
            for d in range(nsp):
                pos = bld.sub(k.add(k.mul(idx[2 + d], strides[d]), k.mul(kc[d], dil[d])), k.i(pads[d]))
                c = bld.and_(k.ge(pos, 0), k.lt(pos, in_sp[d]))
                ok = c if ok is None else bld.and_(ok, c)
                if include_pad:
                    c2 = bld.and_(k.ge(pos, -pads[d]), k.lt(pos, in_sp[d] + pads[nsp + d]))
                    cnt_ok = c2 if cnt_ok is None else bld.and_(cnt_ok, c2)
                off = k.add(k.mul(off, in_sp[d]), pos)
            off = bld.select(ok, off, k.i(0))
            v = widen(k, k.load(x, off), dt)
            acc = bld.load(acc_slot, typ=t)
            if is_max:
                if dt.is_float:
                    new = intrinsic(k, "maximum", acc, v)
                else:
                    gt = bld.icmp_signed(">", v, acc) if dt.is_signed else bld.icmp_unsigned(">", v, acc)
                    new = bld.select(gt, v, acc)
                bld.store(bld.select(ok, new, acc), acc_slot)
            else:
                bld.store(bld.select(ok, bld.fadd(acc, v), acc), acc_slot)
                counted = cnt_ok if include_pad else ok
                cnt = bld.load(cnt_slot, typ=ir.IntType(32))
                bld.store(bld.add(cnt, bld.zext(counted, ir.IntType(32))), cnt_slot)

        if taps <= UNROLL_TAPS:
            for r in range(taps):
                kc, rest = [], r
                for d in reversed(kernel):
                    kc.append(rest % d)
                    rest //= d
                tap([k.i(c) for c in reversed(kc)])
        else:
            with k.loop(taps, name="tap") as r:
                tap(k.unravel(r, kernel))
        acc = bld.load(acc_slot, typ=t)
        if not is_max:
            cnt = bld.load(cnt_slot, typ=ir.IntType(32))
            acc = bld.fdiv(acc, bld.sitofp(cnt, t))
        k.store(out, flat, narrow(k, acc, dt))
    return grid1d(out.size)
