"""flush_denormals: on by default, denormal results become zero; with ftz=False they survive.
The caller's floating-point state is restored after every run."""

import numpy as np

import irc
from irc.ir import GraphBuilder

TINY = np.float32(1e-39)  # below float32's smallest normal (1.18e-38): a denormal


def _graph():
    b = GraphBuilder("denorm")
    x = b.input("x", (64,))
    scale = b.param("scale", np.full(64, 0.5, np.float32))
    return b.build(b.op("mul", x, scale))


def test_denormals_flushed_by_default():
    m = irc.compile(_graph(), target="cpu")
    assert m.graph.meta["flush_denormals"] is True
    y = m(np.full(64, 4e-38, np.float32))  # 2e-38 is normal... and
    assert np.all(y == np.float32(2e-38))
    y = m(np.full(64, TINY, np.float32))  # a denormal input is read as zero (DAZ)
    assert np.all(y == 0)


def test_denormals_kept_without_ftz():
    m = irc.compile(_graph(), target="cpu", ftz=False)
    assert "flush_denormals" not in m.graph.meta
    y = m(np.full(64, TINY, np.float32))
    np.testing.assert_array_equal(y, np.full(64, TINY * np.float32(0.5), np.float32))
    assert y[0] != 0


def test_callers_floating_point_state_is_restored():
    m = irc.compile(_graph(), target="cpu")
    m(np.full(64, TINY, np.float32))
    # numpy in this thread still produces denormals: MXCSR came back unchanged.
    assert np.float32(TINY) * np.float32(0.5) != 0


def test_flush_in_pool_threads_too():
    b = GraphBuilder("big")
    x = b.input("x", (1 << 18,))
    g = b.build(b.op("mul", x, b.param("s", np.float32(0.5))))
    m = irc.compile(g, target="cpu", threads=2)
    y = m(np.full(1 << 18, TINY, np.float32))
    assert not y.any()


def test_pool_threads_started_by_a_flushing_model_do_not_flush_for_others():
    """Workers inherit their creator's MXCSR: the first parallel run of a process, an FTZ model
    in mid-run, must not leave them flushing for a later model compiled with ftz=False (a fresh
    process, so that run is the one that starts the pool)."""
    code = """
import numpy as np, irc
from irc.ir import GraphBuilder
def graph():
    b = GraphBuilder("big")
    x = b.input("x", (1 << 18,))
    return b.build(b.op("mul", x, b.param("s", np.float32(0.5))))
tiny = np.full(1 << 18, 1e-39, np.float32)
assert not irc.compile(graph(), target="cpu", threads=2)(tiny).any()
y = irc.compile(graph(), target="cpu", threads=2, ftz=False)(tiny)
assert (y == tiny * np.float32(0.5)).all(), int((y == 0).sum())
"""
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=240)
    assert r.returncode == 0, r.stderr[-2000:]
