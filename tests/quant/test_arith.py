"""The integer arithmetic contract (irc.ir.quant_arith) against a pure-Python reference:
requantize, rounding and saturation bit for bit, and the fixed-point multiplier's accuracy."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from irc.errors import ShapeError
from irc.ir import quant_arith as qa
from irc.ir.types import DType

INT32 = st.integers(-(2**31), 2**31 - 1)
M0S = st.integers(0, 2**31 - 1)
SHIFTS = st.integers(1, 62)


def requantize_py(acc: int, m0: int, shift: int, zp: int, lo: int, hi: int) -> int:
    """The contract with Python's unbounded ints: round half up of acc*m0 / 2**shift, plus zp,
    clamped. Written with exact rationals, independently of shifts."""
    exact = Fraction(acc * m0, 2**shift)
    rounded = math.floor(exact + Fraction(1, 2))
    return min(max(rounded + zp, lo), hi)


@settings(max_examples=400, deadline=None)
@given(acc=INT32, m0=M0S, shift=SHIFTS, zp=st.integers(-128, 255),
       bounds=st.tuples(st.integers(-200, 300), st.integers(-200, 300)))
def test_requantize_matches_python_ints(acc, m0, shift, zp, bounds):
    lo, hi = min(bounds), max(bounds)
    got = qa.requantize(np.array([acc]), np.array([m0]), np.array([shift]), zp, lo, hi)
    assert int(got[0]) == requantize_py(acc, m0, shift, zp, lo, hi)


@settings(max_examples=60, deadline=None)
@given(accs=st.lists(INT32, min_size=1, max_size=64), m0=st.integers(2**30, 2**31 - 1), shift=st.integers(20, 40),
       zp=st.integers(0, 255))
def test_requantize_vectors_per_channel(accs, m0, shift, zp):
    acc = np.array(accs, np.int32).reshape(-1, 1)
    ms = np.full((len(accs), 1), m0, np.int32)
    ms[::2] = m0 - 1
    ss = np.full((len(accs), 1), shift, np.int32)
    got = qa.requantize(acc, ms, ss, zp, 0, 255)
    want = [requantize_py(int(a), int(m), int(s), zp, 0, 255) for a, m, s in zip(acc[:, 0], ms[:, 0], ss[:, 0])]
    assert got[:, 0].tolist() == want


def test_rounding_is_half_up():
    # acc * M0 / 2**shift = k + 1/2 exactly: ties go toward +infinity.
    m0, shift = 2**30, 31  # multiplier 1/2
    acc = np.array([5, -5, 3, -3, 1, -1], np.int64)
    assert qa.requantize(acc, m0, shift, 0, -100, 100).tolist() == [3, -2, 2, -1, 1, 0]


def test_saturation_and_relu_fold():
    m0, shift = 2**30, 30  # multiplier 1
    acc = np.array([-1000, -3, 0, 3, 1000])
    assert qa.requantize(acc, m0, shift, 10, 0, 255).tolist() == [0, 7, 10, 13, 255]
    lo, hi = qa.saturation_bounds(DType.u8, 0.1, 10, "relu")
    assert (lo, hi) == (10, 255)
    assert qa.requantize(acc, m0, shift, 10, lo, hi).tolist() == [10, 10, 10, 13, 255]
    assert qa.saturation_bounds(DType.i8, 0.05, 0, "clip", 0.0, 6.0) == (0, 120)


@settings(max_examples=300, deadline=None)
@given(st.floats(min_value=2**-31, max_value=2**29, allow_nan=False, allow_infinity=False))
def test_quantize_multiplier_normal_range(real):
    m0, shift = qa.quantize_multiplier(real)
    assert 2**30 <= m0 < 2**31 and 1 <= shift <= 62
    assert abs(m0 * 2.0**-shift - real) <= real * 2.0**-30


def test_quantize_multiplier_edges():
    assert qa.quantize_multiplier(0.0) == (0, 62)
    m0, shift = qa.quantize_multiplier(2.0**-40)
    assert shift == 62 and m0 == 2**22
    assert qa.quantize_multiplier(0.5) == (2**30, 31)
    assert qa.quantize_multiplier(1.0) == (2**30, 30)
    with pytest.raises(ShapeError):
        qa.quantize_multiplier(2.0**31)
    with pytest.raises(ShapeError):
        qa.quantize_multiplier(float("nan"))


@settings(max_examples=200, deadline=None)
@given(acc=INT32, real=st.floats(min_value=1e-6, max_value=4.0))
def test_requantize_approximates_real_product(acc, real):
    """With the multiplier from quantize_multiplier, requantize is round(acc * real) up to the
    multiplier's 2**-30 relative error (so off by at most one near a tie)."""
    m0, shift = qa.quantize_multiplier(real)
    got = int(qa.requantize(np.array([acc]), m0, shift, 0, -(2**40), 2**40)[0])
    assert abs(got - acc * real) <= 0.5 + abs(acc) * real * 2.0**-30 + 1e-9


def test_quantize_float_is_onnx_quantize_linear():
    x = np.array([-1.0, -0.25, 0.25, 0.75, 1.25, 100.0, -100.0, np.nan], np.float32)
    # round half to even: 0.25/0.5 = 0.5 -> 0, 0.75/0.5 = 1.5 -> 2, 1.25/0.5 = 2.5 -> 2
    assert qa.quantize_float(x, 0.5, 10, DType.u8).tolist() == [8, 10, 10, 12, 12, 210, 0, 10]
    assert qa.quantize_float(x, 0.5, 0, DType.i8).tolist() == [-2, 0, 0, 2, 2, 127, -128, 0]
    q = np.array([0, 10, 255], np.uint8)
    assert qa.dequantize(q, 0.5, 10).tolist() == [-5.0, 0.0, 122.5]


def test_choose_qparams_contains_zero_exactly():
    s, zp = qa.choose_qparams(0.5, 6.0, DType.u8)  # widened to [0, 6]
    assert zp == 0 and s == pytest.approx(6 / 255)
    s, zp = qa.choose_qparams(-1.0, 3.0, DType.u8)
    assert 0 < zp < 255 and qa.dequantize(np.array([zp]), s, zp)[0] == 0.0
    s, zp = qa.choose_qparams(-1.0, 3.0, DType.i8)
    assert zp == 0 and s == pytest.approx(3 / 127)


def test_quantize_weights_symmetric_per_channel():
    rng = np.random.default_rng(0)
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    w[2] = 0
    q, s = qa.quantize_weights(w)
    assert q.dtype == np.int8 and s.shape == (4,) and np.abs(q).max() == 127 and s[2] == 1
    err = np.abs(q * s.reshape(-1, 1, 1, 1) - w)
    assert (err <= s.reshape(-1, 1, 1, 1) / 2 + 1e-7).all()


@settings(max_examples=100, deadline=None)
@given(sa=st.floats(1e-4, 1.0), sb=st.floats(1e-4, 1.0), sy=st.floats(1e-3, 2.0),
       a=st.integers(-255, 255), b=st.integers(-255, 255))
def test_add_multipliers_close_to_real_sum(sa, sb, sy, a, b):
    ka, kb, m0, shift = qa.add_multipliers(sa, sb, sy)
    assert max(ka, kb) == 2**qa.ADD_BITS
    got = int(qa.requantize(np.array([ka * a + kb * b]), m0, shift, 0, -(2**40), 2**40)[0])
    exact = (sa * a + sb * b) / sy
    # The integer weights round sa/unit and sb/unit (half a unit each at most).
    unit = max(sa, sb) / 2**qa.ADD_BITS
    assert abs(got - exact) <= 0.5 + (abs(a) + abs(b)) * 0.5 * unit / sy + abs(exact) * 2.0**-29 + 1e-6
