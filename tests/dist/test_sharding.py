import numpy as np
import pytest

from irc.dist.sharding import EpochShard, share_range, shares, steps_per_epoch
from irc.errors import InputError
from irc.nn.data import epoch_order


def test_shares_are_contiguous_and_differ_by_at_most_one():
    assert shares(10, 3) == [4, 3, 3]
    assert shares(2, 3) == [1, 1, 0]
    assert [share_range(10, 3, r) for r in range(3)] == [(0, 4), (4, 7), (7, 10)]
    with pytest.raises(InputError):
        share_range(10, 3, 3)
    with pytest.raises(InputError):
        shares(4, 0)


@pytest.mark.parametrize("n, batch, ranks, drop", [(650, 32, 3, False), (650, 32, 3, True), (5, 4, 3, False),
                                                   (100, 7, 2, False), (64, 64, 4, False)])
def test_every_sample_once_per_epoch(n, batch, ranks, drop):
    parts = [EpochShard(n, batch, seed=5, epoch=2, shuffle=True, drop_remainder=drop, rank=r, size=ranks).all_rows()
             for r in range(ranks)]
    got = np.sort(np.concatenate(parts))
    kept = steps_per_epoch(n, batch, drop) * batch if drop else n
    assert len(got) == min(n, kept)
    assert len(np.unique(got)) == len(got)
    if not drop:
        assert np.array_equal(got, np.arange(n))


def test_the_global_batch_is_the_single_process_batch_split_by_rank():
    n, batch = 650, 32
    order = epoch_order(n, 7, 1, True)
    for step in (0, 5, 20):  # 20: the last, short batch of 10 rows
        shards = [EpochShard(n, batch, seed=7, epoch=1, shuffle=True, drop_remainder=False, rank=r, size=3)
                  for r in range(3)]
        joined = np.concatenate([s.rows(step) for s in shards])
        assert np.array_equal(joined, order[step * batch:(step + 1) * batch])
    last = [EpochShard(n, batch, seed=7, epoch=1, shuffle=True, drop_remainder=False, rank=r, size=3).local_sizes()
            for r in range(3)]
    assert last == [{11, 4}, {11, 3}, {10, 3}]


def test_a_rank_may_get_no_rows_of_a_short_last_batch():
    shard = EpochShard(5, 4, seed=0, epoch=0, shuffle=False, drop_remainder=False, rank=2, size=3)
    assert shard.steps == 2
    assert shard.rows(1).size == 0
    assert shard.local_sizes() == {1, 0}
