"""Wrong inputs at run time are InputErrors raised before native code runs."""

import numpy as np
import pytest

import irc
from irc.errors import InputError
from irc.ir import GraphBuilder


@pytest.fixture(scope="module")
def model():
    b = GraphBuilder("g")
    x = b.input("x", (2, 3))
    return irc.compile(b.build(b.op("exp", x)), target="cpu")


@pytest.mark.parametrize(
    "arg, msg",
    [
        (np.zeros((2,), np.float32), "shape \\[2\\]; expected \\[2, 3\\]"),
        (np.zeros((2, 4), np.float32), "shape \\[2, 4\\]"),
        (np.zeros((2, 3), np.int64), "dtype int64; expected f32"),
        (np.zeros((2, 3), np.float64), "dtype float64"),
        (None, "is None"),
        ({"a": 1}, "is a dict"),
    ],
)
def test_wrong_input(model, arg, msg):
    with pytest.raises(InputError, match=msg):
        model(arg)


def test_non_contiguous_and_lossless_inputs_work(model):
    base = np.arange(12, dtype=np.float32).reshape(2, 6) / 10
    np.testing.assert_allclose(model(base[:, ::2]), np.exp(base[:, ::2]), rtol=1e-6)
    np.testing.assert_allclose(model(np.ones((2, 3), np.int8)), np.full((2, 3), np.e, np.float32), rtol=1e-6)


def test_input_count_and_names(model):
    x = np.ones((2, 3), np.float32)
    with pytest.raises(InputError, match="got 2 input"):
        model(x, x)
    with pytest.raises(InputError):
        model()
    np.testing.assert_allclose(model(x=x), np.exp(x), rtol=1e-6)
    with pytest.raises(InputError, match="positionally or by name"):
        model(x, x=x)


def test_working_memory_beyond_the_machines_ram_is_refused_before_allocating(monkeypatch):
    """The arena's pages are committed only when touched: allocating one larger than RAM would
    succeed and the first run be killed by the OS. Here RAM is made 64 KiB; a chain of 128 KiB
    intermediates needs more."""
    from irc.targets.cpu import runtime

    def graph():
        b = GraphBuilder("big")
        x = b.input("x", (256, 128))
        w = b.param("w", np.eye(128, dtype=np.float32))
        return b.build(b.op("matmul", b.op("matmul", b.op("exp", x), w), w))

    monkeypatch.setattr(runtime, "physical_memory_bytes", lambda: 64 << 10)
    with pytest.raises(InputError, match=r"graph 'big' needs .* of working memory .* more than this machine's 64 KiB"):
        irc.compile(graph(), target="cpu", cache=False)
    monkeypatch.setattr(runtime, "physical_memory_bytes", lambda: 1 << 40)
    m = irc.compile(graph(), target="cpu", cache=False)
    assert m.executable.plan.arena_bytes > 64 << 10
    np.testing.assert_allclose(m(np.zeros((256, 128), np.float32)), 1.0, rtol=1e-6)
