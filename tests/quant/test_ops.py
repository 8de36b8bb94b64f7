"""Quantization ops: references against brute-force Python-int loops (bit for bit) and against
onnxruntime's QuantizeLinear, DequantizeLinear, ConvInteger, MatMulInteger and QLinearConv."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from irc.errors import ShapeError
from irc.ir import quant_arith as qa
from irc.ir.builder import GraphBuilder
from irc.ir.interp import interpret
from irc.ir.types import DType
from tests.support.oracle import ort_run

RNG = np.random.default_rng(7)


def _rand_q(shape, dt, rng=RNG):
    lo, hi = qa.qrange(dt)
    return rng.integers(lo, hi + 1, shape).astype(dt.numpy)


def _requant_py(acc, m0, shift, zp, lo, hi):
    return min(max(((acc * m0 + (1 << (shift - 1))) >> shift) + zp, lo), hi)


def _brute_qconv(x, w, bias, m0, shift, zx, zy, lo, hi, stride, pad, group):
    n, c, h, wd = x.shape
    m, cg, kh, kw = w.shape
    oh = (h + 2 * pad - kh) // stride + 1
    ow = (wd + 2 * pad - kw) // stride + 1
    y = np.zeros((n, m, oh, ow), np.int64)
    mg = m // group
    for b, o, i, j in itertools.product(range(n), range(m), range(oh), range(ow)):
        g = o // mg
        acc = int(bias[o])
        for ci, dy, dx in itertools.product(range(cg), range(kh), range(kw)):
            yy, xx = i * stride - pad + dy, j * stride - pad + dx
            v = int(x[b, g * cg + ci, yy, xx]) if 0 <= yy < h and 0 <= xx < wd else zx
            acc += (v - zx) * int(w[o, ci, dy, dx])
        y[b, o, i, j] = _requant_py(acc, int(m0[o]), int(shift[o]), zy, lo, hi)
    return y


@pytest.mark.parametrize("xdt, group, stride, pad", [(DType.u8, 1, 1, 1), (DType.i8, 2, 2, 1), (DType.u8, 4, 1, 0)])
def test_qconv_matches_brute_force(xdt, group, stride, pad):
    x = _rand_q((2, 4, 6, 5), xdt)
    w = _rand_q((8, 4 // group, 3, 3), DType.i8)
    bias = RNG.integers(-5000, 5000, 8).astype(np.int32)
    m0, shift = qa.quantize_multipliers(RNG.uniform(1e-4, 2e-3, 8))
    zx = 17 if xdt is DType.u8 else -3
    b = GraphBuilder()
    xv = b.input("x", x.shape, xdt)
    y = b.op("qconv", xv, *(b.param(n, a) for n, a in (("w", w), ("b", bias), ("m", m0), ("s", shift))),
             strides=(stride, stride), pads=(pad,) * 4, group=group, x_zero_point=zx, y_zero_point=5,
             y_dtype=DType.u8, y_min=5, y_max=250)
    got = interpret(b.build(y), [x])[0]
    want = _brute_qconv(x, w, bias, m0, shift, zx, 5, 5, 250, stride, pad, group)
    assert got.dtype == np.uint8 and np.array_equal(got.astype(np.int64), want)


def test_qgemm_and_qadd_match_python_ints():
    a = _rand_q((3, 37), DType.i8)
    w = _rand_q((37, 5), DType.i8)
    bias = RNG.integers(-100, 100, 5).astype(np.int32)
    m0, shift = qa.quantize_multipliers(RNG.uniform(1e-3, 1e-2, 5))
    b = GraphBuilder()
    av = b.input("a", a.shape, DType.i8)
    y = b.op("qgemm", av, b.param("w", w), b.param("b", bias), b.param("m", m0), b.param("s", shift),
             a_zero_point=-4, y_zero_point=0, y_dtype=DType.i8, y_min=-128, y_max=127)
    got = interpret(b.build(y), [a])[0]
    for i, j in itertools.product(range(3), range(5)):
        acc = sum((int(a[i, k]) + 4) * int(w[k, j]) for k in range(37)) + int(bias[j])
        assert got[i, j] == _requant_py(acc, int(m0[j]), int(shift[j]), 0, -128, 127)

    p, q = _rand_q((2, 3, 4), DType.u8), _rand_q((2, 3, 4), DType.u8)
    ka, kb, m, s = qa.add_multipliers(0.05, 0.02, 0.06)
    b = GraphBuilder()
    pv, qv = b.input("p", p.shape, DType.u8), b.input("q", q.shape, DType.u8)
    y = b.op("qadd", pv, qv, a_zero_point=10, b_zero_point=128, a_mult=ka, b_mult=kb, multiplier=m, shift=s,
             y_zero_point=3, y_dtype=DType.u8, y_min=3, y_max=255)
    got = interpret(b.build(y), [p, q])[0]
    want = [_requant_py(ka * (int(u) - 10) + kb * (int(v) - 128), m, s, 3, 3, 255) for u, v in zip(p.flat, q.flat)]
    assert got.reshape(-1).tolist() == want
    real = np.maximum(0.05 * (p.astype(float) - 10) + 0.02 * (q.astype(float) - 128), 0) / 0.06 + 3
    assert np.abs(got - np.minimum(real, 255)).max() <= 1.0


def test_qglobal_average_pool():
    x = _rand_q((2, 3, 5, 5), DType.u8)
    m, s = qa.quantize_multiplier(0.1 / (0.2 * 25))
    b = GraphBuilder()
    y = b.op("qglobal_average_pool", b.input("x", x.shape, DType.u8), x_zero_point=7, multiplier=m, shift=s,
             y_zero_point=1, y_dtype=DType.u8, y_min=0, y_max=255)
    got = interpret(b.build(y), [x])[0]
    assert got.shape == (2, 3, 1, 1)
    sums = (x.astype(np.int64) - 7).sum(axis=(2, 3))
    want = [_requant_py(int(v), m, s, 1, 0, 255) for v in sums.flat]
    assert got.reshape(-1).tolist() == want


def _onnx_one(op, inputs, inits, out_type, out_shape, **attrs):
    names = [f"in{i}" if a is not None else "" for i, a in enumerate(inputs)]
    graph_inputs = [helper.make_tensor_value_info(names[0], helper.np_dtype_to_tensor_dtype(inputs[0].dtype),
                                                  list(inputs[0].shape))]
    init = [numpy_helper.from_array(a, names[i]) for i, a in enumerate(inputs) if i > 0 and a is not None]
    node = helper.make_node(op, names, ["y"], **attrs)
    g = helper.make_graph([node], "t", graph_inputs, [helper.make_tensor_value_info("y", out_type, out_shape)],
                          initializer=init)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 19)])


def _irc_one(op, inputs, **attrs):
    b = GraphBuilder()
    vals = [b.input("x", inputs[0].shape, DType.from_numpy(inputs[0].dtype))]
    vals += [b.param(f"p{i}", a) for i, a in enumerate(inputs[1:]) if a is not None]
    y = b.op(op, *vals, **attrs)
    return interpret(b.build(y), [inputs[0]])[0]


@pytest.mark.parametrize("dt", [DType.u8, DType.i8])
def test_quantize_dequantize_match_onnxruntime(dt):
    x = (RNG.standard_normal((2, 3, 4)) * 3).astype(np.float32)
    x[0, 0, :3] = [0.25, 0.75, -0.25]  # ties: round half to even
    scale = np.array([0.5, 0.02, 0.1], np.float32)
    zp = np.array([10, 0, -3] if dt is DType.i8 else [10, 0, 200], dt.numpy)
    onnx_dt = TensorProto.UINT8 if dt is DType.u8 else TensorProto.INT8
    for s, z, axis in ((np.float32(0.05), zp[0], 1), (scale, zp, 1)):
        want = ort_run(_onnx_one("QuantizeLinear", [x, np.asarray(s), np.asarray(z)], None, onnx_dt, [2, 3, 4],
                                 axis=axis), {"in0": x})[0]
        got = _irc_one("quantize_linear", [x, np.asarray(s, np.float32), np.asarray(z)], axis=axis)
        assert np.array_equal(got, want)
        back = ort_run(_onnx_one("DequantizeLinear", [want, np.asarray(s), np.asarray(z)], None, TensorProto.FLOAT,
                                 [2, 3, 4], axis=axis), {"in0": want})[0]
        assert np.array_equal(_irc_one("dequantize_linear", [want, np.asarray(s, np.float32), np.asarray(z)],
                                       axis=axis), back)


def _conv_integer_exact(x, w, xz, wz, group, pad, stride):
    """ConvInteger in int64, as ONNX specifies it: (x - xz) * (w - wz), padding with xz."""
    xs = np.pad(x.astype(np.int64) - int(xz), ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    ws = w.astype(np.int64) - int(wz)
    n, c, h, wd = xs.shape
    m, cg, kh, kw = ws.shape
    oh, ow = (h - kh) // stride + 1, (wd - kw) // stride + 1
    y = np.zeros((n, m, oh, ow), np.int64)
    mg = m // group
    for o, i, j in itertools.product(range(m), range(oh), range(ow)):
        g = o // mg
        patch = xs[:, g * cg:(g + 1) * cg, i * stride:i * stride + kh, j * stride:j * stride + kw]
        y[:, o, i, j] = (patch * ws[o]).sum(axis=(1, 2, 3))
    return y


def test_conv_integer_is_the_exact_integer_convolution():
    # The oracle is the exact product in int64 (onnxruntime's integer kernels are exact only where
    # no int16 pair sum saturates, which depends on the CPU's kernel); onnxruntime is compared on
    # inputs small enough for any of its kernels.
    x = _rand_q((1, 4, 7, 7), DType.u8)
    w = _rand_q((6, 2, 3, 3), DType.u8)
    xz, wz = np.array(100, np.uint8), np.array(128, np.uint8)
    got = _irc_one("conv_integer", [x, w, xz, wz], group=2, pads=(1, 1, 1, 1), strides=(2, 2))
    assert np.array_equal(got, _conv_integer_exact(x, w, xz, wz, group=2, pad=1, stride=2))
    small_x = (x % 61).astype(np.uint8)
    small_w = (128 + w.astype(np.int16) % 29 - 14).astype(np.uint8)
    xz = np.array(30, np.uint8)
    model = _onnx_one("ConvInteger", [small_x, small_w, xz, wz], None, TensorProto.INT32, [1, 6, 4, 4], group=2,
                      pads=[1, 1, 1, 1], strides=[2, 2])
    got = _irc_one("conv_integer", [small_x, small_w, xz, wz], group=2, pads=(1, 1, 1, 1), strides=(2, 2))
    assert np.array_equal(got, _conv_integer_exact(small_x, small_w, xz, wz, group=2, pad=1, stride=2))
    assert np.array_equal(got, ort_run(model, {"in0": small_x})[0])


def test_matmul_integer_is_the_exact_integer_product():
    # u8 x i8 with values up to 255 x 127: onnxruntime's AVX2 kernel (vpmaddubsw) saturates the
    # int16 sum of each pair of products and is off by thousands on such inputs, so the oracle
    # here is the exact product in int64, which ONNX specifies.
    a, bm = _rand_q((5, 33), DType.u8), _rand_q((33, 4), DType.i8)
    az, bz = np.array(3, np.uint8), np.array([1, -2, 0, 5], np.int8)
    want = (a.astype(np.int64) - 3) @ (bm.astype(np.int64) - bz.astype(np.int64))
    assert np.array_equal(_irc_one("matmul_integer", [a, bm, az, bz]), want)
    small = np.minimum(a, 60).astype(np.uint8)  # pair sums stay inside int16: onnxruntime is exact too
    model = _onnx_one("MatMulInteger", [small, bm, az, bz], None, TensorProto.INT32, [5, 4])
    assert np.array_equal(_irc_one("matmul_integer", [small, bm, az, bz]), ort_run(model, {"in0": small})[0])


def test_bad_qconv_is_a_shape_error():
    b = GraphBuilder()
    x = b.input("x", (1, 4, 5, 5), DType.u8)
    w = b.param("w", np.zeros((8, 4, 3, 3), np.int8))
    ones = b.param("o", np.ones(8, np.int32))
    with pytest.raises(ShapeError, match="saturation bounds"):
        b.op("qconv", x, w, ones, ones, ones, y_min=10, y_max=5)
    with pytest.raises(ShapeError, match="w must be i8"):
        b.op("qconv", x, b.param("wu", np.zeros((8, 4, 3, 3), np.uint8)), ones, ones, ones, y_min=0, y_max=255)
    with pytest.raises(ShapeError, match="one per output channel"):
        b.op("qconv", x, w, b.param("short", np.ones(4, np.int32)), ones, ones, y_min=0, y_max=255)
    with pytest.raises(ShapeError, match="x_zero_point 300"):
        b.op("qconv", x, w, ones, ones, ones, x_zero_point=300, y_min=0, y_max=255)
