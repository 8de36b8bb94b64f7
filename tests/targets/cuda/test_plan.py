"""The launch plan against the memory plan, without a GPU: every argument where the memory plan
put its value and inside its region, no two live buffers sharing bytes, every read after its
write, grids covering outputs; and the checker itself catches each kind of broken plan."""

from __future__ import annotations

import dataclasses
import functools

import pytest

import irc
from irc import zoo
from irc.errors import TargetError
from irc.targets.cuda.arch import get_arch
from irc.targets.cuda.codegen import generate, memory_plan_for_cuda
from irc.targets.cuda.plan import ArgRef, LaunchPlan, check_plan

#: (the two large models, compiled once per session for every test that uses them, are slow)
MODELS = [pytest.param("resnet18", 1, marks=pytest.mark.slow), pytest.param("mobilenet_v2", 1, marks=pytest.mark.slow),
          ("lenet5", 4), ("mlp", 100)]


@functools.cache
def compiled(name: str, batch: int):
    g = irc.compile(zoo.build(name, batch=batch), target="cuda", arch="sm_80").graph
    return g, generate(g, get_arch("sm_80"), emit=False)  # the plan needs no PTX


@pytest.mark.parametrize("name,batch", MODELS)
def test_plan_is_consistent(name, batch):
    g, code = compiled(name, batch)
    check_plan(code.plan)
    mem = memory_plan_for_cuda(g)
    assert code.plan.arena_bytes == mem.arena_bytes and code.plan.weights_bytes == mem.weights_bytes
    values = {v.name: v for v in g.values()}
    for s in code.plan.steps:
        for a in s.args:
            loc = mem.where(values[a.value])
            assert (a.region, a.index, a.offset) == (loc.kind, loc.index, loc.offset)
            assert a.nbytes == values[a.value].type.nbytes
    # every node that is not a view of its input runs exactly one launch
    assert len(code.plan.steps) == len(g.nodes) - len(mem.views)


@pytest.mark.parametrize("name,batch", MODELS)
def test_grids_cover_outputs(name, batch):
    """Per step, the grid times what one block covers reaches every output element."""
    g, code = compiled(name, batch)
    for s in code.plan.steps:
        out_elems = sum(a.nbytes for a in s.args[: s.n_outputs])
        assert s.cover, s.kernel
        covered = 1
        for axis, (extent, per_block) in enumerate(s.cover):
            if per_block:
                assert s.grid[axis] * per_block >= extent
            covered *= extent
        assert covered > 0 and out_elems > 0


@pytest.mark.slow
def test_identical_kernels_are_shared():
    g, code = compiled("resnet18", 1)
    assert len(code.plan.kernels) < len(code.plan.steps)


def test_json_round_trip():
    _, code = compiled("lenet5", 4)
    back = LaunchPlan.from_json(code.plan.to_json())
    assert back == code.plan


def _broken(plan: LaunchPlan, **changes) -> LaunchPlan:
    return dataclasses.replace(plan, **changes)


def test_checker_rejects_broken_plans():
    _, code = compiled("lenet5", 4)
    p = code.plan
    # an argument past the end of the arena
    s0 = p.steps[1]
    bad_arg = dataclasses.replace(s0.args[0], offset=p.arena_bytes)
    steps = list(p.steps)
    steps[1] = dataclasses.replace(s0, args=(bad_arg, *s0.args[1:]))
    with pytest.raises(TargetError, match="outside"):
        check_plan(_broken(p, steps=steps))
    # two values live at once on the same bytes
    names = sorted(p.buffers)
    a, b = names[0], names[1]
    bufs = dict(p.buffers)
    bufs[b] = (bufs[a][0], bufs[b][1], bufs[a][2], bufs[a][3])
    with pytest.raises(TargetError, match="share bytes"):
        check_plan(_broken(p, buffers=bufs, aliases=[]))
    # a grid too small for its output
    steps = list(p.steps)
    s = next(x for x in steps if any(pb for _, pb in x.cover))
    i = steps.index(s)
    axis = next(ax for ax, (_, pb) in enumerate(s.cover) if pb)
    grid = list(s.grid)
    grid[axis] = max(1, grid[axis] - 1) if grid[axis] > 1 else 1
    cover = list(s.cover)
    cover[axis] = (cover[axis][0] + cover[axis][1] * grid[axis], cover[axis][1])
    steps[i] = dataclasses.replace(s, grid=tuple(grid), cover=tuple(cover))
    with pytest.raises(TargetError, match="covers"):
        check_plan(_broken(p, steps=steps))
    # a step reading an arena value no earlier step wrote
    steps = list(p.steps)
    reader = next(x for x in steps[1:] if any(a.region == "arena" for a in x.args[x.n_outputs:]))
    j = steps.index(reader)
    steps[0], steps[j] = steps[j], steps[0]
    with pytest.raises(TargetError, match="before any step writes it"):
        check_plan(_broken(p, steps=steps))
    # block larger than CUDA allows
    steps = list(p.steps)
    steps[0] = dataclasses.replace(steps[0], block=(2048, 1, 1))
    with pytest.raises(TargetError, match="limits"):
        check_plan(_broken(p, steps=steps))


@pytest.mark.slow
def test_arena_is_reused():
    """The liveness-based plan: ResNet-18's arena is far below the sum of its activations."""
    g, code = compiled("resnet18", 1)
    total = sum(n.outputs[0].type.nbytes for n in g.nodes if n.outputs[0] not in g.outputs)
    assert code.plan.arena_bytes < total / 2
    assert code.plan.peak_live_bytes <= code.plan.arena_bytes


@pytest.mark.slow
def test_args_are_aligned_for_vector_access():
    _, code = compiled("mobilenet_v2", 1)
    for s in code.plan.steps:
        for a in s.args:
            if a.region in ("arena", "param"):
                assert a.offset % 64 == 0


def test_argref_fields():
    a = ArgRef("arena", -1, 64, 128, "v")
    assert (a.region, a.offset, a.nbytes) == ("arena", 64, 128)
