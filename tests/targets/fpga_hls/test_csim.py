"""C simulation of every kernel kind against the interpreter, on hypothesis-chosen shapes: each
kernel and its generated testbench are compiled by g++ (-Wall -Werror) and run on test vectors.
float32 within rtol 1e-4; ap_fixed within one unit in the last place of its output format."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import irc
from irc.errors import TargetError
from irc.ir import GraphBuilder
from irc.targets.fpga_hls import toolchain

from .support import FIXED, needs_ap, needs_gxx

pytestmark = needs_gxx
SETTINGS = settings(max_examples=3, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


def _rng(seed):
    return np.random.default_rng(seed)


def csim(g, precision="float32", parallelism="auto"):
    """Compile ``g`` with csim on; every kernel must pass (TargetError otherwise)."""
    exe = irc.compile(g, target="fpga", precision=precision, parallelism=parallelism, csim=True).executable
    assert exe.csim_results and all(r.passed for r in exe.csim_results)
    assert len(exe.csim_results) == len(exe.kernels)
    return exe


def dense_graph(m, k, n, act, bias, residual, seed=0):
    rng = _rng(seed)
    b = GraphBuilder("dense")
    x = b.input("x", (m, k))
    ins = [x, b.param("w", (rng.standard_normal((k, n)) / np.sqrt(k)).astype(np.float32))]
    if bias or residual:
        ins.append(b.param("bias", rng.standard_normal(n).astype(np.float32)))
    if residual:
        ins.append(b.input("r", (m, n)))
    return b.build(b.op("gemm_fused", *ins, act=act, act_alpha=0.1 if act == "leaky_relu" else 0.0))


ACTS = st.sampled_from(["none", "relu", "leaky_relu", "sigmoid", "tanh", "hard_swish"])


@given(m=st.integers(1, 3), k=st.integers(1, 20), n=st.integers(1, 12), act=ACTS, bias=st.booleans(),
       residual=st.booleans(), par=st.sampled_from([1, 2, 4, "auto"]))
@SETTINGS
def test_dense(m, k, n, act, bias, residual, par):
    csim(dense_graph(m, k, n, act, bias, residual), parallelism=par)


@pytest.mark.slow
@given(n=st.integers(1, 2), ci=st.integers(1, 3), co_g=st.integers(1, 4), group=st.sampled_from([1, 2]),
       hw=st.integers(3, 7), kernel=st.integers(1, 3), stride=st.integers(1, 2), pad=st.integers(0, 1),
       dil=st.integers(1, 2), act=ACTS, residual=st.booleans())
@SETTINGS
def test_conv(n, ci, co_g, group, hw, kernel, stride, pad, dil, act, residual):
    rng = _rng(1)
    ci *= group
    co = co_g * group
    if (hw + 2 * pad - (kernel - 1) * dil - 1) < 0:
        dil = 1
    b = GraphBuilder("conv")
    x = b.input("x", (n, ci, hw, hw + 1))
    w = b.param("w", (rng.standard_normal((co, ci // group, kernel, kernel)) * 0.5).astype(np.float32))
    bias = b.param("bias", rng.standard_normal(co).astype(np.float32))
    attrs = dict(strides=(stride, stride), pads=(pad, pad, pad, pad), dilations=(dil, dil), group=group, act=act)
    y = b.op("conv_fused", x, w, bias, **attrs)
    if residual:
        y2 = b.op("conv_fused", b.input("x2", (n, ci, hw, hw + 1)), w, bias, **attrs)
        y = b.op("conv_fused", x, w, bias, y2, **attrs)
    csim(b.build(y))


def test_conv_1d():
    rng = _rng(2)
    b = GraphBuilder("conv1d")
    x = b.input("x", (2, 3, 9))
    w = b.param("w", rng.standard_normal((4, 3, 3)).astype(np.float32))
    csim(b.build(b.op("conv", x, w, strides=(2,), pads=(1, 1))))


@pytest.mark.slow
@given(n=st.integers(1, 2), c=st.integers(1, 4), h=st.integers(2, 7), kernel=st.integers(1, 3),
       stride=st.integers(1, 2), pad=st.integers(0, 1), ceil=st.integers(0, 1), avg=st.booleans(),
       count_pad=st.integers(0, 1), par=st.sampled_from([1, "auto"]))
@SETTINGS
def test_pool(n, c, h, kernel, stride, pad, ceil, avg, count_pad, par):
    pad = min(pad, kernel // 2)
    kernel = min(kernel, h + 2 * pad)
    b = GraphBuilder("pool")
    x = b.input("x", (n, c, h, h + 2))
    attrs = dict(kernel_shape=(kernel, kernel), strides=(stride, stride), pads=(pad, pad, pad, pad), ceil_mode=ceil)
    if avg:
        y = b.op("average_pool", x, count_include_pad=count_pad, **attrs)
    else:
        y = b.op("max_pool", x, **attrs)
    csim(b.build(y), parallelism=par)


@pytest.mark.slow
@given(n=st.integers(1, 2), c=st.integers(1, 6), hw=st.integers(1, 9), avg=st.booleans())
@SETTINGS
def test_global_pool(n, c, hw, avg):
    b = GraphBuilder("gpool")
    x = b.input("x", (n, c, hw, 2))
    csim(b.build(b.op("global_average_pool" if avg else "global_max_pool", x)))


@pytest.mark.slow
@given(shape=st.lists(st.integers(1, 5), min_size=1, max_size=3), data=st.data())
@SETTINGS
def test_softmax_and_argmax(shape, data):
    axis = data.draw(st.integers(0, len(shape) - 1))
    b = GraphBuilder("sm")
    x = b.input("x", tuple(shape))
    csim(b.build(b.op("softmax", x, axis=axis), b.op("argmax", x, axis=axis, keepdims=data.draw(st.integers(0, 1)))))


UNARY = ["relu", "sigmoid", "tanh", "exp", "abs", "neg", "hard_sigmoid", "leaky_relu", "softplus", "elu"]
BINARY = ["add", "sub", "mul", "max", "min"]


@pytest.mark.slow
@given(shape=st.lists(st.integers(1, 4), min_size=1, max_size=4), ops=st.lists(st.sampled_from(UNARY + BINARY),
       min_size=1, max_size=3), data=st.data())
@SETTINGS
def test_elementwise(shape, ops, data):
    """A single op or a chain (fused into one kernel), with inputs broadcasting to the output."""
    shape = tuple(shape)
    b = GraphBuilder("ew")
    y = b.input("x", shape)
    for i, op in enumerate(ops):
        if op in BINARY:
            keep = data.draw(st.lists(st.booleans(), min_size=len(shape), max_size=len(shape)))
            other = tuple(d if k else 1 for d, k in zip(shape, keep))[data.draw(st.integers(0, len(shape))):]
            y = b.op(op, y, b.input(f"b{i}", other))
        else:
            y = b.op(op, y)
    csim(b.build(y))


@pytest.mark.slow
@needs_ap
@pytest.mark.parametrize("kind", ["dense", "conv", "pool", "softmax", "elementwise"])
def test_fixed_point_kernels(kind):
    """ap_fixed<16,6>: every kernel within one ulp (2^-10) of the op applied to its quantized inputs."""
    rng = _rng(3)
    b = GraphBuilder(kind)
    if kind == "dense":
        g = dense_graph(2, 24, 8, "relu", True, True)
    elif kind == "conv":
        x = b.input("x", (1, 3, 6, 6))
        w = b.param("w", (rng.standard_normal((4, 3, 3, 3)) * 0.3).astype(np.float32))
        g = b.build(b.op("conv_fused", x, w, b.param("b", rng.standard_normal(4).astype(np.float32)),
                         strides=(1, 1), pads=(1, 1, 1, 1), dilations=(1, 1), act="sigmoid"))
    elif kind == "pool":
        x = b.input("x", (1, 3, 6, 6))
        g = b.build(b.op("average_pool", x, kernel_shape=(3, 3), strides=(2, 2), pads=(1, 1, 1, 1)),
                    b.op("max_pool", x, kernel_shape=(2, 2), strides=(2, 2)), b.op("global_average_pool", x))
    elif kind == "softmax":
        x = b.input("x", (3, 7))
        g = b.build(b.op("softmax", x), b.op("argmax", x, axis=1))
    else:
        x = b.input("x", (2, 3, 4))
        g = b.build(b.op("tanh", b.op("mul", x, b.input("s", (3, 1)))))
    exe = csim(g, precision=FIXED)
    for r in exe.csim_results:
        err = float(r.message.rsplit(" ", 1)[-1])
        assert err <= 2.0 ** -10, r


def test_generated_code_builds_with_warnings_as_errors():
    assert "-Werror" in toolchain.BASE_FLAGS and "-Wall" in toolchain.BASE_FLAGS


def test_csim_failure_names_the_kernel(monkeypatch):
    """A kernel computing the wrong thing fails its testbench, and the error says which."""
    g = dense_graph(2, 5, 3, "relu", True, False)
    exe = irc.compile(g, target="fpga").executable
    name = exe.kernels[0].name
    exe.sources.kernels[name] = exe.sources.kernels[name].replace("return data_t(v > 0 ? v : acc_t(0));",
                                                                  "return data_t(v > 0 ? v + 1 : acc_t(0));")
    with pytest.raises(TargetError, match=rf"C simulation failed: kernel '{name}' \(gemm_fused\)"):
        exe.csim()
