"""Loads that widen and stores that round: a buffer's elements as scalars or vectors of a wider
accumulation type, for kernels that accumulate more precisely than they store (reductions sum
f32 in f64, arg-reductions compare f16 in f32).

Widening is exact. Narrowing rounds once, as numpy's ``astype`` does from the wider type: f64
goes to f16 directly; to bf16 through f32, as ml_dtypes converts.
"""

from __future__ import annotations

from llvmlite import ir

from irc.ir.types import DType
from irc.targets.cpu.kernel import KernelBuilder
from irc.targets.llvm import lltypes as T
from irc.targets.llvm.builder import Buf

_FBITS = {T.F16: 16, T.F32: 32, T.F64: 64}


def vec(t: ir.Type, lanes: int) -> ir.Type:
    """``t``, or a vector of ``lanes`` of it (lanes 0 means a scalar)."""
    return ir.VectorType(t, lanes) if lanes else t


def splat_const(t: ir.Type, v, lanes: int) -> ir.Constant:
    c = ir.Constant(t, v)
    return ir.Constant(ir.VectorType(t, lanes), [c.constant] * lanes) if lanes else c


def int_const(t: ir.IntType, v: int) -> int:
    """``v`` as the two's-complement value LLVM's assembler accepts for an unsigned maximum."""
    return v - (1 << t.width) if v >= 1 << (t.width - 1) else v


def lanes_of(v: ir.Value) -> int:
    return v.type.count if isinstance(v.type, ir.VectorType) else 0


def load(k: KernelBuilder, buf: Buf, off: ir.Value, lanes: int, acc: DType, as_dt: DType | None = None) -> ir.Value:
    """Elements [off, off + lanes) of ``buf`` (one element when ``lanes`` is 0) in ``acc``'s
    compute type; ``as_dt`` reads the bytes as another type of the same size."""
    dt = as_dt or buf.dtype
    st = T.storage_type(dt)
    ptr = k.b.gep(k.ptr(buf), [off], inbounds=True, source_etype=st)
    raw = k.b.load(ptr, typ=vec(st, lanes), align=dt.itemsize)
    return widen(k.b, raw, dt, acc)


def store(k: KernelBuilder, buf: Buf, off: ir.Value, v: ir.Value, acc: DType) -> None:
    """Store ``v`` (``acc`` compute values, scalar or vector) into ``buf`` at ``off``."""
    st = T.storage_type(buf.dtype)
    ptr = k.b.gep(k.ptr(buf), [off], inbounds=True, source_etype=st)
    k.b.store(narrow(k.b, v, acc, buf.dtype), ptr, align=buf.dtype.itemsize)


def widen(b: ir.IRBuilder, raw: ir.Value, dt: DType, acc: DType) -> ir.Value:
    """Storage values of ``dt`` as compute values of ``acc`` (same kind, at least as wide)."""
    n = lanes_of(raw)
    if dt is DType.bool:
        return b.icmp_unsigned("!=", raw, splat_const(T.I8, 0, n))
    v = raw
    if dt is DType.bf16:
        wide = b.shl(b.zext(raw, vec(T.I32, n)), splat_const(T.I32, 16, n))
        v = b.bitcast(wide, vec(T.F32, n))
    src, dst = T.compute_type(dt), T.compute_type(acc)
    if src == dst:
        return v
    if dt.is_float:
        return b.fpext(v, vec(dst, n))
    return (b.sext if dt.is_signed else b.zext)(v, vec(dst, n))


def narrow(b: ir.IRBuilder, v: ir.Value, acc: DType, dt: DType) -> ir.Value:
    """Compute values of ``acc`` as storage values of ``dt``, rounded once."""
    n = lanes_of(v)
    if dt is DType.bool:
        return b.zext(v, vec(T.I8, n))
    src, dst = T.compute_type(acc), T.compute_type(dt)
    if dt is DType.f16:
        return v if src == T.F16 else b.fptrunc(v, vec(T.F16, n))
    if dt.is_float:
        if _FBITS[src] > _FBITS[dst]:
            v = b.fptrunc(v, vec(dst, n))
        return bf16_bits(b, v) if dt is DType.bf16 else v
    return v if src == dst else b.trunc(v, vec(dst, n))


def bf16_bits(b: ir.IRBuilder, v: ir.Value) -> ir.Value:
    """f32 values rounded to nearest-even bf16 bits; NaN stays a quiet NaN."""
    n = lanes_of(v)
    it = vec(T.I32, n)
    bits = b.bitcast(v, it)
    lsb = b.and_(b.lshr(bits, splat_const(T.I32, 16, n)), splat_const(T.I32, 1, n))
    rounded = b.add(bits, b.add(splat_const(T.I32, 0x7FFF, n), lsb))
    quiet = b.or_(bits, splat_const(T.I32, 0x00400000, n))
    bits = b.select(b.fcmp_unordered("uno", v, v), quiet, rounded)
    return b.trunc(b.lshr(bits, splat_const(T.I32, 16, n)), vec(T.I16, n))
