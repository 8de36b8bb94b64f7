import numpy as np
import pytest

from irc.dist.buffers import FlatBuffers
from irc.dist.schedule import check_sync_every, ring_bytes, sync_schedule, syncs_after
from irc.errors import InputError
from irc.targets.cuda.multi import CUDA


def test_sync_schedule_and_ring_bytes_are_what_the_multi_gpu_planner_uses():
    assert sync_schedule(10, 4) == [4, 8, 10]
    assert CUDA(devices=[1, 1, 1], sync_every=4).sync_schedule(10) == sync_schedule(10, 4)
    assert ring_bytes(1200, 3) == 1600 and ring_bytes(1200, 1) == 0
    assert CUDA(devices=[1, 1, 1]).sync_bytes(1200) == 1600


def test_k_step_syncs_also_close_every_epoch():
    assert sync_schedule(10, 4, steps_per_epoch=5) == [4, 5, 8, 10]
    assert sync_schedule(6, 1, steps_per_epoch=3) == list(range(1, 7))
    assert [s for s in range(1, 8) if syncs_after(s, 3, s == 7)] == [3, 6, 7]


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "2"])
def test_sync_every_must_be_a_positive_integer(bad):
    with pytest.raises(InputError, match="sync_every"):
        check_sync_every(bad)


def test_flat_buffers_are_aligned_views_in_few_buckets():
    specs = [("a", (3, 5)), ("b", (7,)), ("c", (1000,)), ("d", (2, 2))]
    fb = FlatBuffers(specs, bucket_bytes=4 * 1024)
    assert len(fb.buckets) == 2  # a, b fit the first bucket; c opens the second (it is larger than the limit)
    for name, shape in specs:
        v = fb[name]
        assert v.shape == shape and v.ctypes.data % 64 == 0
        assert any(np.shares_memory(v, b) for b in fb.buckets)
    fb["c"][...] = 2.0
    fb["a"][...] = 1.0
    assert sum(float(b.sum()) for b in fb.buckets) == 2000 + 15
    fb.zero()
    assert not any(b.any() for b in fb.buckets)
