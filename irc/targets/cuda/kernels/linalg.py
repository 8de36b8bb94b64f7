"""Matrix products on the tiled GEMM: ``gemm_fused`` (with its bias/residual/activation
epilogue), ONNX ``gemm`` (alpha, beta, transposes, broadcast C) and ``matmul`` (broadcast batch
dimensions; 1-D operands promoted), f32/f16/bf16 in, f32 accumulators. On sm_80+ f16/bf16
products take the tensor-core kernel (mma.py)."""

from __future__ import annotations

import math

from irc.ir.graph import Node
from irc.ir.ops.activation import activation_node
from irc.ir.types import DType
from irc.targets.cuda.kernel import GpuKernel, Launch
from irc.targets.cuda.kernels.gemm import Operand, emit_gemm, matrix, to_f32
from irc.targets.cuda.kernels.registry import cuda_kernel
from irc.targets.llvm import lltypes as T
from irc.targets.llvm.builder import c_strides
from irc.targets.llvm.elementwise import ACTIVATION_EMITTERS
from irc.targets.llvm.scalar import Scalar

FLOATS = (DType.f32, DType.f16, DType.bf16)


def float_only(node: Node, arch) -> str | None:
    dt = node.inputs[0].dtype
    return None if dt in FLOATS else f"{dt} inputs (the GPU GEMM takes f32, f16, bf16)"


def from_f32(k: GpuKernel, v, dt: DType):
    """An f32 accumulator value as the compute type of ``dt`` (bf16 computes in f32)."""
    return k.b.fptrunc(v, T.F16) if dt is DType.f16 else v


def activation(k: GpuKernel, v, act: str, alpha: float, beta: float):
    """The epilogue activation ``act`` on an f32 value (the definitions both targets share)."""
    if act == "none":
        return v
    return ACTIVATION_EMITTERS[act](Scalar(k, DType.f32), v, alpha, beta)


def epilogue_store(k: GpuKernel, out, off, acc, *, bias=None, bias_index=None, residual=None, act="none",
                   alpha=0.0, beta=0.0) -> None:
    """out[off] = act(acc + bias[bias_index] + residual[off]), computed in f32."""
    dt = out.dtype
    if bias is not None:
        acc = k.b.fadd(acc, to_f32(k, k.load(bias, bias_index), bias.dtype))
    if residual is not None:
        acc = k.b.fadd(acc, to_f32(k, k.load(residual, off), residual.dtype))
    acc = activation(k, acc, act, alpha, beta)
    k.store(out, off, from_f32(k, acc, dt))


def gemm_any(k: GpuKernel, m: int, n: int, kd: int, batch: int, a: Operand, b: Operand, store, dt: DType) -> Launch:
    """The tensor-core GEMM for f16/bf16 operands on sm_80+ (when both readers give raw bits),
    the SIMT GEMM otherwise."""
    if dt in (DType.f16, DType.bf16) and k.arch.has_mma_bf16 and a.raw is not None and b.raw is not None:
        from irc.targets.cuda.kernels.mma import emit_mma_gemm

        return emit_mma_gemm(k, m, n, kd, batch, a, b, store, dt)
    return emit_gemm(k, m, n, kd, batch, a, b, store)


@cuda_kernel("gemm_fused", kind="gemm", check=float_only)
def _gemm_fused(k: GpuKernel, node: Node) -> Launch:
    out = k.outs[0]
    a, b, *rest = k.ins
    bias = rest[0] if rest else None
    res = rest[1] if len(rest) > 1 else None
    m, kd = a.shape
    n = b.shape[1]
    at = node.attrs

    def store(k, bz, mi, nj, acc):
        epilogue_store(k, out, k.add(k.mul(mi, n), nj), acc, bias=bias, bias_index=nj, residual=res,
                       act=at["act"], alpha=at["act_alpha"], beta=at["act_beta"])

    return gemm_any(k, m, n, kd, 1, matrix(a, m, kd), matrix(b, kd, n, transposed=True), store, a.dtype)


@cuda_kernel("gemm", kind="gemm", check=float_only)
def _onnx_gemm(k: GpuKernel, node: Node) -> Launch:
    """ONNX Gemm: act(alpha * A' B' + beta * C) with C broadcast to [M, N]."""
    out = k.outs[0]
    a, b, *rest = k.ins
    c = rest[0] if rest else None
    at = node.attrs
    m, n = out.shape
    kd = a.shape[0] if at["trans_a"] else a.shape[1]
    # A' [M, K]: stored [M, K], or [K, M] when transposed
    a_op = matrix(a, kd, m, transposed=True) if at["trans_a"] else matrix(a, m, kd)
    b_op = matrix(b, n, kd) if at["trans_b"] else matrix(b, kd, n, transposed=True)
    c_strides_mn = None
    if c is not None:
        pad = 2 - len(c.shape)
        cs = c_strides(c.shape)
        shape = (1,) * pad + tuple(c.shape)
        st = (0,) * pad + tuple(cs)
        c_strides_mn = tuple(0 if shape[d] == 1 else st[d] for d in range(2))
    act = activation_node(at["act"], at["act_alpha"], at["act_beta"])

    def store(k, bz, mi, nj, acc):
        if at["alpha"] != 1.0:
            acc = k.b.fmul(acc, k.f32(at["alpha"]))
        if c is not None and at["beta"] != 0.0:
            cv = to_f32(k, k.load(c, k.offset([mi, nj], c_strides_mn)), c.dtype)
            if at["beta"] != 1.0:
                cv = k.b.fmul(cv, k.f32(at["beta"]))
            acc = k.b.fadd(acc, cv)
        if act is not None:
            from irc.targets.llvm.elementwise import SCALAR

            acc = SCALAR[act[0]](k, act[1], [DType.f32], DType.f32, acc)
        k.store(out, k.add(k.mul(mi, n), nj), from_f32(k, acc, out.dtype))

    return gemm_any(k, m, n, kd, 1, a_op, b_op, store, a.dtype)


@cuda_kernel("matmul", kind="gemm", check=float_only)
def _matmul(k: GpuKernel, node: Node) -> Launch:
    """numpy matmul: batch dimensions broadcast (stride 0 on a broadcast operand)."""
    out = k.outs[0]
    a, b = k.ins
    ash = (1, *a.shape) if len(a.shape) == 1 else a.shape
    bsh = (*b.shape, 1) if len(b.shape) == 1 else b.shape
    m, kd = ash[-2], ash[-1]
    n = bsh[-1]
    batch_shape = _batch_shape(ash, bsh)
    batch = math.prod(batch_shape)

    def batch_strides(sh):
        lead = sh[:-2]
        full = (1,) * (len(batch_shape) - len(lead)) + tuple(lead)
        st = c_strides(full)
        mat = sh[-2] * sh[-1]
        return [0 if full[d] == 1 else st[d] * mat for d in range(len(batch_shape))]

    a_bs, b_bs = batch_strides(ash), batch_strides(bsh)

    def reader(buf, rows, cols, bs, transposed):
        def off(k, bz, i, kk):
            r, c = (kk, i) if transposed else (i, kk)
            o = k.add(k.mul(r, cols), c)
            if batch > 1:
                o = k.add(o, k.offset(k.unravel(bz, batch_shape), bs))
            return o

        def load(k, bz, i, kk):
            return to_f32(k, k.load(buf, off(k, bz, i, kk)), buf.dtype)

        def raw(k, bz, i, kk):
            return k.b.load(k.addr(buf, off(k, bz, i, kk)), typ=T.I16, align=2)

        return Operand(load, k_contiguous=not transposed, raw=raw if buf.dtype in (DType.f16, DType.bf16) else None)

    def store(k, bz, mi, nj, acc):
        off = k.add(k.mul(mi, n), nj)
        if batch > 1:
            off = k.add(off, k.mul(bz, m * n))
        k.store(out, off, from_f32(k, acc, out.dtype))

    return gemm_any(k, m, n, kd, batch, reader(a, m, kd, a_bs, False), reader(b, kd, n, b_bs, True), store, a.dtype)


def _batch_shape(ash, bsh) -> tuple[int, ...]:
    la, lb = ash[:-2], bsh[:-2]
    r = max(len(la), len(lb))
    la = (1,) * (r - len(la)) + tuple(la)
    lb = (1,) * (r - len(lb)) + tuple(lb)
    return tuple(max(x, y) for x, y in zip(la, lb))
