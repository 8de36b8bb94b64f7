"""CPU direct convolution kernels (conv, conv_fused, conv_transpose) against the interpreter:
hypothesis-chosen groups (depthwise included), strides, dilations, asymmetric pads, 1-D to
3-D, every float type, every fused epilogue."""

import ml_dtypes
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from irc.ir.ops.activation import ACTIVATIONS
from irc.ir.types import TensorType
from tests.support.marks import grid, slow
from tests.targets.harness import assert_matches_interp, one_op_graph

FLOATS = [np.float32, np.float64, np.float16, ml_dtypes.bfloat16]


def _tol(dtype) -> dict:
    """The half types: the reference rounds each product sum once to 8 or 11 bits, as the
    kernel does, but the two sum in different orders (f32 either way), so the rounded results
    may differ by one unit in the last place of outputs of size about 1 to 10."""
    if dtype == np.float64:
        return dict(rtol=1e-10, atol=1e-12)
    if dtype == np.float16:
        return dict(rtol=4e-3, atol=1e-2)
    if dtype == ml_dtypes.bfloat16:
        return dict(rtol=3e-2, atol=6e-2)
    return {}


def _data(shape, dtype, rng, scale=1.0):
    return (rng.standard_normal(shape) * scale).astype(dtype)


@st.composite
def conv_cases(draw, transpose=False):
    rank = draw(st.integers(1, 3))
    group = draw(st.sampled_from([1, 1, 2, 3]))
    cin_g = draw(st.integers(1, 3))
    cout_g = draw(st.integers(1, 5))
    depthwise = draw(st.booleans())
    if depthwise and not transpose:  # depthwise, channel multiplier 1 or 2
        group, cin_g = draw(st.integers(1, 6)), 1
    kernel = tuple(draw(st.integers(1, 4)) for _ in range(rank))
    strides = tuple(draw(st.integers(1, 3)) for _ in range(rank))
    dil = tuple(draw(st.integers(1, 2)) for _ in range(rank))
    pads = tuple(draw(st.integers(0, 2)) for _ in range(2 * rank))
    # Long last axes make rows of several vectors; the others stay short.
    size = tuple(draw(st.integers(1, 6 if i < rank - 1 else 40)) for i in range(rank))
    return rank, group, cin_g, cout_g, kernel, strides, dil, pads, size


@slow
@settings(max_examples=120, deadline=None)
@given(case=conv_cases(), batch=st.integers(1, 2), bias=st.booleans(), dtype=st.sampled_from(FLOATS),
       threads=st.sampled_from([1, 2]), seed=st.integers(0, 999))
def test_conv(case, batch, bias, dtype, threads, seed):
    rank, group, cin_g, cout_g, kernel, strides, dil, pads, size = case
    # The padded input must hold one dilated kernel.
    size = tuple(max(s, (k - 1) * d + 1 - pads[i] - pads[rank + i])
                 for i, (s, k, d) in enumerate(zip(size, kernel, dil)))
    rng = np.random.default_rng(seed)
    x = _data((batch, group * cin_g, *size), dtype, rng)
    w = _data((group * cout_g, cin_g, *kernel), dtype, rng, 0.5)
    ins = [x, w] + ([_data(group * cout_g, dtype, rng)] if bias else [])
    g = one_op_graph("conv", [TensorType.of(a) for a in ins],
                     {"strides": strides, "dilations": dil, "pads": pads, "group": group})
    assert_matches_interp(g, ins, threads=threads, passes=[], **_tol(dtype))


@pytest.mark.parametrize("dtype, act", grid(FLOATS, sorted(ACTIVATIONS), fast={"float32-relu"}))
def test_conv_fused_epilogues(act, dtype):
    rng = np.random.default_rng(len(act))
    x = _data((2, 6, 9, 21), dtype, rng)
    w = _data((9, 2, 3, 3), dtype, rng, 0.4)
    for extras in range(3):
        ins = [x, w] + [_data(9, dtype, rng)] * (extras >= 1) + [_data((2, 9, 5, 21), dtype, rng)] * (extras == 2)
        attrs = dict(strides=(2, 1), pads=(1, 1, 1, 1), dilations=(1, 1), group=3, act=act,
                     act_alpha=-0.5 if act == "clip" else 0.1, act_beta=0.6)
        g = one_op_graph("conv_fused", [TensorType.of(a) for a in ins], attrs)
        assert_matches_interp(g, ins, passes=[], **_tol(dtype))


@pytest.mark.parametrize("shape,group,kernel,strides,pads", [
    ((1, 32, 30, 30), 32, (3, 3), (1, 1), (1, 1, 1, 1)),   # depthwise, rows of 2 vectors
    pytest.param((2, 16, 23, 47), 16, (3, 3), (2, 2), (1, 1, 1, 1), marks=slow),  # depthwise, stride 2
    pytest.param((1, 8, 12, 12), 1, (5, 5), (1, 1), (2, 2, 2, 2), marks=slow),  # dense, the direct kernel without passes
    pytest.param((1, 3, 40, 40), 1, (7, 7), (2, 2), (3, 3, 3, 3), marks=slow),  # a stem: 3 input channels
    pytest.param((1, 4, 9, 300), 2, (1, 9), (1, 5), (0, 4, 0, 4), marks=slow),  # long rows, stride 5 (lane by lane loads)
])
def test_conv_typical_layers(shape, group, kernel, strides, pads):
    rng = np.random.default_rng(0)
    cout = shape[1] if group > 1 else 2 * shape[1]
    x, w = _data(shape, np.float32, rng), _data((cout, shape[1] // group, *kernel), np.float32, rng, 0.3)
    b, r = _data(cout, np.float32, rng), None
    g = one_op_graph("conv", [TensorType.of(a) for a in (x, w, b)],
                     {"strides": strides, "pads": pads, "dilations": (1, 1), "group": group})
    got = assert_matches_interp(g, [x, w, b], threads=2, passes=[])
    r = np.random.default_rng(1).standard_normal(got[0].shape).astype(np.float32)
    attrs = {"strides": strides, "pads": pads, "dilations": (1, 1), "group": group, "act": "relu"}
    g = one_op_graph("conv_fused", [TensorType.of(a) for a in (x, w, b, r)], attrs)
    assert_matches_interp(g, [x, w, b, r], threads=2, passes=[])


def test_conv_with_weights_as_parameters_through_the_pipeline():
    """A depthwise conv + bias + relu with constant weights: the pipeline fuses it into
    conv_fused and the cost rule leaves it to the direct kernel."""
    rng = np.random.default_rng(3)
    x = _data((2, 8, 15, 15), np.float32, rng)
    w, b = _data((8, 1, 3, 3), np.float32, rng), _data(8, np.float32, rng)
    from irc.ir import GraphBuilder

    gb = GraphBuilder("dw")
    xi = gb.input("x", x.shape)
    y = gb.op("conv", xi, gb.param("w", w), gb.param("b", b), strides=(1, 1), pads=(1, 1, 1, 1), dilations=(1, 1),
              group=8)
    g = gb.build(gb.op("relu", y))
    import irc

    assert [n.op for n in irc.compile(g, target="cpu").graph.nodes] == ["conv_fused"]
    assert_matches_interp(g, [x], threads=2)


@slow
@settings(max_examples=100, deadline=None)
@given(case=conv_cases(transpose=True), batch=st.integers(1, 2), bias=st.booleans(), dtype=st.sampled_from(FLOATS),
       data=st.data(), threads=st.sampled_from([1, 2]), seed=st.integers(0, 999))
def test_conv_transpose(case, batch, bias, dtype, data, threads, seed):
    rank, group, cin_g, cout_g, kernel, strides, dil, pads, size = case
    size = tuple(min(s, 12) for s in size)
    outpad = tuple(data.draw(st.integers(0, max(0, min(s, d) - 1))) for s, d in zip(strides, dil))
    # Every output axis must keep at least one element after the pads are cut.
    pads = list(pads)
    for i in range(rank):
        full = strides[i] * (size[i] - 1) + outpad[i] + (kernel[i] - 1) * dil[i] + 1
        while pads[i] + pads[rank + i] >= full:
            pads[i if pads[i] else rank + i] -= 1
    rng = np.random.default_rng(seed)
    x = _data((batch, group * cin_g, *size), dtype, rng)
    w = _data((group * cin_g, cout_g, *kernel), dtype, rng, 0.5)
    ins = [x, w] + ([_data(group * cout_g, dtype, rng)] if bias else [])
    g = one_op_graph("conv_transpose", [TensorType.of(a) for a in ins],
                     {"strides": strides, "dilations": dil, "pads": tuple(pads), "group": group,
                      "output_padding": outpad})
    assert_matches_interp(g, ins, threads=threads, passes=[], **_tol(dtype))
