"""Vector transcendental math for the cpu target: exp, log, tanh, erf, erfc, expm1 and log1p on f32
scalars and vectors of any lane count, written out in LLVM IR.

LLVM lowers ``llvm.exp.v8f32`` to eight calls of libm's ``expf``, and a call of ``erff`` keeps
the loop around it scalar, so every activation built on them (sigmoid, softmax, GELU, SiLU,
softplus, ELU...) ran one element at a time. These definitions are branch-free arithmetic
(selects, integer bit operations, ``llvm.fmuladd``): internal, always inlined, so a kernel's
loop vectorises through them and an explicit vector kernel gets vector code. ``ModuleState``
(kernel.py) hands them out for the names kernels declare (``llvm.exp.v8f32``, ``erff``...).

Methods (coefficients are weighted least-squares fits in float64 on Chebyshev nodes, reweighted
towards minimax by Lawson's iteration, rounded to f32 one at a time with a refit of the rest):

- exp: Cody-Waite reduction x = n ln2 + r (|r| <= ln2/2, ln2 in a 16-bit and a low part so
  n * hi is exact without FMA), e**r = 1 + r + r**2 P4(r); 2**n applied as two power-of-two
  factors built in the exponent field, so results overflow to inf and go subnormal correctly.
- log: x = 2**e m with m in [sqrt(1/2), sqrt(2)) by integer arithmetic on the bits (subnormal x
  scaled by 2**23 first), log(1+f) = f - f**2/2 + f**3 P7(f), e ln2 added in two parts.
- tanh: x + x**3 P5(x**2) for |x| < 0.625 (no cancellation near 0), 1 - 2/(e**2|x| + 1) with
  the sign of x beyond; |x| is clamped at 10, past which tanh rounds to +-1 (so the exponential
  is normal and needs one power-of-two factor; erf's likewise).
- erf: x + x Q6(x**2) for |x| < 1 (relative accuracy near 0); 1 - e**(-x**2) R8(|x| - 2.5)
  beyond, R fitted to exp(x**2) erfc(x) on [1, 4]; |x| clamped at 4, past which erf rounds to +-1.
- erfc: 1 - erf(x) for |x| < 1 (erf < 0.85 there: the subtraction loses under 3 bits); beyond,
  e**(-x**2) u H10(u) with u = 1/|x|, H fitted to e**(x**2) erfc(x) / u on x in [1, 10] for
  relative accuracy (no cancellation: GELU's 0.5 x erfc(-x / sqrt 2) keeps its relative accuracy
  far into the negative tail, where 0.5 x (1 + erf) cancels to 0); 2 minus that for x <= -1.
  Its bound is relative (ERFC_MAX_REL), not in ulps.
- expm1: x + x**2 (1/2 + x P5(x)) for |x| < ln2, e**x - 1 beyond (no harmful cancellation there).
- log1p: Goldberg's log(u) * x / (u - 1) with u = 1 + x (exact where u rounds to 1: x).

The stated maximum errors (``MAX_ULP``) are |result - exact| in units of the f32 spacing at the
exact value, with or without FMA instructions; tests/targets/cpu/test_vecmath.py checks them on
3M points per function (a dense grid of the useful range, one in 2**11 of all bit patterns),
where the largest are exp 0.98, log 0.87, tanh 1.30, erf 1.15, expm1 1.72, log1p 2.22. NaN
gives NaN; +-inf, overflow and underflow give the IEEE results (exp(-inf) = 0, log(0) = -inf,
log(x < 0) = NaN, tanh(+-inf) = erf(+-inf) = +-1). Subnormal inputs and results are handled
(under the target's default FTZ/DAZ mode the hardware flushes them to 0, as it does for every
other op). f16 is computed through f32; f64 keeps libm (these fits are f32-accurate only).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable

from llvmlite import ir

from irc.targets.llvm import lltypes as T
from irc.targets.llvm.float_ops import FloatOps

#: The stated maximum error of each function: |result - exact| in f32 ulps at the exact value.
MAX_ULP: dict[str, float] = {"exp": 2, "log": 2, "tanh": 2, "erf": 2, "expm1": 3, "log1p": 3}
#: erfc's stated maximum relative error where its result is a normal float (x < 9.2): exp(-x**2)
#: inherits x**2's rounding, x**2 ulps of it, which only GELU's far tail (values below 1e-6)
#: ever sees; 1 - erf's subtraction costs up to 3 bits below |x| = 1.
ERFC_MAX_REL = 1e-5

_LOG2E = 1.4426950408889634
_LN2_HI = 0.693145751953125  # 16 significant bits: n * _LN2_HI is exact for |n| < 2**8
_LN2_LO = 1.4286068203094172e-06
#: 1.5 * 2**23: adding it rounds a float to an integer held in the low mantissa bits.
_ROUND_MAGIC = 12582912.0
_ROUND_MAGIC_BITS = 0x4B400000
_SQRT_HALF_BITS = 0x3F3504F3
_ONE_BITS = 0x3F800000

_EXP_P = (0.4999999403953552, 0.1666652113199234, 0.04166826233267784, 0.00836866907775402, 0.0013821023749187589)
_LOG_P = (0.3333333134651184, -0.2500081956386566, 0.2000124305486679, -0.1662341058254242, 0.14201541244983673,
          -0.13159553706645966, 0.12762467563152313, -0.07636900246143341)
_TANH_P = (-0.3333333134651184, 0.13333220779895782, -0.053948186337947845, 0.02170698530972004,
           -0.008190364576876163, 0.0021531139500439167)
_TANH_SMALL, _TANH_CLAMP = 0.625, 10.0
_ERF_Q = (0.12837916612625122, -0.3761262595653534, 0.11283578723669052, -0.026853347197175026,
          0.005187162198126316, -0.0007997853099368513, 7.806903158780187e-05)
_ERFC_R = (0.2108076512813568, -0.07434234768152237, 0.024912266060709953, -0.00813752319663763,
           0.0023018713109195232, -0.0006504662451334298, 0.0005573169910348952, 0.0002322398649994284,
           0.00010819047747645527)
_ERF_SMALL, _ERFC_SHIFT, _ERF_CLAMP = 1.0, 2.5, 4.0
_ERFC_H = (0.5642076730728149, -0.000643998384475708, -0.27248615026474, -0.07871875911951065,
           0.8094462156295776, -1.1320290565490723, 0.6170687079429626, 0.17161089181900024,
           -0.4560982584953308, 0.2574078440666199, -0.05218157172203064)
_EXPM1_P = (0.16666671633720398, 0.04166664555668831, 0.008332662284374237, 0.001388976234011352,
            0.0002009099698625505, 2.483747994119767e-05)


class _Ops(FloatOps):
    """IR arithmetic on f32 values of type ``t`` (a scalar or a vector) in one builder."""

    def __init__(self, state, b: ir.IRBuilder, t: ir.Type):
        self.state = state
        self.b = b
        self.t = t
        self.lanes = t.count if isinstance(t, ir.VectorType) else 0
        self.it = ir.VectorType(T.I32, self.lanes) if self.lanes else T.I32

    def c(self, v: float) -> ir.Constant:
        return ir.Constant(self.t, [float(v)] * self.lanes) if self.lanes else ir.Constant(self.t, float(v))

    def ci(self, v: int) -> ir.Constant:
        return ir.Constant(self.it, [int(v)] * self.lanes) if self.lanes else ir.Constant(self.it, int(v))

    def intr(self, name: str, *args: ir.Value) -> ir.Value:
        fn = self.state.declare_raw(f"llvm.{name}.{T.suffix(self.t)}", self.t, [self.t] * len(args))
        return self.b.call(fn, list(args))

    def call(self, fname: str, x: ir.Value) -> ir.Value:
        """Another function of this module, of the same type."""
        return self.b.call(function_for(self.state, fname, self.t), [x])

    def fma(self, a, b, c):
        """a*b + c, fused where the CPU has FMA (the error bounds hold either way)."""
        return self.intr("fmuladd", a, b, c)

    def clamp_above(self, x, hi: float):
        """min(x, hi) keeping NaN."""
        return self.sel(self.gt(x, self.c(hi)), self.c(hi), x)

    def abs(self, x):
        return self.intr("fabs", x)

    def copysign(self, mag, sign):
        return self.intr("copysign", mag, sign)

    def bits(self, x):
        return self.b.bitcast(x, self.it)

    def float(self, i):
        return self.b.bitcast(i, self.t)

    def pow2(self, n):
        """2**n for integer lanes n in [-126, 127], built in the exponent field."""
        return self.float(self.b.shl(self.b.add(n, self.ci(127)), self.ci(23)))

    def horner(self, x, coeffs) -> ir.Value:
        """coeffs[0] + x*(coeffs[1] + x*(...))."""
        acc = self.c(coeffs[-1])
        for k in reversed(coeffs[:-1]):
            acc = self.fma(acc, x, self.c(k))
        return acc


def _exp_reduced(m: _Ops, x):
    """(e**r, n) with x = n ln2 + r, |r| <= ln2/2, n as an integer (x in [-150 ln2, 128 ln2];
    NaN stays NaN in e**r, its bits making a harmless integer)."""
    t = m.fma(x, m.c(_LOG2E), m.c(_ROUND_MAGIC))
    n = m.sub(t, m.c(_ROUND_MAGIC))
    r = m.fma(n, m.c(-_LN2_HI), x)
    r = m.fma(n, m.c(-_LN2_LO), r)
    y = m.add(m.fma(m.horner(r, _EXP_P), m.mul(r, r), r), m.c(1.0))
    return y, m.b.sub(m.bits(t), m.ci(_ROUND_MAGIC_BITS))


def _exp(m: _Ops, x):
    # Clamped where exp is 0 (below -104) or inf (above 88.75) after rounding.
    xc = m.clamp_above(m.sel(m.lt(x, m.c(-104.0)), m.c(-104.0), x), 88.75)
    y, ni = _exp_reduced(m, xc)
    # n in [-150, 128]: two factors 2**(n//2) and 2**(n - n//2), each a normal float.
    n1 = m.b.ashr(ni, m.ci(1))
    return m.mul(m.mul(y, m.pow2(n1)), m.pow2(m.b.sub(ni, n1)))


def _exp_normal(m: _Ops, x):
    """e**x for x in [-87, 88] (a normal result: one power-of-two factor), or NaN."""
    y, ni = _exp_reduced(m, x)
    return m.mul(y, m.pow2(ni))


def _log(m: _Ops, x):
    b = m.b
    tiny = m.lt(x, m.c(2.0 ** -126))
    xs = m.sel(tiny, m.mul(x, m.c(2.0 ** 23)), x)
    # The bits of x offset so the exponent field rounds at sqrt(1/2): m in [sqrt(1/2), sqrt(2)).
    ix = b.add(m.bits(xs), m.ci(_ONE_BITS - _SQRT_HALF_BITS))
    e = b.sub(b.ashr(ix, m.ci(23)), m.ci(127))
    mant = m.float(b.add(b.and_(ix, m.ci(0x7FFFFF)), m.ci(_SQRT_HALF_BITS)))
    ef = m.sub(b.sitofp(e, m.t), m.sel(tiny, m.c(23.0), m.c(0.0)))
    f = m.sub(mant, m.c(1.0))  # exact
    f2 = m.mul(f, f)
    tail = m.fma(m.mul(f2, f), m.horner(f, _LOG_P), m.mul(m.c(-0.5), f2))
    y = m.fma(ef, m.c(_LN2_HI), m.fma(ef, m.c(_LN2_LO), m.add(tail, f)))
    y = m.sel(m.eq(x, m.c(math.inf)), m.c(math.inf), y)
    y = m.sel(m.eq(x, m.c(0.0)), m.c(-math.inf), y)
    return m.sel(b.fcmp_unordered("<", x, m.c(0.0)), m.c(math.nan), y)  # x < 0 or NaN


def _tanh(m: _Ops, x):
    a = m.abs(x)
    x2 = m.mul(x, x)
    small = m.fma(m.mul(x, x2), m.horner(x2, _TANH_P), x)
    e = _exp_normal(m, m.mul(m.c(2.0), m.clamp_above(a, _TANH_CLAMP)))
    big = m.sub(m.c(1.0), m.div(m.c(2.0), m.add(e, m.c(1.0))))
    return m.copysign(m.sel(m.lt(a, m.c(_TANH_SMALL)), small, big), x)  # tanh(-0) = -0 too


def _erf(m: _Ops, x):
    a = m.abs(x)
    small = m.fma(x, m.horner(m.mul(x, x), _ERF_Q), x)
    ac = m.clamp_above(a, _ERF_CLAMP)
    e = _exp_normal(m, m.b.fneg(m.mul(ac, ac)))
    big = m.sub(m.c(1.0), m.mul(e, m.horner(m.sub(ac, m.c(_ERFC_SHIFT)), _ERFC_R)))
    return m.sel(m.lt(a, m.c(_ERF_SMALL)), small, m.copysign(big, x))


def _erfc(m: _Ops, x):
    a = m.abs(x)
    small = m.sub(m.c(1.0), m.fma(x, m.horner(m.mul(x, x), _ERF_Q), x))
    u = m.div(m.c(1.0), m.clamp_above(a, 10.0))  # past 10 e**(-x**2) is 0 in f32
    tail = m.mul(m.call("exp", m.b.fneg(m.mul(a, a))), m.mul(u, m.horner(u, _ERFC_H)))
    big = m.sel(m.lt(x, m.c(0.0)), m.sub(m.c(2.0), tail), tail)
    return m.sel(m.lt(a, m.c(_ERF_SMALL)), small, big)


def _expm1(m: _Ops, x):
    small = m.fma(m.mul(x, x), m.fma(x, m.horner(x, _EXPM1_P), m.c(0.5)), x)
    big = m.sub(m.call("exp", x), m.c(1.0))
    # expm1 has the sign of x (-0 included, which the sum above makes +0)
    return m.copysign(m.sel(m.lt(m.abs(x), m.c(math.log(2.0))), small, big), x)


def _log1p(m: _Ops, x):
    u = m.add(m.c(1.0), x)
    y = m.mul(m.call("log", u), m.div(x, m.sub(u, m.c(1.0))))
    y = m.sel(m.eq(u, m.c(1.0)), x, y)
    return m.sel(m.eq(x, m.c(math.inf)), x, y)


#: The functions by their short names.
FUNCTIONS: dict[str, Callable[[_Ops, ir.Value], ir.Value]] = {
    "exp": _exp, "log": _log, "tanh": _tanh, "erf": _erf, "erfc": _erfc, "expm1": _expm1, "log1p": _log1p,
}

#: LLVM intrinsic names (llvm.exp.v8f32, llvm.tanh.f16) and libm's f32 names (erff, log1pf).
_INTRINSIC = re.compile(r"llvm\.(exp|log|tanh)\.(?:v(\d+))?(f32|f16)")
_LIBM = {f + "f": f for f in FUNCTIONS}


def parse(name: str) -> tuple[str, ir.Type] | None:
    """(function, value type) for a name this module defines, else None."""
    if name in _LIBM:
        return _LIBM[name], T.F32
    mt = _INTRINSIC.fullmatch(name)
    if mt is None:
        return None
    elem = T.F32 if mt.group(3) == "f32" else T.F16
    return mt.group(1), ir.VectorType(elem, int(mt.group(2))) if mt.group(2) else elem


def lookup(state, name: str) -> ir.Function | None:
    """The definition of function ``name`` in ``state``'s module, or None where vecmath has none
    (f64, other functions)."""
    parsed = parse(name)
    return function_for(state, *parsed) if parsed else None


def function_for(state, fname: str, t: ir.Type) -> ir.Function | None:
    """Function ``fname`` (a key of FUNCTIONS) on values of type ``t`` (f32 or f16, scalar or
    vector), defined in ``state``'s module on first use; None for other types."""
    elem = t.element if isinstance(t, ir.VectorType) else t
    if fname not in FUNCTIONS or elem not in (T.F32, T.F16):
        return None
    sym = f"irc.{fname}.{T.suffix(t)}"
    fn = state.module.globals.get(sym)
    if fn is not None:
        return fn
    fn = ir.Function(state.module, ir.FunctionType(t, [t]), sym)
    fn.linkage = "internal"
    fn.attributes.add("alwaysinline")
    fn.attributes.add("nounwind")
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    (x,) = fn.args
    if elem is T.F16:  # through f32
        wide_t = ir.VectorType(T.F32, t.count) if isinstance(t, ir.VectorType) else T.F32
        wide = b.call(function_for(state, fname, wide_t), [b.fpext(x, wide_t)])
        b.ret(b.fptrunc(wide, t))
    else:
        b.ret(FUNCTIONS[fname](_Ops(state, b, t), x))
    return fn
