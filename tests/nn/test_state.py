"""Graph state (irc.targets.state): state inputs bound by the executable, updated in place
where safe, double-buffered otherwise, never copied between runs."""

from __future__ import annotations

import numpy as np
import pytest

import irc
from irc.errors import InputError, ModelError
from irc.ir import GraphBuilder
from irc.ir.interp import interpret
from irc.targets.state import STATE_KEY, StatefulExecutable, in_place_safe, state_pairs


def _counter_graph(late_read: bool):
    """acc' = acc + x (state), returns (acc' * 2, acc'); optionally reads acc after the update."""
    b = GraphBuilder("counter")
    x = b.input("x", (4,))
    acc = b.input("acc", (4,))
    new = b.op("add", acc, x)
    out = b.op("mul", new, b.const(np.float32(2)))
    if late_read:
        out = b.op("add", out, acc)
    g = b.build(out, new)
    g.meta[STATE_KEY] = [(1, 1)]
    return g


class _OutExe:
    """An executable that honours out= (the way the CPU target does), over the interpreter."""

    def __init__(self, g):
        self.graph = g
        self.calls = 0

    def run(self, inputs, out=None):
        self.calls += 1
        res = interpret(self.graph, inputs)
        for o, r in zip(out, res):
            np.copyto(o, r)
        return list(out)


@pytest.mark.parametrize("late_read", [False, True])
def test_state_updates_in_place_or_double_buffers(late_read):
    g = _counter_graph(late_read)
    assert state_pairs(g) == [(1, 1)]
    assert in_place_safe(g, 1, 1) is (not late_read)
    exe = StatefulExecutable(_OutExe(g), {"acc": np.zeros(4, np.float32)})
    assert exe.data_inputs == [g.inputs[0]]
    buffers = set()
    x = np.arange(4, dtype=np.float32)
    for step in range(1, 4):
        out, live = exe.run([x])
        np.testing.assert_array_equal(live, step * x)
        np.testing.assert_array_equal(out, 2 * step * x + (late_read * (step - 1) * x))
        buffers.add(live.ctypes.data)
    # In place: one buffer for good. Double buffering: two, swapped (no third, no copy).
    assert len(buffers) == (2 if late_read else 1)
    assert exe.peek("acc").ctypes.data % 64 == 0
    np.testing.assert_array_equal(exe.state()["acc"], 3 * x)


def test_state_on_the_interpreter_and_set_state():
    g = _counter_graph(False)
    exe = StatefulExecutable(irc.compile(g, "interp").executable, {"acc": np.ones(4, np.float32)})
    exe.run([np.ones(4, np.float32)])
    np.testing.assert_array_equal(exe.state()["acc"], 2)
    exe.set_state({"acc": np.zeros(4, np.float32)})
    exe.run([np.ones(4, np.float32)])
    np.testing.assert_array_equal(exe.state()["acc"], 1)
    with pytest.raises(InputError, match="'bogus' is not a state value"):
        exe.set_state({"bogus": np.zeros(4)})
    with pytest.raises(InputError, match="got 2 input"):
        exe.run([np.ones(4), np.ones(4)])


def test_bad_state_marking_is_refused():
    g = _counter_graph(False)
    g.meta[STATE_KEY] = [(1, 0), (1, 1)]
    with pytest.raises(ModelError, match="paired twice"):
        state_pairs(g)
    g.meta[STATE_KEY] = [(0, 5)]
    with pytest.raises(ModelError, match="names no input/output"):
        state_pairs(g)
    with pytest.raises(InputError, match="no initial value for state acc"):
        g.meta[STATE_KEY] = [(1, 1)]
        StatefulExecutable(_OutExe(g), {})
