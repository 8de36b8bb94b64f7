"""Scalar arithmetic in LLVM for one irc element type: the vocabulary element-wise kernels are
written in. Integer ops pick signed or unsigned instructions from the dtype; integer division
by zero (and INT_MIN / -1) yields 0 instead of trapping, so no input can crash the process.
Functions are declared through ``k.state.declare``, which each target resolves its own way."""

from __future__ import annotations

from llvmlite import ir

from irc.ir.types import DType
from irc.targets.llvm import lltypes as T
from irc.targets.llvm.builder import KernelBase


class Scalar:
    """Arithmetic on compute-type values of dtype ``dt`` inside kernel ``k``; with ``lanes`` the
    values are vectors of that many elements (constants become splats)."""

    def __init__(self, k: KernelBase, dt: DType, lanes: int = 0):
        self.k = k
        self.dt = dt
        self.elem = T.compute_type(dt)
        self.lanes = lanes
        self.t = ir.VectorType(self.elem, lanes) if lanes else self.elem
        self.is_float = dt.is_float
        self.signed = dt.is_signed

    @property
    def b(self) -> ir.IRBuilder:
        return self.k.b  # the builder changes when a parallel body is emitted

    def c(self, v) -> ir.Constant:
        one = KernelBase.const(self.dt, v)
        return ir.Constant(self.t, [one.constant] * self.lanes) if self.lanes else one

    # -- intrinsics and libm
    def intrinsic(self, name: str, *args: ir.Value) -> ir.Value:
        fn = self.k.state.declare(f"llvm.{name}.{T.suffix(self.t)}", self.t, [self.t] * len(args))
        return self.b.call(fn, list(args))

    def libm(self, name: str, x: ir.Value) -> ir.Value:
        """A libm function (erff, log1pf...) by the type's convention; f16 goes through f32.
        Vectors use the target's vector definition where it has one, else go lane by lane (libm
        has no vector entry points)."""
        if self.lanes:
            fn = self.k.state.vector_libm(name, self.t)
            if fn is not None:
                return self.b.call(fn, [x])
            lane = Scalar(self.k, self.dt)
            out = ir.Constant(self.t, ir.Undefined)
            for i in range(self.lanes):
                idx = ir.Constant(T.I32, i)
                out = self.b.insert_element(out, lane.libm(name, self.b.extract_element(x, idx)), idx)
            return out
        if self.t is T.F64:
            return self.b.call(self.k.state.declare(name, T.F64, [T.F64]), [x])
        wide = self.b.fpext(x, T.F32) if self.t is T.F16 else x
        y = self.b.call(self.k.state.declare(name + "f", T.F32, [T.F32]), [wide])
        return self.b.fptrunc(y, T.F16) if self.t is T.F16 else y

    # -- arithmetic
    def add(self, a, b):
        return self.b.fadd(a, b) if self.is_float else self.b.add(a, b)

    def sub(self, a, b):
        return self.b.fsub(a, b) if self.is_float else self.b.sub(a, b)

    def mul(self, a, b):
        return self.b.fmul(a, b) if self.is_float else self.b.mul(a, b)

    def div(self, a, b):
        if self.is_float:
            return self.b.fdiv(a, b)
        zero, one = self.c(0), self.c(1)
        bad = self.b.icmp_unsigned("==", b, zero)
        if self.signed:
            bad = self.b.or_(bad, self.b.icmp_signed("==", b, self.c(-1)))
            q = self.b.sdiv(a, self.b.select(bad, one, b))
            # b == -1: the quotient is -a (wrapping, as numpy); b == 0: 0 (numpy warns and gives 0).
            neg = self.b.sub(zero, a)
            return self.b.select(self.b.icmp_signed("==", b, self.c(-1)), neg, self.b.select(bad, zero, q))
        q = self.b.udiv(a, self.b.select(bad, one, b))
        return self.b.select(bad, zero, q)

    def neg(self, a):
        return self.b.fneg(a) if self.is_float else self.b.sub(self.c(0), a)

    def abs(self, a):
        if self.is_float:
            return self.intrinsic("fabs", a)
        if not self.signed:
            return a
        return self.b.select(self.lt(a, self.c(0)), self.neg(a), a)

    def lt(self, a, b):
        return self._cmp("<", a, b)

    def le(self, a, b):
        return self._cmp("<=", a, b)

    def gt(self, a, b):
        return self._cmp(">", a, b)

    def ge(self, a, b):
        return self._cmp(">=", a, b)

    def eq(self, a, b):
        return self._cmp("==", a, b)

    def ne(self, a, b):
        if self.is_float:
            return self.b.fcmp_unordered("!=", a, b)
        return self.b.icmp_unsigned("!=", a, b)

    def _cmp(self, op, a, b):
        if self.is_float:
            return self.b.fcmp_ordered(op, a, b)  # NaN compares false, as numpy
        if self.t is T.I1 or not self.signed:
            return self.b.icmp_unsigned(op, a, b)
        return self.b.icmp_signed(op, a, b)

    def select(self, cond, a, b):
        return self.b.select(cond, a, b)

    def max(self, a, b):
        """NaN-propagating maximum (numpy.maximum)."""
        if self.is_float:
            return self.intrinsic("maximum", a, b)
        return self.b.select(self.gt(a, b), a, b)

    def min(self, a, b):
        if self.is_float:
            return self.intrinsic("minimum", a, b)
        return self.b.select(self.lt(a, b), a, b)

    def is_nan(self, a):
        return self.b.fcmp_unordered("uno", a, a)


def convert(k: KernelBase, v: ir.Value, src: DType, dst: DType) -> ir.Value:
    """Cast a compute-type value between element types, with numpy's semantics
    (float to int truncates toward zero; anything to bool is ``!= 0``)."""
    b = k.b
    st, dt_ = T.compute_type(src), T.compute_type(dst)
    if src == dst:
        return v
    if dst is DType.bool:
        if src.is_float:
            return b.fcmp_unordered("!=", v, ir.Constant(st, 0.0))
        return b.icmp_unsigned("!=", v, ir.Constant(st, 0))
    if src is DType.bool:
        return b.uitofp(v, dt_) if dst.is_float else b.zext(v, dt_)
    if src.is_float and dst.is_float:
        if st == dt_:
            return v
        return b.fpext(v, dt_) if _fbits(st) < _fbits(dt_) else b.fptrunc(v, dt_)
    if src.is_float:
        return b.fptosi(v, dt_) if dst.is_signed else b.fptoui(v, dt_)
    if dst.is_float:
        return b.sitofp(v, dt_) if src.is_signed else b.uitofp(v, dt_)
    if st.width == dt_.width:
        return v
    if st.width > dt_.width:
        return b.trunc(v, dt_)
    return b.sext(v, dt_) if src.is_signed else b.zext(v, dt_)


def _fbits(t: ir.Type) -> int:
    return {T.F16: 16, T.F32: 32, T.F64: 64}[t]
