"""Every gradient rule against central differences in float64 through the interpreter, on
shapes and attributes chosen by hypothesis; and the table that says, for every registered op,
whether it has a rule, has zero gradient, or is unsupported (and why)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import irc.frontend.trace as T
from irc.errors import UnsupportedOpError
from irc.ir.interp import interpret
from irc.ir.ops import REGISTRY
from irc.passes.autodiff import autodiff
from irc.passes.grads import unsupported_reason, zero_gradient
from tests.support.marks import params

EPS = 1e-6
SETTINGS = settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def check_grads(fn, inputs, wrt=None, rtol=1e-5, atol=1e-6, eps=EPS):
    """d/d(inputs) of sum(fn(*inputs) * r) for a random r: autodiff against central differences."""
    rng = np.random.default_rng(0)
    wrt = [i for i, a in enumerate(inputs) if a.dtype == np.float64] if wrt is None else wrt

    def loss(*xs):
        out = fn(*xs)
        outs = out if isinstance(out, (tuple, list)) else [out]
        total = None
        for o in outs:
            term = (o * rng.standard_normal(o.shape)).sum()
            total = term if total is None else total + term
        return total

    names = [f"x{i}" for i in range(len(inputs))]
    g = T.trace(loss, *inputs, input_names=names)
    gg = autodiff(g, wrt=[names[i] for i in wrt])
    got = interpret(gg, inputs)[1:]
    for k, i in enumerate(wrt):
        num = np.zeros_like(inputs[i])
        flat = num.reshape(-1)
        for j in range(inputs[i].size):
            vals = []
            for sign in (1, -1):
                xs = [a.copy() for a in inputs]
                xs[i].reshape(-1)[j] += sign * eps
                vals.append(interpret(g, xs)[0])
            flat[j] = (vals[0] - vals[1]) / (2 * eps)
        np.testing.assert_allclose(got[k], num, rtol=rtol, atol=atol, err_msg=f"gradient of input {i}")


def arrays(draw, shape, lo=-2.0, hi=2.0, away_from=None):
    seed = draw(st.integers(0, 2**31 - 1))
    a = np.random.default_rng(seed).uniform(lo, hi, shape)
    if away_from is not None:  # keep clear of kinks so central differences are meaningful
        a = np.where(np.abs(a - away_from) < 0.05, a + 0.1, a)
    return a


shapes = st.lists(st.integers(1, 4), min_size=0, max_size=3).map(tuple)


# ---------------------------------------------------------------------------- element-wise

UNARY = {
    # op: (attrs, domain low, high, kinks to avoid)
    "neg": ({}, -2, 2, None), "abs": ({}, -2, 2, 0.0), "sqrt": ({}, 0.2, 3, None), "exp": ({}, -2, 2, None),
    "log": ({}, 0.2, 3, None), "erf": ({}, -2, 2, None), "reciprocal": ({}, 0.3, 3, None),
    "sin": ({}, -3, 3, None), "cos": ({}, -3, 3, None), "tanh": ({}, -2, 2, None), "sigmoid": ({}, -4, 4, None),
    "softplus": ({}, -4, 4, None), "softsign": ({}, -3, 3, 0.0), "relu": ({}, -2, 2, 0.0),
    "leaky_relu": ({"alpha": 0.1}, -2, 2, 0.0), "elu": ({"alpha": 0.7}, -2, 2, 0.0), "selu": ({}, -2, 2, 0.0),
    "hard_sigmoid": ({}, -4, 4, None), "hard_swish": ({}, -4, 4, None), "clip": ({"min": -0.5, "max": 0.7}, -2, 2, None),
    "identity": ({}, -2, 2, None), "gelu": ({}, -4, 4, None), "gelu_tanh": ({}, -4, 4, None), "silu": ({}, -4, 4, None),
}


@pytest.mark.parametrize("op", params(sorted(UNARY), fast={"abs", "exp", "tanh", "sigmoid"}))
@SETTINGS
@given(data=st.data())
def test_unary(op, data):
    attrs, lo, hi, kink = UNARY[op]
    x = arrays(data.draw, data.draw(shapes), lo, hi, kink)
    if op in ("hard_sigmoid", "hard_swish", "clip"):
        edges = {"hard_sigmoid": (-2.5, 2.5), "hard_swish": (-3.0, 3.0), "clip": (-0.5, 0.7)}[op]
        for e in edges:
            x = np.where(np.abs(x - e) < 0.05, x + 0.1, x)
    check_grads(lambda x: T.apply(op, x, **attrs), [x])


BINARY = ["add", "sub", "mul", "div", "pow", "max", "min", "prelu"]


@st.composite
def broadcast_pair(draw):
    shape = draw(st.lists(st.integers(1, 3), min_size=1, max_size=3).map(tuple))
    other = list(shape[draw(st.integers(0, len(shape))):])
    other = tuple(1 if draw(st.booleans()) else d for d in other)
    return (shape, other) if draw(st.booleans()) or True else (other, shape)


@pytest.mark.parametrize("op", BINARY)
@SETTINGS
@given(data=st.data())
def test_binary(op, data):
    sa, sb = data.draw(broadcast_pair())
    if data.draw(st.booleans()) and op != "prelu":
        sa, sb = sb, sa
    lo = 0.5 if op == "pow" else -2
    a = arrays(data.draw, sa, lo, 2, 0.0)
    b = arrays(data.draw, sb, 0.5 if op in ("div", "pow") else -2, 2, 0.0)
    if op in ("max", "min"):
        assume(np.abs(np.subtract(a, b)).min() > 0.05)
    check_grads(lambda a, b: T.apply(op, a, b), [a, b])


@SETTINGS
@given(data=st.data())
def test_where_and_cast(data):
    shape = data.draw(shapes)
    cond = arrays(data.draw, shape) > 0
    a, b = arrays(data.draw, shape), arrays(data.draw, shape[1:] if shape else shape)
    check_grads(lambda c, a, b: T.where(c, a, b), [cond, a, b], wrt=[1, 2])
    # Linear, so a large step is exact; a small one would measure float32 rounding.
    check_grads(lambda a: a.astype(np.float32).astype(np.float64) * 1.0, [a], rtol=1e-3, atol=1e-4, eps=0.25)


# ---------------------------------------------------------------------------- linalg


@SETTINGS
@given(data=st.data())
def test_gemm(data):
    m, k, n = (data.draw(st.integers(1, 4)) for _ in range(3))
    ta, tb = data.draw(st.integers(0, 1)), data.draw(st.integers(0, 1))
    alpha, beta = data.draw(st.sampled_from([1.0, 0.5])), data.draw(st.sampled_from([1.0, 2.0]))
    c_shape = data.draw(st.sampled_from([(m, n), (n,), (1, n), ()]))
    a = arrays(data.draw, (k, m) if ta else (m, k))
    b = arrays(data.draw, (n, k) if tb else (k, n))
    c = arrays(data.draw, c_shape)
    epilogue = data.draw(st.sampled_from(["none", "tanh"]))
    check_grads(lambda a, b, c: T.apply("gemm", a, b, c, alpha=alpha, beta=beta, trans_a=ta, trans_b=tb,
                                        act=epilogue), [a, b, c])


@SETTINGS
@given(data=st.data())
def test_matmul(data):
    m, k, n = (data.draw(st.integers(1, 3)) for _ in range(3))
    batch = data.draw(st.lists(st.integers(1, 2), max_size=2).map(tuple))
    sa = data.draw(st.sampled_from([(k,), (m, k), (*batch, m, k)]))
    sb = data.draw(st.sampled_from([(k,), (k, n), (*batch[-1:], k, n)]))
    check_grads(lambda a, b: a @ b, [arrays(data.draw, sa), arrays(data.draw, sb)])


# ---------------------------------------------------------------------------- conv and pool


@st.composite
def conv_config(draw, transpose=False):
    sp = draw(st.integers(1, 2))
    group = draw(st.sampled_from([1, 2]))
    c, m = group * draw(st.integers(1, 2)), group * draw(st.integers(1, 2))
    kernel = tuple(draw(st.integers(1, 3)) for _ in range(sp))
    strides = tuple(draw(st.integers(1, 2)) for _ in range(sp))
    dil = tuple(draw(st.integers(1, 2)) for _ in range(sp))
    pads = tuple(draw(st.integers(0, 1)) for _ in range(2 * sp))
    size = tuple(draw(st.integers(1, 5)) for _ in range(sp))
    if not transpose:
        for i in range(sp):
            assume(size[i] + pads[i] + pads[sp + i] >= (kernel[i] - 1) * dil[i] + 1)
    else:
        for i in range(sp):
            assume(strides[i] * (size[i] - 1) + (kernel[i] - 1) * dil[i] + 1 > pads[i] + pads[sp + i])
    attrs = dict(strides=strides, pads=pads, dilations=dil, group=group)
    n = draw(st.integers(1, 2))
    x = arrays(draw, (n, c, *size))
    w = arrays(draw, (c, m // group, *kernel) if transpose else (m, c // group, *kernel))
    bias = arrays(draw, (m,))
    return x, w, bias, attrs


@pytest.mark.slow
@SETTINGS
@given(cfg=conv_config())
def test_conv(cfg):
    x, w, b, attrs = cfg
    check_grads(lambda x, w, b: T.apply("conv", x, w, b, **attrs), [x, w, b])


@SETTINGS
@given(cfg=conv_config(transpose=True))
def test_conv_transpose(cfg):
    x, w, b, attrs = cfg
    check_grads(lambda x, w, b: T.apply("conv_transpose", x, w, b, **attrs), [x, w, b])


@st.composite
def pool_config(draw):
    sp = draw(st.integers(1, 2))
    kernel = tuple(draw(st.integers(1, 3)) for _ in range(sp))
    strides = tuple(draw(st.integers(1, 3)) for _ in range(sp))
    dil = tuple(draw(st.integers(1, 2)) for _ in range(sp))
    pads = tuple(draw(st.integers(0, (k - 1) // 1)) for k in kernel + kernel)
    pads = tuple(min(p, (kernel[i % sp] - 1)) for i, p in enumerate(pads))
    size = tuple(draw(st.integers(2, 6)) for _ in range(sp))
    for i in range(sp):
        assume(size[i] + pads[i] + pads[sp + i] >= (kernel[i] - 1) * dil[i] + 1)
    attrs = dict(kernel_shape=kernel, strides=strides, pads=pads, dilations=dil, ceil_mode=draw(st.integers(0, 1)))
    return arrays(draw, (draw(st.integers(1, 2)), 2, *size)), attrs


@SETTINGS
@given(cfg=pool_config())
def test_max_pool(cfg):
    x, attrs = cfg
    # Distinct values so that every window has one winner.
    x = np.random.default_rng(1).permutation(x.size).reshape(x.shape) * 0.1
    check_grads(lambda x: T.apply("max_pool", x, **attrs), [x])


@SETTINGS
@given(cfg=pool_config(), include=st.integers(0, 1))
def test_average_pool(cfg, include):
    x, attrs = cfg
    check_grads(lambda x: T.apply("average_pool", x, count_include_pad=include, **attrs), [x])


@pytest.mark.parametrize("op", ["global_average_pool", "global_max_pool"])
@SETTINGS
@given(data=st.data())
def test_global_pools(op, data):
    shape = (data.draw(st.integers(1, 2)), 2, *(data.draw(st.integers(1, 3)) for _ in range(data.draw(st.integers(1, 2)))))
    x = np.random.default_rng(data.draw(st.integers(0, 99))).permutation(int(np.prod(shape))).reshape(shape) * 0.1
    check_grads(lambda x: T.apply(op, x), [x])


# ---------------------------------------------------------------------------- norms


@SETTINGS
@given(data=st.data())
def test_batch_norm(data):
    shape = (data.draw(st.integers(1, 3)), 2, *(data.draw(st.integers(1, 3)) for _ in range(data.draw(st.integers(0, 2)))))
    x = arrays(data.draw, shape)
    scale, bias, mean = (arrays(data.draw, (2,)) for _ in range(3))
    var = arrays(data.draw, (2,), 0.5, 2)
    check_grads(lambda *a: T.apply("batch_norm", *a, epsilon=1e-3), [x, scale, bias, mean, var])


@SETTINGS
@given(data=st.data())
def test_layer_and_instance_norm(data):
    shape = (data.draw(st.integers(1, 2)), 2, data.draw(st.integers(2, 3)), data.draw(st.integers(1, 3)))
    x = arrays(data.draw, shape)
    axis = data.draw(st.integers(1, 3))
    scale, bias = arrays(data.draw, shape[axis:]), arrays(data.draw, shape[axis:])
    check_grads(lambda x, s, b: T.apply("layer_norm", x, s, b, axis=axis), [x, scale, bias], rtol=1e-4, atol=1e-5)
    s2, b2 = arrays(data.draw, (2,)), arrays(data.draw, (2,))
    check_grads(lambda x, s, b: T.apply("instance_norm", x, s, b), [x, s2, b2], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("op", ["softmax", "log_softmax"])
@SETTINGS
@given(data=st.data())
def test_softmaxes(op, data):
    shape = data.draw(st.lists(st.integers(1, 4), min_size=1, max_size=3).map(tuple))
    axis = data.draw(st.integers(-len(shape), len(shape) - 1))
    check_grads(lambda x: T.apply(op, x, axis=axis), [arrays(data.draw, shape)])


# ---------------------------------------------------------------------------- shape, index, reduce


@SETTINGS
@given(data=st.data())
def test_shape_ops(data):
    shape = data.draw(st.lists(st.integers(1, 3), min_size=2, max_size=3).map(tuple))
    x = arrays(data.draw, shape)
    perm = tuple(data.draw(st.permutations(range(len(shape)))))
    check_grads(lambda x: x.reshape(-1, shape[-1]), [x])
    check_grads(lambda x: T.transpose(x, perm), [x])
    check_grads(lambda x, y: T.concatenate([x, y, x], axis=1), [x, arrays(data.draw, shape)])
    sizes = (1, shape[0] - 1) if shape[0] > 1 else (1,)
    check_grads(lambda x: T.Tracer.ops(x.tracer, "split", x, axis=0, sizes=sizes)[-1], [x])
    check_grads(lambda x: T.broadcast_to(x, (2, *shape)), [x])
    reps = tuple(data.draw(st.integers(1, 2)) for _ in shape)
    check_grads(lambda x: T.apply("tile", x, repeats=reps), [x])
    pads = tuple(data.draw(st.integers(-1 if d > 1 else 0, 2)) for d in shape + shape)
    check_grads(lambda x: T.apply("pad", x, pads=pads, value=0.5), [x])


@SETTINGS
@given(data=st.data())
def test_slice(data):
    shape = data.draw(st.lists(st.integers(1, 6), min_size=1, max_size=3).map(tuple))
    x = arrays(data.draw, shape)
    idx = []
    for d in shape:
        step = data.draw(st.sampled_from([1, 2, 3, -1, -2]))
        start = data.draw(st.integers(0, d - 1))
        stop = data.draw(st.integers(start + 1, d)) if step > 0 else data.draw(st.integers(-1, start - 1))
        # Python's negative forms of the same bounds (and 'through index 0' as None).
        if data.draw(st.booleans()):
            start -= d
        stop = None if stop == -1 else stop
        idx.append(slice(start, stop, step))
    check_grads(lambda x: x[tuple(idx)], [x])


@SETTINGS
@given(data=st.data())
def test_gather(data):
    shape = data.draw(st.lists(st.integers(1, 4), min_size=1, max_size=3).map(tuple))
    axis = data.draw(st.integers(0, len(shape) - 1))
    dim = shape[axis]
    ishape = data.draw(st.lists(st.integers(1, 3), max_size=2).map(tuple))
    idx = np.random.default_rng(data.draw(st.integers(0, 99))).integers(-dim, dim, ishape).astype(np.int64)
    check_grads(lambda x, i: T.apply("gather", x, i, axis=axis), [arrays(data.draw, shape), idx], wrt=[0])


REDUCE = ["reduce_sum", "reduce_mean", "reduce_max", "reduce_min", "reduce_prod", "reduce_l1", "reduce_l2",
          "reduce_sum_square", "reduce_log_sum", "reduce_log_sum_exp"]


@pytest.mark.parametrize("op", params(REDUCE, fast={"reduce_sum", "reduce_max"}))
@SETTINGS
@given(data=st.data())
def test_reductions(op, data):
    shape = data.draw(st.lists(st.integers(1, 3), min_size=1, max_size=3).map(tuple))
    axes = tuple(sorted(data.draw(st.sets(st.integers(0, len(shape) - 1), min_size=1))))
    keep = data.draw(st.integers(0, 1))
    positive = op in ("reduce_log_sum", "reduce_prod", "reduce_l2")
    x = arrays(data.draw, shape, 0.3 if positive else -2, 2, None if positive else 0.0)
    if op in ("reduce_max", "reduce_min"):
        x = np.random.default_rng(3).permutation(x.size).reshape(shape) * 0.1
    check_grads(lambda x: T.apply(op, x, axes=axes, keepdims=keep), [x])


# ---------------------------------------------------------------------------- positional ops

FEW = settings(SETTINGS, max_examples=4)  # (each example differentiates several ops)


def _distinct_rows(rng, n_rows, dims):
    """``n_rows`` distinct index rows into ``dims`` (some written negative)."""
    flat = rng.permutation(int(np.prod(dims)))[:n_rows]
    rows = np.stack(np.unravel_index(flat, dims), axis=-1).astype(np.int64)
    return np.where(rng.random(rows.shape) < 0.3, rows - np.array(dims), rows)


@FEW
@given(data=st.data(), fmod=st.integers(0, 1))
def test_mod(data, fmod):
    shape = data.draw(st.lists(st.integers(1, 3), min_size=1, max_size=2).map(tuple))
    b = arrays(data.draw, shape, 0.8, 2.0) * np.where(arrays(data.draw, shape) < 0, -1, 1)
    q = arrays(data.draw, shape, -3, 3)
    q = np.where(np.abs(q - np.round(q)) < 0.1, q + 0.3, q)  # a / b away from the jumps at integers
    check_grads(lambda a, b: T.apply("mod", a, b, fmod=fmod), [q * b, b])


@FEW
@given(data=st.data())
def test_gathers(data):
    rng = np.random.default_rng(data.draw(st.integers(0, 99)))
    shape = data.draw(st.lists(st.integers(1, 4), min_size=1, max_size=3).map(tuple))
    axis = data.draw(st.integers(0, len(shape) - 1))
    ishape = tuple(rng.integers(1, 4) if k == axis else rng.integers(1, d + 1) for k, d in enumerate(shape))
    idx = rng.integers(-shape[axis], shape[axis], ishape).astype(np.int64)
    x = arrays(data.draw, shape)
    check_grads(lambda x, i: T.apply("gather_elements", x, i, axis=axis), [x, idx], wrt=[0])
    q = data.draw(st.integers(1, len(shape)))
    rows = rng.integers(-np.array(shape[:q]), np.array(shape[:q]), (rng.integers(1, 4), q)).astype(np.int64)
    check_grads(lambda x, i: T.apply("gather_nd", x, i), [x, rows], wrt=[0])


@FEW
@given(data=st.data(), reduction=st.sampled_from(["none", "add"]))
def test_scatters(data, reduction):
    rng = np.random.default_rng(data.draw(st.integers(0, 99)))
    shape = data.draw(st.lists(st.integers(1, 4), min_size=1, max_size=3).map(tuple))
    x = arrays(data.draw, shape)
    q = data.draw(st.integers(1, len(shape)))
    n_rows = int(rng.integers(1, np.prod(shape[:q]) + 1))
    rows = _distinct_rows(rng, n_rows, shape[:q]) if reduction == "none" else \
        rng.integers(0, np.array(shape[:q]), (n_rows + 1, q)).astype(np.int64)
    upd = arrays(data.draw, (len(rows),) + shape[q:])
    check_grads(lambda x, i, u: T.apply("scatter_nd", x, i, u, reduction=reduction), [x, rows, upd], wrt=[0, 2])
    axis = data.draw(st.integers(0, len(shape) - 1))
    ishape = tuple(rng.integers(1, d + 1) for d in shape)
    if reduction == "none":  # distinct along the axis: each line a prefix of a permutation
        idx = np.argsort(rng.random(shape), axis=axis)[tuple(slice(0, m) for m in ishape)]
    else:
        idx = rng.integers(-shape[axis], shape[axis], ishape)
    upd = arrays(data.draw, ishape)
    check_grads(lambda x, i, u: T.apply("scatter_elements", x, i, u, axis=axis, reduction=reduction),
                [x, idx.astype(np.int64), upd], wrt=[0, 2])


@FEW
@given(data=st.data())
def test_cumsum_trilu_one_hot_topk(data):
    shape = data.draw(st.lists(st.integers(1, 4), min_size=2, max_size=3).map(tuple))
    x = arrays(data.draw, shape)
    axis, excl, rev = (data.draw(st.integers(0, len(shape) - 1)), data.draw(st.integers(0, 1)),
                       data.draw(st.integers(0, 1)))
    check_grads(lambda x: T.apply("cumsum", x, axis=axis, exclusive=excl, reverse=rev), [x])
    upper, k = data.draw(st.integers(0, 1)), data.draw(st.integers(-3, 3))
    check_grads(lambda x: T.apply("trilu", x, upper=upper, k=k), [x])
    idx = np.random.default_rng(data.draw(st.integers(0, 99))).integers(-5, 5, shape[:-1]).astype(np.int64)
    check_grads(lambda i, v: T.apply("one_hot", i, v, depth=4, axis=-1), [idx, arrays(data.draw, (2,))], wrt=[1])
    x = np.random.default_rng(data.draw(st.integers(0, 99))).permutation(x.size).reshape(shape) * 0.1  # no ties
    k = data.draw(st.integers(1, shape[axis]))
    check_grads(lambda x: x.tracer.ops("topk", x, k=k, axis=axis)[0], [x])


# ---------------------------------------------------------------------------- coverage


TESTED = (set(UNARY) | set(BINARY) | set(REDUCE) | {
    "where", "cast", "gemm", "matmul", "conv", "conv_transpose", "max_pool", "average_pool", "global_average_pool",
    "global_max_pool", "batch_norm", "layer_norm", "instance_norm", "softmax", "log_softmax", "reshape", "transpose",
    "concat", "split", "expand", "tile", "pad", "slice", "gather", "mod", "gather_elements", "gather_nd",
    "scatter_nd", "scatter_elements", "cumsum", "trilu", "one_hot", "topk"})


def test_every_op_has_a_rule_or_a_stated_reason():
    missing = sorted(op for op, d in REGISTRY.items()
                     if d.grad is None and not zero_gradient(op) and unsupported_reason(op) is None)
    assert not missing, f"ops with no gradient rule, not ZERO_GRAD and no no_grad reason: {missing}"


def test_every_rule_is_checked_numerically():
    with_rule = {op for op, d in REGISTRY.items() if d.grad is not None}
    assert with_rule - TESTED == set(), f"gradient rules without a finite-difference test: {sorted(with_rule - TESTED)}"


def test_unsupported_op_is_named():
    x = np.ones((1, 3, 4, 4))
    g = T.trace(lambda x: T.apply("lrn", x, size=3).sum(), x)
    with pytest.raises(UnsupportedOpError, match=r"node '.*' \(lrn\): cannot differentiate: local response"):
        autodiff(g, wrt=["x"])


def test_nondifferentiable_ops_stop_the_walk():
    x = np.array([0.5, -1.3, 2.2])
    # floor has zero derivative; only the direct path contributes.
    check_grads(lambda x: np.floor(x) * 3.0 + x * 2.0, [x])
