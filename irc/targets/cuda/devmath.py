"""Device math: the transcendental functions kernels call, written out in LLVM IR.

LLVM's NVPTX back end lowers ``sqrt``, ``fabs``, ``floor``... to single PTX instructions but has
no library for ``exp``, ``log``, ``sin``, ``tanh``, ``pow`` or ``erf`` (that is libdevice, which
ships with the CUDA toolkit, not with LLVM). irc defines them here as small internal functions,
built on the few hardware approximations PTX offers (``ex2.approx``) and on range reduction +
polynomials, accurate to a few ulp in f32, far inside the 1e-3 the cuda target promises:

- exp: x = n ln2 + r (Cody-Waite, |r| <= ln2/2), 2**n * ex2(r log2 e);
- log: x = 2**e m with m in [sqrt(1/2), sqrt(2)), log m = 2 atanh(f / (2 + f)) by its odd series
  (exact near 1, where lg2.approx is not);
- log1p / expm1: Goldberg's and Kahan's corrections around log / exp, so tiny arguments keep
  their relative accuracy; tanh from expm1;
- sin / cos: reduction by pi/2 in three parts, Taylor polynomials on [-pi/4, pi/4] (accurate for
  |x| up to ~1e5; beyond that the reduction itself loses bits);
- pow: exp(b log |a|) with IEEE's special cases for zero, one, negative bases and integer exponents;
- erf: the Maclaurin series below 0.5, Abramowitz & Stegun 7.1.26 (error 1.5e-7) above; erfc from
  the same two pieces, the tail without the subtraction from 1.

f16 versions compute in f32. f64 transcendental functions are refused (no network needs them on
a GPU, and emulating them badly would be worse than saying so).

Element-wise kernels reach these functions by name: ``GpuModule.declare("llvm.exp.f32", ...)``
returns the definition below instead of an external declaration, so the scalar semantics table
both LLVM targets share (``irc.targets.llvm.elementwise.SCALAR``) is used unchanged.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from llvmlite import ir

from irc.errors import UnsupportedOpError
from irc.targets.llvm.float_ops import FloatOps

F16 = ir.HalfType()
F32 = ir.FloatType()
F64 = ir.DoubleType()
I1 = ir.IntType(1)
I32 = ir.IntType(32)


def c(v: float) -> ir.Constant:
    return ir.Constant(F32, float(v))


class _Math(FloatOps):
    """IR helpers over one builder, f32 only."""

    def __init__(self, mod, b: ir.IRBuilder):
        self.mod = mod
        self.b = b

    def intr(self, name: str, *args):
        fn = self.mod.declare_raw(f"llvm.{name}.f32", F32, [F32] * len(args))
        return self.b.call(fn, list(args))

    def call(self, name: str, *args):
        return self.b.call(self.mod.declare(name, F32, [F32] * len(args)), list(args))

    def fma(self, a, b, c_):
        return self.intr("fma", a, b, c_)

    def isnan(self, a):
        return self.b.fcmp_unordered("uno", a, a)

    def horner(self, x, coeffs):
        """coeffs[0] + x*(coeffs[1] + x*(...))."""
        acc = c(coeffs[-1])
        for k in reversed(coeffs[:-1]):
            acc = self.fma(acc, x, c(k))
        return acc


LN2_HI = 0.693145751953125  # 16 significant bits: n * LN2_HI is exact for |n| < 2**8
LN2_LO = 1.4286068203094172e-06
LOG2E = 1.4426950408889634
PIO2_1 = 1.5703125  # pi/2 in three parts, the first two short enough that q * part is exact
PIO2_2 = 4.837512969970703125e-04
PIO2_3 = 7.5497899548918821e-08


def _exp(m: _Math, x):
    lo, hi = c(-104.0), c(89.0)
    xc = m.sel(m.lt(x, lo), lo, m.sel(m.gt(x, hi), hi, x))
    n = m.intr("roundeven", m.mul(xc, c(LOG2E)))
    r = m.fma(n, c(-LN2_HI), xc)
    r = m.fma(n, c(-LN2_LO), r)
    y = m.mul(m.intr("exp2", n), m.intr("exp2", m.mul(r, c(LOG2E))))
    return m.sel(m.isnan(x), x, y)


def _log(m: _Math, x):
    b = m.b
    tiny = m.lt(x, c(2.0 ** -126))
    xs = m.sel(tiny, m.mul(x, c(2.0 ** 23)), x)
    bits = b.bitcast(xs, I32)
    e = b.sub(b.and_(b.lshr(bits, ir.Constant(I32, 23)), ir.Constant(I32, 0xFF)), ir.Constant(I32, 127))
    mant = b.bitcast(b.or_(b.and_(bits, ir.Constant(I32, 0x7FFFFF)), ir.Constant(I32, 0x3F800000)), F32)
    big = m.gt(mant, c(math.sqrt(2.0)))
    mant = m.sel(big, m.mul(mant, c(0.5)), mant)
    e = b.add(e, b.select(big, ir.Constant(I32, 1), ir.Constant(I32, 0)))
    ef = b.sitofp(e, F32)
    ef = m.sel(tiny, m.sub(ef, c(23.0)), ef)
    f = m.sub(mant, c(1.0))
    s = m.div(f, m.add(f, c(2.0)))
    s2 = m.mul(s, s)
    poly = m.horner(s2, [1.0, 1 / 3, 1 / 5, 1 / 7, 1 / 9, 1 / 11])
    logm = m.mul(m.mul(c(2.0), s), poly)
    y = m.fma(ef, c(LN2_HI), m.fma(ef, c(LN2_LO), logm))
    y = m.sel(m.eq(x, c(0.0)), c(-math.inf), y)
    y = m.sel(m.eq(x, c(math.inf)), c(math.inf), y)
    return m.sel(b.or_(m.lt(x, c(0.0)), m.isnan(x)), c(math.nan), y)


def _log1p(m: _Math, x):
    u = m.add(c(1.0), x)
    y = m.div(m.mul(m.call("llvm.log.f32", u), x), m.sub(u, c(1.0)))
    y = m.sel(m.eq(u, c(math.inf)), u, y)
    y = m.sel(m.eq(u, c(0.0)), c(-math.inf), y)
    return m.sel(m.eq(u, c(1.0)), x, y)


def _expm1(m: _Math, x):
    u = m.call("llvm.exp.f32", x)
    um1 = m.sub(u, c(1.0))
    y = m.div(m.mul(um1, x), m.call("llvm.log.f32", u))
    y = m.sel(m.eq(um1, c(-1.0)), c(-1.0), y)
    y = m.sel(m.eq(u, c(math.inf)), u, y)
    return m.sel(m.eq(u, c(1.0)), x, y)


def _tanh(m: _Math, x):
    a = m.intr("fabs", x)
    t = m.call("expm1f", m.mul(c(-2.0), a))
    y = m.div(m.b.fneg(t), m.add(t, c(2.0)))
    y = m.intr("copysign", y, x)
    return m.sel(m.isnan(x), x, y)


_SIN = [1.0, -1 / 6, 1 / 120, -1 / 5040, 1 / 362880, -1 / 39916800]
_COS = [1.0, -1 / 2, 1 / 24, -1 / 720, 1 / 40320, -1 / 3628800, 1 / 479001600]


def _sincos(m: _Math, x, want_cos: bool):
    b = m.b
    q = m.intr("roundeven", m.mul(x, c(2 / math.pi)))
    r = m.fma(q, c(-PIO2_1), x)
    r = m.fma(q, c(-PIO2_2), r)
    r = m.fma(q, c(-PIO2_3), r)
    finite = m.lt(m.intr("fabs", q), c(2.0 ** 30))
    k = b.fptosi(m.sel(finite, q, c(0.0)), I32)
    if want_cos:
        k = b.add(k, ir.Constant(I32, 1))
    k = b.and_(k, ir.Constant(I32, 3))
    r2 = m.mul(r, r)
    s = m.mul(r, m.horner(r2, _SIN))
    co = m.horner(r2, _COS)
    odd = b.icmp_unsigned("==", b.and_(k, ir.Constant(I32, 1)), ir.Constant(I32, 1))
    neg = b.icmp_unsigned(">=", k, ir.Constant(I32, 2))
    y = m.sel(odd, co, s)
    y = m.sel(neg, b.fneg(y), y)
    return m.sel(finite, y, c(math.nan))


def _pow(m: _Math, a, e):
    b = m.b
    y = m.call("llvm.exp.f32", m.mul(e, m.call("llvm.log.f32", m.intr("fabs", a))))
    e_int = m.eq(m.intr("floor", e), e)
    half = m.mul(e, c(0.5))
    odd = b.and_(e_int, b.fcmp_ordered("!=", m.intr("floor", half), half))
    negbase = m.lt(a, c(0.0))
    y = m.sel(b.and_(negbase, odd), b.fneg(y), y)
    y = m.sel(b.and_(negbase, b.not_(e_int)), c(math.nan), y)
    y = m.sel(b.and_(m.eq(a, c(0.0)), odd), m.intr("copysign", y, a), y)
    return m.sel(b.or_(m.eq(e, c(0.0)), m.eq(a, c(1.0))), c(1.0), y)


_AS_P = 0.3275911
_AS_A = [0.254829592, -0.284496736, 1.421413741, -1.453152027, 1.061405429]


def _erf(m: _Math, x):
    a = m.intr("fabs", x)
    # Maclaurin: erf(a) = 2/sqrt(pi) * sum (-1)**n a**(2n+1) / (n! (2n+1))
    a2 = m.mul(a, a)
    series = [(-1) ** n / (math.factorial(n) * (2 * n + 1)) for n in range(8)]
    small = m.mul(m.mul(c(2 / math.sqrt(math.pi)), a), m.horner(a2, series))
    t = m.div(c(1.0), m.fma(c(_AS_P), a, c(1.0)))
    poly = m.mul(t, m.horner(t, _AS_A))
    large = m.sub(c(1.0), m.mul(poly, m.call("llvm.exp.f32", m.b.fneg(a2))))
    y = m.sel(m.lt(a, c(0.5)), small, large)
    y = m.intr("copysign", y, x)
    return m.sel(m.isnan(x), x, y)


def _erfc(m: _Math, x):
    """1 - erf(x) below 0.5 in magnitude; beyond, A&S 7.1.26's t P(t) e**(-x**2) itself (no
    cancellation in the tail GELU reaches), 2 minus it for negative x."""
    a = m.intr("fabs", x)
    a2 = m.mul(a, a)
    series = [(-1) ** n / (math.factorial(n) * (2 * n + 1)) for n in range(8)]
    small = m.sub(c(1.0), m.mul(m.mul(c(2 / math.sqrt(math.pi)), x), m.horner(a2, series)))
    t = m.div(c(1.0), m.fma(c(_AS_P), a, c(1.0)))
    tail = m.mul(m.mul(t, m.horner(t, _AS_A)), m.call("llvm.exp.f32", m.b.fneg(a2)))
    big = m.sel(m.lt(x, c(0.0)), m.sub(c(2.0), tail), tail)
    y = m.sel(m.lt(a, c(0.5)), small, big)
    return m.sel(m.isnan(x), x, y)


#: f32 functions by the names kernels declare them under (LLVM intrinsics and libm's).
F32_FUNCTIONS: dict[str, tuple[int, Callable]] = {
    "llvm.exp.f32": (1, _exp),
    "llvm.log.f32": (1, _log),
    "log1pf": (1, _log1p),
    "expm1f": (1, _expm1),
    "llvm.tanh.f32": (1, _tanh),
    "tanhf": (1, _tanh),
    "llvm.sin.f32": (1, lambda m, x: _sincos(m, x, False)),
    "llvm.cos.f32": (1, lambda m, x: _sincos(m, x, True)),
    "llvm.pow.f32": (2, _pow),
    "erff": (1, _erf),
    "erfcf": (1, _erfc),
    "expf": (1, _exp),
    "logf": (1, _log),
}

_F16_OF = {"llvm.exp.f16": "llvm.exp.f32", "llvm.log.f16": "llvm.log.f32", "llvm.tanh.f16": "llvm.tanh.f32",
           "llvm.sin.f16": "llvm.sin.f32", "llvm.cos.f16": "llvm.cos.f32", "llvm.pow.f16": "llvm.pow.f32"}
_F64 = {"llvm.exp.f64", "llvm.log.f64", "llvm.tanh.f64", "llvm.sin.f64", "llvm.cos.f64", "llvm.pow.f64",
        "erf", "erfc", "log1p", "expm1", "tanh", "exp", "log"}


def provides(name: str) -> bool:
    return name in F32_FUNCTIONS or name in _F16_OF or name in _F64


def define(mod, name: str) -> ir.Function:
    """Define device function ``name`` in ``mod`` (a GpuModule) and return it."""
    if name in _F64:
        raise UnsupportedOpError(f"the cuda target has no f64 version of '{name}' (f64 transcendental functions "
                                 f"are not implemented on the GPU); cast to f32")
    if name in _F16_OF:
        f32 = mod.declare(_F16_OF[name], F32, [F32] * (2 if "pow" in name else 1))
        nargs = len(f32.function_type.args)
        fn = _new(mod, name, F16, nargs)
        b = ir.IRBuilder(fn.append_basic_block("entry"))
        wide = [b.fpext(a, F32) for a in fn.args]
        b.ret(b.fptrunc(b.call(f32, wide), F16))
        return fn
    nargs, body = F32_FUNCTIONS[name]
    fn = _new(mod, name, F32, nargs)
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    b.ret(body(_Math(mod, b), *fn.args))
    return fn


def _new(mod, name: str, t: ir.Type, nargs: int) -> ir.Function:
    fn = ir.Function(mod.module, ir.FunctionType(t, [t] * nargs), "irc." + name.replace("llvm.", ""))
    fn.linkage = "internal"
    fn.attributes.add("alwaysinline")
    fn.attributes.add("nounwind")
    return fn
