"""irc.trace: traced functions give the graphs numpy would compute, and errors say why."""

from __future__ import annotations

import numpy as np
import pytest

import irc
import irc.frontend.trace as T
from irc.errors import ModelError
from irc.ir.interp import interpret


def _run(fn, *xs):
    g = irc.trace(fn, *xs)
    return interpret(g, list(xs)), fn


def test_numpy_like_operations_match_numpy():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 4)).astype(np.float32)
    w = rng.standard_normal((4, 5)).astype(np.float32)

    def f(x):
        h = np.maximum(x @ w + 1.0, 0) * 2 - 0.5
        return (h / 3, np.exp(-abs(h)).sum(axis=1), h.T[1:, ::2], h.reshape(5, 3).mean(axis=0, keepdims=True),
                np.tanh(h)[None, :, 2], np.concatenate([h, h], axis=0).max(axis=0), np.where(h > 1, h, 0.0),
                h.argmax(axis=1), np.sqrt(h * h + 1) ** 2.0, 1 - h, np.transpose(h, (1, 0)))

    got = interpret(irc.trace(f, x), [x])
    h = np.maximum(x @ w + 1.0, 0) * 2 - 0.5
    want = (h / 3, np.exp(-abs(h)).sum(axis=1), h.T[1:, ::2], h.reshape(5, 3).mean(axis=0, keepdims=True),
            np.tanh(h)[None, :, 2], np.concatenate([h, h], axis=0).max(axis=0), np.where(h > 1, h, 0.0),
            h.argmax(axis=1), np.sqrt(h * h + 1) ** 2.0, 1 - h, h.T)
    assert len(got) == len(want)
    for a, b in zip(got, want):
        assert a.shape == b.shape
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_constants_take_the_tensor_type_and_are_shared():
    g = irc.trace(lambda x: x * 2 + 2, np.zeros(3, np.float32))
    assert {str(v.type) for v in g.params} == {"f32[]"}
    assert len(g.params) == 1  # the scalar 2 is made once
    gi = irc.trace(lambda i: i + 1, np.zeros(3, np.int64))
    assert [str(v.type) for v in gi.params] == ["i64[]"]


def test_trace_named_inputs_and_nn_functions():
    x = np.random.default_rng(1).standard_normal((2, 6)).astype(np.float32)
    g = T.trace(lambda a, b: T.softmax(a + b, axis=-1), x, x, input_names=["a", "b"], name="pair")
    assert g.name == "pair" and [v.name for v in g.inputs] == ["a", "b"]
    e = np.exp(2 * x - (2 * x).max(axis=-1, keepdims=True))
    np.testing.assert_allclose(interpret(g, [x, x])[0], e / e.sum(-1, keepdims=True), rtol=1e-6)


def test_errors_name_the_problem():
    with pytest.raises(ModelError, match="no truth value"):
        irc.trace(lambda x: x if x > 0 else -x, np.zeros(2, np.float32))
    with pytest.raises(ModelError, match="cannot become a numpy array"):
        irc.trace(lambda x: np.asarray(x), np.zeros(2, np.float32))
    with pytest.raises(irc.IRCError, match=r"matmul.*inner dimensions differ"):
        irc.trace(lambda x: x @ np.ones((3, 2), np.float32), np.zeros((2, 2), np.float32))
