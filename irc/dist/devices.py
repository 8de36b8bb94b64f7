"""Which GPU each rank trains on: one process per GPU, as ``irc.CUDA(devices=mask)`` selects.

    mpirun -np 2 python train.py     # model.compile(..., target=irc.CUDA(devices=[0, 1, 0, 1]))
                                     # rank 0 -> GPU 1, rank 1 -> GPU 3

The n-th rank on a host takes the n-th GPU the mask selects on that host, so a mask means the
same on every node of a cluster. The ranks' host names come from the communicator's start-up
exchange (:attr:`irc.dist.Communicator.hosts`), so no further collective is needed.
"""

from __future__ import annotations

from collections.abc import Sequence

from irc.errors import InputError


def local_rank(hosts: Sequence[str], rank: int) -> tuple[int, int]:
    """(this rank's index among the ranks on its host, how many ranks that host runs)."""
    mine = hosts[rank]
    return sum(1 for h in hosts[:rank] if h == mine), sum(1 for h in hosts if h == mine)


def device_for_rank(gpus: Sequence[int], hosts: Sequence[str], rank: int) -> int:
    """The GPU index rank ``rank`` uses, given the mask's selected GPUs ``gpus``; an InputError
    when a host runs more ranks than the mask selects GPUs."""
    index, count = local_rank(hosts, rank)
    if count > len(gpus):
        raise InputError(f"host {hosts[rank]!r} runs {count} training processes but devices selects "
                         f"{len(gpus)} GPU(s) ({list(gpus)}): start one process per selected GPU "
                         f"(mpirun -np {len(gpus)} per host), or select more GPUs")
    return int(gpus[index])
