"""Convolutions of a train step on the CPU's GEMM engine, against the interpreter: weights that
are run-time tensors (packed by pack_conv_weights, then conv_gemm), weight-gradient
convolutions (conv_dot), and data-gradient conv_transposes (conv_gemm with flipped weights at
stride 1, conv_transpose_gemm = GEMM + col2im when strided); groups, pads, strides, dilations,
one and two threads. Also which kernel the lowering picks (the written-down rules)."""

from __future__ import annotations

import numpy as np
import pytest

import irc
from irc.ir import GraphBuilder, interpret
from irc.ir.ops.registry import get_op
from irc.ir.types import DType, TensorType
from irc.targets.cpu.lowering.ops import conv_weight_matrices, pack_panels, unpack_panels
from tests.support.marks import slow, slow_except
from tests.targets.harness import assert_matches_interp, one_op_graph


def _f32(*shape, scale=1.0, seed=0):
    return (np.random.default_rng(seed).standard_normal(shape) * scale).astype(np.float32)


def _graph(op, x_shape, w_shape, attrs, bias=False):
    types = [TensorType(x_shape, DType.f32), TensorType(w_shape, DType.f32)]
    if bias:
        types.append(TensorType((attrs.pop("_bias"),), DType.f32))
    return one_op_graph(op, types, attrs)


def _lowered_ops(g, **options) -> list[str]:
    return [n.op for n in irc.compile(g, target="cpu", **options).graph.nodes]


def _check(g, inputs, ops: list[str], threads: int = 1) -> None:
    """Compiled once: lowered to ``ops``, and the interpreter's numbers (fp32 rtol 1e-4)."""
    exe = irc.compile(g, target="cpu", threads=threads)
    assert [n.op for n in exe.graph.nodes] == ops
    got, want = exe.run(list(inputs)), interpret(g, list(inputs))
    np.testing.assert_allclose(got[0], want[0], rtol=1e-4, atol=1e-5)


# (x, w, strides, pads, dilations, group): convolutions whose kernel is larger than their output,
# the shapes autodiff gives the weight gradient of a conv (x with batch and channels swapped, dy
# as the kernel, the original stride as the dilation).
WEIGHT_GRADS = [
    ((8, 6, 12, 12), (5, 6, 10, 10), (1, 1), (1, 1, 1, 1), (1, 1), 1),  # 3x3, pad 1, stride 1
    ((4, 6, 13, 13), (7, 6, 6, 6), (1, 1), (1, 1, 0, 0), (2, 2), 1),  # 3x3 stride 2 (dilation 2 here)
    ((3, 8, 9, 9), (6, 4, 9, 9), (1, 1), (0, 0, 0, 0), (1, 1), 2),  # grouped, 1x1 output
    ((2, 12, 30, 40), (9, 4, 28, 38), (1, 1), (0, 0, 0, 0), (1, 1), 3),  # rows of 38: chunks split a window
    ((5, 3, 9, 9), (13, 3, 7, 7), (1, 1), (2, 1, 2, 1), (1, 1), 1),  # 5x3 output: ragged tiles, 13 rows
    ((4, 8, 15, 15), (12, 8, 8, 8), (1, 1), (0, 0, 0, 0), (2, 2), 1),  # a 1x1 conv's: 4 images per unit
    ((6, 8, 15, 15), (12, 8, 8, 8), (1, 1), (1, 0, 0, 0), (2, 2), 1),  # 2x1 outputs: 2 images per unit
]


@pytest.mark.parametrize("case", slow_except({"wg1", "wg4", "wg6"}, [pytest.param(c, id=f"wg{i}")
                                                                   for i, c in enumerate(WEIGHT_GRADS)]))
@pytest.mark.parametrize("threads", [pytest.param(1, marks=slow), 2])  # two threads take both paths
def test_conv_dot(case, threads):
    xs, ws, st, pads, dil, group = case
    g = _graph("conv", xs, ws, dict(strides=st, pads=pads, dilations=dil, group=group))
    _check(g, [_f32(*xs), _f32(*ws, seed=1)], ["conv_dot"], threads)


# (x, w, strides, pads, dilations, group)
FORWARD = [
    ((2, 16, 12, 12), (24, 16, 3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 1),
    ((3, 16, 11, 9), (24, 8, 3, 3), (2, 2), (1, 0, 1, 1), (1, 1), 2),
    ((4, 12, 10, 10), (16, 12, 1, 1), (1, 1), (0, 0, 0, 0), (1, 1), 1),
]


@pytest.mark.parametrize("case", slow_except({"fwd1"}, [pytest.param(c, id=f"fwd{i}") for i, c in enumerate(FORWARD)]))
@pytest.mark.parametrize("threads", [pytest.param(1, marks=slow), 2])
def test_conv_with_runtime_weights_runs_on_conv_gemm(case, threads):
    xs, ws, st, pads, dil, group = case
    g = _graph("conv", xs, ws, dict(strides=st, pads=pads, dilations=dil, group=group))
    _check(g, [_f32(*xs), _f32(*ws, seed=1)], ["pack_conv_weights", "conv_gemm"], threads)


# (x, w, strides, pads, dilations, group, output_padding, lowered op)
TRANSPOSES = [
    ((2, 16, 12, 12), (16, 12, 3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 1, (0, 0), "conv_gemm"),
    ((2, 16, 12, 12), (16, 10, 3, 3), (1, 1), (0, 1, 2, 1), (2, 1), 2, (0, 0), "conv_gemm"),
    ((3, 32, 8, 8), (32, 16, 3, 3), (2, 2), (1, 1, 1, 1), (1, 1), 1, (1, 1), "conv_transpose_gemm"),
    ((3, 32, 8, 8), (32, 16, 1, 1), (2, 2), (0, 0, 0, 0), (1, 1), 1, (1, 1), "conv_transpose_gemm"),
    ((3, 16, 7, 5), (16, 5, 3, 2), (2, 3), (1, 0, 2, 1), (2, 1), 2, (1, 0), "conv_transpose_gemm"),
    ((4, 16, 5, 5), (16, 8, 3, 3), (2, 2), (1, 1, 1, 1), (1, 1), 1, (1, 1), "conv_transpose_gemm"),  # per-thread images
]


@pytest.mark.parametrize("case", slow_except({"tr1", "tr4", "tr5"}, [pytest.param(c, id=f"tr{i}")
                                                      for i, c in enumerate(TRANSPOSES)]))
@pytest.mark.parametrize("threads", [pytest.param(1, marks=slow), 2])
@pytest.mark.parametrize("bias", [pytest.param(False, marks=slow), True])
def test_conv_transpose_on_the_gemm_engine(case, threads, bias):
    xs, ws, st, pads, dil, group, opad, op = case
    attrs = dict(strides=st, pads=pads, dilations=dil, group=group, output_padding=opad)
    m = ws[1] * group
    if bias:
        attrs["_bias"] = m
    g = _graph("conv_transpose", xs, ws, attrs, bias=bias)
    inputs = [_f32(*xs), _f32(*ws, seed=1)] + ([_f32(m, seed=2)] if bias else [])
    _check(g, inputs, ["pack_conv_weights", op], threads)


def test_constant_weights_are_packed_at_compile_time():
    b = GraphBuilder("c")
    x = b.input("x", (2, 16, 8, 8))
    g = b.build(b.op("conv_transpose", x, b.param("w", _f32(16, 4, 3, 3)), strides=(2, 2), pads=(1, 1, 1, 1),
                     output_padding=(1, 1)))
    _check(g, [_f32(2, 16, 8, 8)], ["conv_transpose_gemm"])


@pytest.mark.parametrize("layout", ["conv", "flipped", "taps"])
def test_pack_conv_weights_kernel_and_layouts(layout):
    w = _f32(6, 5, 3, 2)
    g = one_op_graph("pack_conv_weights", [TensorType(w.shape, DType.f32)], dict(mr=4, group=2, layout=layout))
    got = assert_matches_interp(g, [w])[0]
    # The layouts as the ops that read them define them: each group's matrix, packed in panels.
    mats = conv_weight_matrices(w, 2, layout)
    for grp, mat in enumerate(mats):
        np.testing.assert_array_equal(unpack_panels(got[grp], mat.shape[0]), mat)
        np.testing.assert_array_equal(got[grp], pack_panels(mat, 4))
    if layout == "flipped":  # W_0[m, (c, dy, dx)] = w[c, m, kh-1-dy, kw-1-dx]
        assert mats[0][4, 2 * 6 + 0 * 2 + 1] == w[2, 4, 2, 0]
    if layout == "taps":  # W_1[(m, dy, dx), c] = w[3 + c, m, dy, dx]
        assert mats[1][(4 * 3 + 1) * 2 + 1, 2] == w[5, 4, 1, 1]


def test_conv_transpose_gemm_reference_is_conv_transpose():
    x, w, bias = _f32(2, 6, 5, 4), _f32(6, 3, 3, 3, seed=1), _f32(6, seed=2)
    attrs = dict(strides=(2, 1), pads=(1, 0, 0, 1), dilations=(1, 2), group=2, output_padding=(1, 0))
    wp = get_op("pack_conv_weights").reference(w, mr=4, group=2, layout="taps")
    got = get_op("conv_transpose_gemm").reference(x, wp, bias, kernel_shape=(3, 3), cout=6, **attrs)
    want = get_op("conv_transpose").reference(x, w, bias, **attrs)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("op, xs, ws, attrs, expected", [
    # depthwise and thin convolutions keep the direct kernel (im2col would copy for little GEMM work)
    ("conv", (2, 8, 10, 10), (8, 1, 3, 3), dict(group=8), "conv_fused"),
    ("conv", (2, 2, 10, 10), (4, 2, 1, 1), {}, "conv_fused"),
    # a depthwise weight gradient still reduces along its window
    ("conv", (1, 16, 12, 12), (8, 2, 10, 10), dict(group=8), "conv_dot"),
    ("conv_transpose", (2, 8, 6, 6), (8, 1, 3, 3), dict(group=8, strides=(2, 2)), "conv_transpose"),
    ("conv_transpose", (2, 4, 6, 6), (4, 16, 3, 3), dict(strides=(2, 2)), "conv_transpose"),
])
def test_lowering_rules(op, xs, ws, attrs, expected):
    g = _graph(op, xs, ws, dict(attrs))
    assert _lowered_ops(g)[-1] == expected
