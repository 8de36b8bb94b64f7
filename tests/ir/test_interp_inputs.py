"""Run-time inputs are checked before anything runs: each wrong input is a clear InputError."""

import numpy as np
import pytest

from irc.errors import InputError
from irc.ir import GraphBuilder, interpret


def _g():
    b = GraphBuilder("g")
    x = b.input("x", (2, 3))
    return b.build(b.op("relu", x))


@pytest.mark.parametrize(
    "arg, msg",
    [
        (np.zeros((3, 2), np.float32), "shape \\[3, 2\\]; expected \\[2, 3\\]"),
        (np.zeros((2, 3, 1), np.float32), "shape"),
        (np.zeros((2, 3), np.float64), "dtype float64; expected f32"),
        (None, "is None"),
        ("text", "shape"),
        (object(), "is a object"),
    ],
)
def test_bad_inputs(arg, msg):
    with pytest.raises(InputError, match=msg):
        interpret(_g(), [arg])


def test_lossless_conversion_and_non_contiguous_inputs_are_accepted():
    g = _g()
    ints = np.arange(6, dtype=np.int16).reshape(2, 3) - 3
    np.testing.assert_array_equal(interpret(g, [ints])[0], np.maximum(ints, 0).astype(np.float32))
    strided = np.arange(12, dtype=np.float32).reshape(2, 6)[:, ::2]
    np.testing.assert_array_equal(interpret(g, [strided])[0], strided)


def test_inputs_by_name_and_count():
    g = _g()
    x = np.ones((2, 3), np.float32)
    assert interpret(g, {"x": x})[0].shape == (2, 3)
    with pytest.raises(InputError, match="missing input"):
        interpret(g, {})
    with pytest.raises(InputError, match="unknown input"):
        interpret(g, {"x": x, "y": x})
    with pytest.raises(InputError, match="got 2 input"):
        interpret(g, [x, x])
