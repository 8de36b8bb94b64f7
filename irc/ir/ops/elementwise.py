"""Element-wise ops: unary math and activations, broadcasting binary arithmetic and
comparisons, where, cast, clip. All are defined from small tables so that their numpy
semantics sit on one line each; the traits say which family an op is in (fusion uses them).
"""

from __future__ import annotations

import math

import numpy as np

from irc.errors import ShapeError
from irc.ir.ops.costs import free, per_output
from irc.ir.ops.registry import Attr, Trait, broadcast_shapes, defop, expect_float, same_dtype
from irc.ir.types import DType, TensorType

_ERF = np.frompyfunc(math.erf, 1, 1)


def _erf(x: np.ndarray) -> np.ndarray:
    return np.asarray(_ERF(x.astype(np.float64)), np.float64).astype(x.dtype)


def _sigmoid(x):
    # Split by sign so that exp never overflows; exact for large |x|.
    out = np.empty_like(x)
    pos = x >= 0
    out[pos] = 1 / (1 + np.exp(-x[pos]))
    e = np.exp(x[~pos])
    out[~pos] = e / (1 + e)
    return out


def _softplus(x):
    return np.where(x > 0, x + np.log1p(np.exp(-np.abs(x))), np.log1p(np.exp(np.minimum(x, 0)))).astype(x.dtype)


def _f(x, v):
    """A python scalar as x's dtype, so float32 math stays float32."""
    return x.dtype.type(v)


def _unary(name, fn, doc, *, floats_only=True, attrs=None, traits=(Trait.ELEMENTWISE, Trait.UNARY)):
    def infer(x, **_):
        if floats_only:
            expect_float(x)
        elif x.dtype is DType.bool:
            raise ShapeError(f"input must be numeric, got {x}")
        return x

    def reference(x, **kw):
        return np.asarray(fn(x, **kw)).astype(x.dtype, copy=False)

    cls = type(name, (), {"__doc__": doc, "infer": infer, "reference": reference, "cost": per_output})
    defop(name, ("x",), attrs, traits=traits)(cls)


# Piecewise constant: zero derivative wherever it exists.
_ROUNDING = (Trait.ELEMENTWISE, Trait.UNARY, Trait.ZERO_GRAD)

# name, numpy semantics, doc
_unary("neg", lambda x: -x, "-x.", floats_only=False)
_unary("abs", np.abs, "|x|.", floats_only=False)
_unary("sqrt", np.sqrt, "Square root; NaN below zero, as IEEE.")
_unary("exp", np.exp, "e**x.")
_unary("log", np.log, "Natural logarithm; -inf at zero, NaN below.")
_unary("erf", _erf, "Gauss error function (GELU is built from it).")
_unary("reciprocal", lambda x: _f(x, 1) / x, "1/x.")
_unary("floor", np.floor, "Round toward -inf.", traits=_ROUNDING)
_unary("ceil", np.ceil, "Round toward +inf.", traits=_ROUNDING)
_unary("round", np.round, "Round half to even.", traits=_ROUNDING)
_unary("sign", np.sign, "-1, 0 or 1.", floats_only=False, traits=_ROUNDING)
_unary("sin", np.sin, "Sine.")
_unary("cos", np.cos, "Cosine.")
_ACT = (Trait.ELEMENTWISE, Trait.UNARY, Trait.ACTIVATION)
_unary("tanh", np.tanh, "Hyperbolic tangent.", traits=_ACT)
_unary("sigmoid", _sigmoid, "Logistic function 1/(1+e**-x).", traits=_ACT)
_unary("softplus", _softplus, "log(1+e**x), computed without overflow.", traits=_ACT)
_unary("softsign", lambda x: x / (1 + np.abs(x)), "x/(1+|x|).", traits=_ACT)

_unary("relu", lambda x: np.maximum(x, _f(x, 0)), "max(x, 0).", floats_only=False, traits=_ACT)
_unary(
    "leaky_relu",
    lambda x, alpha: np.where(x >= 0, x, x * _f(x, alpha)),
    "x if x >= 0 else alpha*x.",
    attrs={"alpha": Attr("float", 0.01)},
    traits=_ACT,
)
_unary(
    "elu",
    lambda x, alpha: np.where(x > 0, x, _f(x, alpha) * np.expm1(np.minimum(x, 0))),
    "x if x > 0 else alpha*(e**x-1).",
    attrs={"alpha": Attr("float", 1.0)},
    traits=_ACT,
)
_unary(
    "selu",
    lambda x, alpha, gamma: _f(x, gamma) * np.where(x > 0, x, _f(x, alpha) * np.expm1(np.minimum(x, 0))),
    "gamma*(x if x > 0 else alpha*(e**x-1)).",
    attrs={"alpha": Attr("float", 1.67326319217681884765625), "gamma": Attr("float", 1.05070102214813232421875)},
    traits=_ACT,
)
_unary(
    "hard_sigmoid",
    lambda x, alpha, beta: np.clip(_f(x, alpha) * x + _f(x, beta), _f(x, 0), _f(x, 1)),
    "max(0, min(1, alpha*x + beta)).",
    attrs={"alpha": Attr("float", 0.2), "beta": Attr("float", 0.5)},
    traits=_ACT,
)
_unary(
    "hard_swish",
    lambda x: x * np.clip(x * _f(x, 1 / 6) + _f(x, 0.5), _f(x, 0), _f(x, 1)),
    "x * hard_sigmoid(x) with alpha=1/6, beta=0.5.",
    traits=_ACT,
)
def _clip(x, min, max):
    if x.dtype.kind in "iu":
        info = np.iinfo(x.dtype)
        lo = info.min if min <= info.min else int(math.ceil(min))
        hi = info.max if max >= info.max else int(math.floor(max))
        return np.minimum(np.maximum(x, _f(x, lo)), _f(x, hi))
    return np.minimum(np.maximum(x, _f(x, min)), _f(x, max))


_unary(
    "clip",
    _clip,
    "min(max(x, min), max); ReLU6 is clip(0, 6). Bounds are attributes (constants at import).",
    floats_only=False,
    attrs={"min": Attr("float", float("-inf")), "max": Attr("float", float("inf"))},
    traits=_ACT,
)


def _binary_infer(numeric=True, out_dtype=None):
    def infer(a, b):
        dt = same_dtype(a, b)
        if numeric and dt is DType.bool:
            raise ShapeError(f"inputs must be numeric, got {a} and {b}")
        return TensorType(broadcast_shapes(a.shape, b.shape), out_dtype or dt)

    return infer


def _binary(name, fn, doc, *, numeric=True, out_dtype=None, traits=(Trait.ELEMENTWISE, Trait.BINARY)):
    def reference(a, b):
        out = np.asarray(fn(a, b))
        return out.astype(out_dtype.numpy if out_dtype else a.dtype, copy=False)

    cls = type(name, (), {"__doc__": doc, "infer": _binary_infer(numeric, out_dtype), "reference": reference,
                          "cost": per_output})
    defop(name, ("a", "b"), traits=traits)(cls)


def _div(a, b):
    if a.dtype.kind in "iu":
        # ONNX integer division truncates toward zero (C semantics). Division by zero, which
        # ONNX leaves undefined, gives 0; INT_MIN / -1 wraps to INT_MIN, as two's complement does.
        with np.errstate(all="ignore"):
            safe = np.where(b == 0, np.ones_like(b), b)
            q = np.floor_divide(a, safe)
            q = q + ((q * safe != a) & ((a < 0) != (safe < 0))).astype(a.dtype)
            return np.where(b == 0, np.zeros_like(q), q).astype(a.dtype)
    return a / b


def _pow(a, b):
    if a.dtype.kind in "iu":
        return np.power(a.astype(np.float64), b).astype(a.dtype)
    return np.power(a, b)


_binary("add", np.add, "a + b, broadcasting.")
_binary("sub", np.subtract, "a - b, broadcasting.")
_binary("mul", np.multiply, "a * b, broadcasting.")
_binary("div", _div, "a / b, broadcasting; integers truncate toward zero and give 0 when dividing by 0.")
_binary("pow", _pow, "a ** b, broadcasting (exponent of the same element type).")
_binary("max", np.maximum, "Element-wise maximum (NaN propagates), broadcasting.")
_binary("min", np.minimum, "Element-wise minimum (NaN propagates), broadcasting.")
_binary("prelu", lambda x, s: np.where(x >= 0, x, x * s), "x if x >= 0 else slope*x; slope broadcasts to x.",
        traits=(Trait.ELEMENTWISE, Trait.BINARY, Trait.ACTIVATION))

_CMP = (Trait.ELEMENTWISE, Trait.BINARY, Trait.COMPARE, Trait.ZERO_GRAD)
_binary("equal", np.equal, "a == b -> bool.", numeric=False, out_dtype=DType.bool, traits=_CMP)
_binary("less", np.less, "a < b -> bool.", out_dtype=DType.bool, traits=_CMP)
_binary("less_equal", np.less_equal, "a <= b -> bool.", out_dtype=DType.bool, traits=_CMP)
_binary("greater", np.greater, "a > b -> bool.", out_dtype=DType.bool, traits=_CMP)
_binary("greater_equal", np.greater_equal, "a >= b -> bool.", out_dtype=DType.bool, traits=_CMP)


def _logical(name, fn, doc):
    def infer(a, b):
        if a.dtype is not DType.bool or b.dtype is not DType.bool:
            raise ShapeError(f"inputs must be bool, got {a} and {b}")
        return TensorType(broadcast_shapes(a.shape, b.shape), DType.bool)

    cls = type(name, (), {"__doc__": doc, "infer": infer, "reference": lambda a, b: np.asarray(fn(a, b)),
                          "cost": per_output})
    defop(name, ("a", "b"), traits=(Trait.ELEMENTWISE, Trait.BINARY, Trait.LOGICAL, Trait.ZERO_GRAD))(cls)


_logical("and", np.logical_and, "Logical and of bool tensors.")
_logical("or", np.logical_or, "Logical or of bool tensors.")
_logical("xor", np.logical_xor, "Logical exclusive or of bool tensors.")


@defop("not", ("x",), traits=(Trait.ELEMENTWISE, Trait.UNARY, Trait.LOGICAL, Trait.ZERO_GRAD))
class Not:
    """Logical negation of a bool tensor."""

    def infer(x):
        if x.dtype is not DType.bool:
            raise ShapeError(f"input must be bool, got {x}")
        return x

    def reference(x):
        return np.logical_not(x)

    cost = per_output


@defop("where", ("cond", "a", "b"), traits=(Trait.ELEMENTWISE,))
class Where:
    """cond ? a : b, all three broadcasting."""

    def infer(cond, a, b):
        if cond.dtype is not DType.bool:
            raise ShapeError(f"condition must be bool, got {cond}")
        dt = same_dtype(a, b)
        return TensorType(broadcast_shapes(cond.shape, a.shape, b.shape), dt)

    def reference(cond, a, b):
        return np.where(cond, a, b)

    cost = per_output


@defop("cast", ("x",), {"to": Attr("dtype")}, traits=(Trait.ELEMENTWISE, Trait.UNARY))
class Cast:
    """Element type conversion. Float to int truncates toward zero; to bool is x != 0."""

    def infer(x, to):
        return x.with_dtype(to)

    def reference(x, to):
        if to is DType.bool:
            return x != 0
        with np.errstate(invalid="ignore", over="ignore"):
            return x.astype(to.numpy)

    cost = per_output


@defop("identity", ("x",), traits=(Trait.ELEMENTWISE, Trait.UNARY, Trait.BATCH_FREE))
class Identity:
    """y = x (kept where a graph output must be a distinct value)."""

    def infer(x):
        return x

    def reference(x):
        return x.copy()

    cost = free
