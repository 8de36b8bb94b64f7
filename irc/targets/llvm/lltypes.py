"""How irc element types look in LLVM: the storage type (what sits in memory) and the compute
type (what arithmetic runs on). bool is stored as a byte and computed as i1; bf16 is stored as
its 16 bits and computed as f32 (neither LLVM's x86 back end nor every GPU has bf16 arithmetic)."""

from __future__ import annotations

from llvmlite import ir

from irc.ir.types import DType

I1 = ir.IntType(1)
I8 = ir.IntType(8)
I16 = ir.IntType(16)
I32 = ir.IntType(32)
I64 = ir.IntType(64)
F16 = ir.HalfType()
F32 = ir.FloatType()
F64 = ir.DoubleType()
PTR = ir.PointerType()
VOID = ir.VoidType()

_STORAGE = {
    DType.f64: F64, DType.f32: F32, DType.f16: F16, DType.bf16: I16,
    DType.i64: I64, DType.i32: I32, DType.i16: I16, DType.i8: I8,
    DType.u64: I64, DType.u32: I32, DType.u16: I16, DType.u8: I8,
    DType.bool: I8,
}


def storage_type(dt: DType) -> ir.Type:
    return _STORAGE[dt]


def compute_type(dt: DType) -> ir.Type:
    if dt is DType.bool:
        return I1
    if dt is DType.bf16:
        return F32
    return _STORAGE[dt]


def suffix(t: ir.Type) -> str:
    """The type suffix of an overloaded LLVM intrinsic (llvm.exp.f32)."""
    if isinstance(t, ir.VectorType):
        return f"v{t.count}{suffix(t.element)}"
    return {F16: "f16", F32: "f32", F64: "f64"}.get(t) or f"i{t.width}"


def align(t: ir.Type) -> int:
    """The natural alignment of a scalar storage type in bytes."""
    if isinstance(t, ir.IntType):
        return max(1, t.width // 8)
    return {F16: 2, F32: 4, F64: 8}.get(t, 1)
