"""Multi-GPU data parallelism: the planning parts (device mask, batch shares, sync schedule, the
memory report per level), checked without GPUs; running needs them (test_gpu-style skip)."""

from __future__ import annotations

import numpy as np
import pytest

import irc
from irc import zoo
from irc.errors import InputError
from irc.targets.cuda.multi import CUDA, MEM_LEVELS
from tests.targets.cuda.support import gpu_count


def test_mask_selects_gpus():
    assert CUDA(devices=[1, 0, 1, 0]).gpus == (0, 2)
    assert irc.CUDA(devices=[0, 1]).gpus == (1,)


@pytest.mark.parametrize("bad", [dict(devices=[]), dict(devices=[0, 0]), dict(devices=[2, 1]),
                                 dict(mem="tiny"), dict(sync_every=0), dict(sync_every=1.5)])
def test_bad_configurations_are_input_errors(bad):
    with pytest.raises(InputError):
        CUDA(**bad)


def test_batch_shares_are_even_and_cover_the_batch():
    c = CUDA(devices=[1, 1, 1])
    assert c.split(64) == (22, 21, 21)
    assert sum(c.split(7)) == 7
    with pytest.raises(InputError, match="smaller than"):
        c.split(2)


def test_sync_schedule_every_k_and_at_the_end():
    assert CUDA(sync_every=1).sync_schedule(3) == [1, 2, 3]
    assert CUDA(sync_every=4).sync_schedule(10) == [4, 8, 10]
    assert CUDA(sync_every=4).sync_schedule(8) == [4, 8]
    assert CUDA(devices=[1, 1, 1, 1]).sync_bytes(1000) == 1500
    assert CUDA(devices=[1]).sync_bytes(1000) == 0


def test_memory_levels_order_and_scale():
    model = zoo.build("small_resnet", batch=None)
    r = CUDA(devices=[1, 1]).memory_report(model, batch=8)
    assert r.shares == (4, 4)
    full, mid, low = (r.total(lv) for lv in MEM_LEVELS)
    assert full > mid > low
    b = {lv: r.levels[lv][0] for lv in MEM_LEVELS}
    assert len({x.weights for x in b.values()}) == 1  # weights at every level
    # low_mem is the batch-1 arena: a share of 4 needs about 4x its activations at mid_mem
    assert b["mid_mem"].activations >= 3 * b["low_mem"].activations
    assert "full_mem" in r.table() and r.fits("low_mem", low) and not r.fits("full_mem", mid)


def test_full_mem_is_the_plan_the_cuda_target_runs_with_mem_full_mem():
    """The report's full_mem figure is the arena a copy compiled with mem="full_mem" allocates."""
    model = zoo.build("lenet5", batch=None)
    shapes = {"input": (4, 1, 28, 28)}
    full = irc.compile(model, target="cuda", arch="sm_80", shapes=shapes, mem="full_mem").executable
    mid = irc.compile(model, target="cuda", arch="sm_80", shapes=shapes).executable
    r = CUDA(mem="full_mem").memory_report(model, batch=4)
    assert r.levels["full_mem"][0].activations == full.plan.arena_bytes > mid.plan.arena_bytes
    with pytest.raises(InputError, match="mem must be one of"):
        irc.compile(model, target="cuda", arch="sm_80", shapes=shapes, mem="all")


def test_memory_report_matches_the_single_gpu_plan():
    """mid_mem of one GPU is exactly the arena the cuda target allocates."""
    model = zoo.build("lenet5", batch=None)
    r = CUDA().memory_report(model, batch=4)
    exe = irc.compile(model, target="cuda", arch="sm_80", shapes={"input": (4, 1, 28, 28)}).executable
    assert r.levels["mid_mem"][0].activations == exe.plan.arena_bytes
    assert r.levels["mid_mem"][0].weights == exe.plan.weights_bytes


@pytest.mark.gpu
@pytest.mark.skipif(gpu_count() < 2, reason="needs 2 CUDA GPUs (no CUDA GPU/driver, or only one)")
def test_data_parallel_inference_equals_one_gpu():
    model = zoo.build("lenet5", batch=None)
    x = np.random.default_rng(0).standard_normal((6, 1, 28, 28)).astype(np.float32)
    want = irc.compile(model, target="cuda", shapes={"input": x.shape})(x)
    for mem in MEM_LEVELS:
        got = CUDA(devices=[1, 1], mem=mem).compile(model, batch=6)(x)
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
