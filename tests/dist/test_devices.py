"""Which GPU each rank takes: the n-th rank on a host, the n-th GPU the mask selects."""

import pytest

from irc.dist.devices import device_for_rank, local_rank
from irc.errors import InputError


def test_local_rank_counts_ranks_on_the_same_host():
    hosts = ["a", "b", "a", "b", "a"]
    assert [local_rank(hosts, r) for r in range(5)] == [(0, 3), (0, 2), (1, 3), (1, 2), (2, 3)]


def test_each_host_maps_its_ranks_onto_the_masks_gpus():
    gpus = (1, 3)  # irc.CUDA(devices=[0, 1, 0, 1]).gpus
    hosts = ["n0", "n0", "n1", "n1"]
    assert [device_for_rank(gpus, hosts, r) for r in range(4)] == [1, 3, 1, 3]


def test_more_ranks_on_a_host_than_gpus_is_refused():
    with pytest.raises(InputError, match=r"host 'n0' runs 3 training processes but devices selects 2 GPU\(s\)"):
        device_for_rank((0, 1), ["n0", "n0", "n0"], 2)
