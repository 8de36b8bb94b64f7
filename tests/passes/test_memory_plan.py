"""The memory planner: liveness packing, alignment, views, in-place reuse, scratch."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from irc.ir import GraphBuilder
from irc.passes.memory_plan import ALIGN, plan_memory


def _chain(n, size=1000):
    b = GraphBuilder("chain")
    x = b.input("x", (size,))
    v = x
    vals = []
    for _ in range(n):
        v = b.op("exp", v)
        vals.append(v)
    return b.build(v), vals


def test_chain_needs_two_buffers_without_inplace():
    g, vals = _chain(6)
    plan = plan_memory(g)
    arena_vals = vals[:-1]
    assert {plan.where(v).kind for v in arena_vals} == {"arena"}
    assert plan.where(vals[-1]).kind == "output"
    assert plan.arena_bytes == 2 * 4032  # 4000 bytes rounded up to 64, two alternating buffers
    assert len({plan.where(v).offset for v in arena_vals}) == 2


def test_chain_in_place_needs_one_buffer():
    g, vals = _chain(6)
    plan = plan_memory(g, inplace_inputs=lambda n: [0])
    assert plan.arena_bytes == 4032
    assert {plan.where(v).offset for v in vals[:-1]} == {0}


def test_without_reuse_every_value_has_bytes_of_its_own():
    """irc.CUDA's full_mem: five arena values, five buffers, even where in-place was allowed."""
    g, vals = _chain(6)
    plan = plan_memory(g, inplace_inputs=lambda n: [0], reuse=False)
    assert plan.arena_bytes == 5 * 4032
    assert len({plan.where(v).offset for v in vals[:-1]}) == 5


def test_inputs_are_never_overwritten_in_place():
    g, vals = _chain(1)
    b = GraphBuilder("g")
    x = b.input("x", (10,))
    y = b.op("exp", x)
    g = b.build(b.op("exp", y), y)
    plan = plan_memory(g, inplace_inputs=lambda n: [0])
    assert plan.where(x).kind == "input"
    assert plan.arena_bytes == 0  # y is a graph output: written to the caller's buffer


def test_value_used_later_is_not_overwritten():
    b = GraphBuilder("g")
    x = b.input("x", (16,))
    a = b.op("exp", x)
    c = b.op("neg", a)  # may not overwrite a: a is read again below
    g = b.build(b.op("add", a, c))
    plan = plan_memory(g, inplace_inputs=lambda n: [0])
    assert plan.where(a).offset != plan.where(c).offset


def test_views_share_bytes_and_skip_code():
    b = GraphBuilder("g")
    x = b.input("x", (4, 4))
    a = b.op("exp", x)
    v = b.op("identity", a)
    g = b.build(b.op("neg", v))
    plan = plan_memory(g, is_view=lambda n: n.op == "identity")
    assert plan.where(v) == plan.where(a)
    assert plan.views == {1}


def test_scratch_lives_for_its_node_only():
    g, vals = _chain(3)
    plan = plan_memory(g, scratch_bytes=lambda n: 100)
    assert set(plan.scratch) == {0, 1, 2}
    assert all(off % ALIGN == 0 for off in plan.scratch.values())


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 5000), st.integers(1, 14), st.data())
def test_live_buffers_never_overlap(size, n_nodes, data):
    """Random DAGs: any two values live at the same time occupy disjoint, aligned byte ranges
    (except an output written in place over an input that dies at that node)."""
    b = GraphBuilder("dag")
    vals = [b.input("x", (size,))]
    for _ in range(n_nodes):
        a, c = data.draw(st.sampled_from(vals)), data.draw(st.sampled_from(vals))
        vals.append(b.op("add", a, c) if data.draw(st.booleans()) else b.op("exp", a))
    g = b.build(vals[-1])
    plan = plan_memory(g, inplace_inputs=lambda n: [0])
    last = {}
    for i, n in enumerate(g.nodes):
        for v in n.inputs:
            last[v] = i
    live = []
    for i, n in enumerate(g.nodes):
        for v in n.outputs:
            loc = plan.where(v)
            if loc.kind == "arena":
                assert loc.offset % ALIGN == 0
                live.append((i, last.get(v, i), loc.offset, loc.offset + v.type.nbytes, v, n))
    for a in live:
        for c in live:
            if a is c or a[5] is c[5]:
                continue
            overlap_time = a[0] <= c[1] and c[0] <= a[1]
            overlap_space = a[2] < c[3] and c[2] < a[3]
            inplace = a[0] == c[1] or c[0] == a[1]  # one overwrote the other as it died
            assert not (overlap_time and overlap_space) or inplace
    assert plan.peak_live_bytes <= plan.arena_bytes or plan.arena_bytes == 0
    assert np.isfinite(plan.arena_bytes)
