"""The scalar meaning of every element-wise op, in LLVM, for any target: ``SCALAR[op](k, attrs,
input dtypes, output dtype, *values) -> value`` on compute-type values inside kernel ``k``. Each
target's element-wise kernels, fused chains and GEMM epilogues are written with this one table,
so every target computes the same thing by construction; a target decides only how a declared
function (``llvm.exp.f32``, ``erff``) is provided. Also the broadcasting helpers every
element-wise map uses."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from llvmlite import ir

from irc.ir.graph import Node
from irc.ir.types import DType
from irc.targets.llvm import lltypes as T
from irc.targets.llvm.builder import c_strides
from irc.targets.llvm.scalar import Scalar, convert


def broadcast_strides(shape: Sequence[int], out_shape: Sequence[int]) -> tuple[int, ...]:
    """Element strides of a C-contiguous ``shape`` read as ``out_shape`` (0 on broadcast axes)."""
    pad = len(out_shape) - len(shape)
    st = c_strides(shape)
    return tuple(0 if d < pad or shape[d - pad] == 1 else st[d - pad] for d in range(len(out_shape)))


def collapse(shape: Sequence[int], strides: Sequence[Sequence[int]]):
    """Merge adjacent dimensions that every operand walks contiguously; drop size-1 dims."""
    dims = [(d, [s[k] for s in strides]) for k, d in enumerate(shape) if d != 1]
    out: list[tuple[int, list[int]]] = []
    for d, st in dims:
        if out:
            pd, pst = out[-1]
            if all(ps == s * d for ps, s in zip(pst, st)):
                out[-1] = (pd * d, st)
                continue
        out.append((d, st))
    if not out:
        out = [(1, [0] * len(strides))]
    return [d for d, _ in out], [[st[i] for _, st in out] for i in range(len(strides))]


def same_shape_inputs(node: Node) -> list[int]:
    """Inputs an element-wise output may overwrite: those of exactly the output's type."""
    out = node.outputs[0].type
    return [i for i, v in enumerate(node.inputs) if v.type == out]


#: op -> fn(k, attrs, input dtypes, output dtype, *values) -> value: the scalar meaning of every
#: element-wise op, shared by its own kernel and by fused element-wise chains.
SCALAR: dict[str, Callable[..., object]] = {}
#: op -> relative cost per element (transcendental functions cost more), for parallel thresholds.
COST: dict[str, int] = {}
#: op -> the inputs its output may overwrite, where that is not ``same_shape_inputs``.
INPLACE: dict[str, Callable[[Node], list[int]]] = {}


def _unary(op: str, f: Callable[..., object], cost: int = 1):
    SCALAR[op] = lambda k, attrs, dts, out, x: f(Scalar(k, dts[0]), x, **attrs)
    COST[op] = cost


def _sigmoid(s: Scalar, x):
    one = s.c(1)
    return s.b.fdiv(one, s.add(one, s.intrinsic("exp", s.neg(x))))


def _softplus(s: Scalar, x):
    # x > 0: x + log1p(exp(-x)); else log1p(exp(x)) — never overflows.
    pos = s.gt(x, s.c(0))
    t = s.intrinsic("exp", s.neg(s.abs(x)))
    l1p = s.libm("log1p", t)
    return s.select(pos, s.add(x, l1p), l1p)


def _sign(s: Scalar, x):
    if not s.signed:
        return s.select(s.eq(x, s.c(0)), s.c(0), s.c(1))
    return s.select(s.gt(x, s.c(0)), s.c(1), s.select(s.lt(x, s.c(0)), s.c(-1), x))


def _elu(s: Scalar, x, alpha, gamma=1.0):
    neg = s.mul(s.c(alpha), s.libm("expm1", s.min(x, s.c(0))))
    y = s.select(s.gt(x, s.c(0)), x, neg)
    return y if gamma == 1.0 else s.mul(s.c(gamma), y)


def _clip(s: Scalar, x, min, max):
    if not s.is_float:
        info_lo, info_hi = _int_range(s.dt)
        lo = info_lo if min <= info_lo else math.ceil(min)
        hi = info_hi if max >= info_hi else math.floor(max)
        return s.min(s.max(x, s.c(lo)), s.c(hi))
    if min != -math.inf:
        x = s.max(x, s.c(min))
    if max != math.inf:
        x = s.min(x, s.c(max))
    return x


def _int_range(dt: DType) -> tuple[int, int]:
    import numpy as np

    info = np.iinfo(dt.numpy)
    return int(info.min), int(info.max)


def _hard_sigmoid(s: Scalar, x, alpha, beta):
    return s.min(s.max(s.add(s.mul(s.c(alpha), x), s.c(beta)), s.c(0)), s.c(1))


def _hard_swish(s: Scalar, x):
    return s.mul(x, _hard_sigmoid(s, x, 1 / 6, 0.5))


def _gelu(s: Scalar, x):
    # 0.5 x (1 + erf(x / sqrt 2)) = 0.5 x erfc(-x / sqrt 2): erfc keeps the negative tail's relative
    # accuracy, where 1 + erf cancels (below x = -3 the sum's rounding error exceeds the result)
    return s.mul(s.mul(x, s.c(0.5)), s.libm("erfc", s.mul(x, s.c(-0.7071067811865476))))


def _gelu_tanh(s: Scalar, x):
    # 0.5 x (1 + tanh(u)) = x sigmoid(2u), u = sqrt(2/pi) (x + 0.044715 x^3): the sigmoid form
    # has no cancellation where tanh(u) nears -1 (x below about -3), the tanh form loses all bits
    two_u = s.mul(x, s.add(s.c(2 * 0.7978845608028654), s.mul(s.c(2 * 0.7978845608028654 * 0.044715), s.mul(x, x))))
    return s.mul(x, _sigmoid(s, two_u))


def _silu(s: Scalar, x):
    return s.mul(x, _sigmoid(s, x))


#: Epilogue activations of fused kernels: act name -> fn(scalar ops, value, alpha, beta).
ACTIVATION_EMITTERS = {
    "relu": lambda s, x, a, b: s.select(s.lt(x, s.c(0)), s.c(0), x),
    "leaky_relu": lambda s, x, a, b: s.select(s.ge(x, s.c(0)), x, s.mul(x, s.c(a))),
    "clip": lambda s, x, a, b: _clip(s, x, a, b),
    "sigmoid": lambda s, x, a, b: _sigmoid(s, x),
    "tanh": lambda s, x, a, b: s.intrinsic("tanh", x),
    "hard_sigmoid": lambda s, x, a, b: _hard_sigmoid(s, x, a, b),
    "hard_swish": lambda s, x, a, b: _hard_swish(s, x),
    "gelu": lambda s, x, a, b: _gelu(s, x),
    "gelu_tanh": lambda s, x, a, b: _gelu_tanh(s, x),
    "silu": lambda s, x, a, b: _silu(s, x),
}

_unary("neg", lambda s, x: s.neg(x))
_unary("abs", lambda s, x: s.abs(x))
_unary("sqrt", lambda s, x: s.intrinsic("sqrt", x))
_unary("exp", lambda s, x: s.intrinsic("exp", x), cost=8)
_unary("log", lambda s, x: s.intrinsic("log", x), cost=8)
_unary("erf", lambda s, x: s.libm("erf", x), cost=16)
_unary("reciprocal", lambda s, x: s.b.fdiv(s.c(1), x))
_unary("floor", lambda s, x: s.intrinsic("floor", x))
_unary("ceil", lambda s, x: s.intrinsic("ceil", x))
_unary("round", lambda s, x: s.intrinsic("roundeven", x))
_unary("sign", _sign)
_unary("sin", lambda s, x: s.intrinsic("sin", x), cost=16)
_unary("cos", lambda s, x: s.intrinsic("cos", x), cost=16)
_unary("tanh", lambda s, x: s.intrinsic("tanh", x), cost=16)
_unary("sigmoid", _sigmoid, cost=8)
_unary("softplus", _softplus, cost=16)
_unary("softsign", lambda s, x: s.b.fdiv(x, s.add(s.c(1), s.abs(x))))
_unary("relu", lambda s, x: ACTIVATION_EMITTERS["relu"](s, x, 0, 0))
_unary("leaky_relu", lambda s, x, alpha: ACTIVATION_EMITTERS["leaky_relu"](s, x, alpha, 0))
_unary("elu", _elu, cost=8)
_unary("selu", lambda s, x, alpha, gamma: _elu(s, x, alpha, gamma), cost=8)
_unary("hard_sigmoid", _hard_sigmoid)
_unary("hard_swish", _hard_swish)
_unary("gelu", _gelu, cost=20)
_unary("gelu_tanh", _gelu_tanh, cost=20)
_unary("silu", _silu, cost=10)
_unary("clip", _clip)
_unary("identity", lambda s, x: x)
_unary("not", lambda s, x: s.b.not_(x))


SCALAR["cast"] = lambda k, attrs, dts, out, x: convert(k, x, dts[0], out)
COST["cast"] = 1
INPLACE["cast"] = lambda n: [0] if n.inputs[0].type.nbytes == n.outputs[0].type.nbytes else []


def _binary(op: str, f: Callable[..., object], cost: int = 1):
    SCALAR[op] = lambda k, attrs, dts, out, a, b: f(Scalar(k, dts[0]), a, b)
    COST[op] = cost


def _pow(s: Scalar, a, b):
    if s.is_float:
        return s.intrinsic("pow", a, b)
    # Integers: through f64, as the reference does.
    k = s.k
    f = Scalar(k, DType.f64)
    y = f.intrinsic("pow", convert(k, a, s.dt, DType.f64), convert(k, b, s.dt, DType.f64))
    return convert(k, y, DType.f64, s.dt)


_binary("add", lambda s, a, b: s.add(a, b))
_binary("sub", lambda s, a, b: s.sub(a, b))
_binary("mul", lambda s, a, b: s.mul(a, b))
_binary("div", lambda s, a, b: s.div(a, b))
_binary("pow", _pow, cost=16)
_binary("max", lambda s, a, b: s.max(a, b))
_binary("min", lambda s, a, b: s.min(a, b))
_binary("prelu", lambda s, x, sl: s.select(s.ge(x, s.c(0)), x, s.mul(x, sl)))
_binary("equal", lambda s, a, b: s.eq(a, b))
_binary("less", lambda s, a, b: s.lt(a, b))
_binary("less_equal", lambda s, a, b: s.le(a, b))
_binary("greater", lambda s, a, b: s.gt(a, b))
_binary("greater_equal", lambda s, a, b: s.ge(a, b))
_binary("and", lambda s, a, b: s.b.and_(a, b))
_binary("or", lambda s, a, b: s.b.or_(a, b))
_binary("xor", lambda s, a, b: s.b.xor(a, b))


def _isinf(s: Scalar, x, detect_negative, detect_positive):
    hits = [s.eq(x, s.c(v)) for v, on in ((math.inf, detect_positive), (-math.inf, detect_negative)) if on]
    if not hits:
        return ir.Constant(ir.IntType(1), 0)
    return hits[0] if len(hits) == 1 else s.b.or_(*hits)


_unary("isnan", lambda s, x: s.is_nan(x))
_unary("isinf", _isinf)


def _mod(k, attrs, dts, out, a, b):
    """numpy's mod (fmod=0: the divisor's sign) or fmod (the dividend's); f16 through f32."""
    s = Scalar(k, dts[0])
    fmod = attrs["fmod"]
    if s.is_float:
        wide = s.elem is T.F16
        if wide:
            s = Scalar(k, DType.f32)
            a, b = k.b.fpext(a, T.F32), k.b.fpext(b, T.F32)
        r = k.b.frem(a, b)
        if not fmod:
            zero = s.c(0)
            fix = k.b.and_(k.b.fcmp_ordered("!=", r, zero), k.b.xor(s.lt(r, zero), s.lt(b, zero)))
            r = s.select(fix, s.add(r, b), r)
            r = s.select(s.eq(r, zero), s.intrinsic("copysign", zero, b), r)
        return k.b.fptrunc(r, T.F16) if wide else r
    zero, one = s.c(0), s.c(1)
    by_zero = s.eq(b, zero)
    if s.signed:
        # b == -1 divides by 1 instead: the remainder is 0 either way, and INT_MIN % -1 cannot trap.
        safe = s.select(k.b.or_(by_zero, s.eq(b, s.c(-1))), one, b)
        r = k.b.srem(a, safe)
        if not fmod:
            fix = k.b.and_(k.b.icmp_unsigned("!=", r, zero), k.b.xor(s.lt(r, zero), s.lt(b, zero)))
            r = s.select(fix, s.add(r, b), r)
    else:
        r = k.b.urem(a, s.select(by_zero, one, b))
    return s.select(by_zero, zero, r)


SCALAR["mod"] = _mod
COST["mod"] = 4


SCALAR["where"] = lambda k, attrs, dts, out, c, a, b: k.b.select(c, a, b)
COST["where"] = 1
INPLACE["where"] = lambda n: [i for i in (1, 2) if n.inputs[i].type == n.outputs[0].type]


def inplace_rule(op: str) -> Callable[[Node], list[int]]:
    """Which inputs of an element-wise ``op`` its output may overwrite."""
    return INPLACE.get(op, same_shape_inputs)


def scalar_fn(k, node: Node) -> Callable[..., object]:
    """The per-element function of an element-wise node inside kernel ``k``."""
    dts = [b.dtype for b in k.ins]
    out = k.outs[0].dtype
    return lambda *v: SCALAR[node.op](k, node.attrs, dts, out, *v)


def chain_fn(k, node: Node) -> Callable[..., object]:
    """An ``elementwise_chain``'s sub-graph as one per-element function: every intermediate in a
    register."""
    g = node.attrs["body"]

    def body(*vals):
        env = dict(zip(g.inputs, vals))
        for n in g.nodes:
            dts = [v.dtype for v in n.inputs]
            env[n.outputs[0]] = SCALAR[n.op](k, n.attrs, dts, n.outputs[0].dtype, *(env[v] for v in n.inputs))
        return env[g.outputs[0]]

    return body


def chain_cost(node: Node) -> int:
    return sum(COST.get(n.op, 1) for n in node.attrs["body"].nodes)
