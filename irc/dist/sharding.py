"""Which samples each rank trains on: deterministic, every sample once per epoch.

``batch_size`` in distributed training is the *global* batch: step s of epoch e covers the
rows ``order[s*B:(s+1)*B]`` of the epoch's order (``irc.nn.data.epoch_order``: the same
permutation a single process draws), and rank r takes a contiguous share of them
(:func:`share_range`; the first ranks take the remainder, so shares differ by at most one row,
and a rank may get none when a last, short batch has fewer rows than there are ranks).

Because the global batches do not depend on the number of ranks, K=1 training is single-process
training on the global batch, and a checkpoint resumes on any number of ranks with the same
batches.
"""

from __future__ import annotations

import numpy as np

from irc.errors import InputError
from irc.nn.data import epoch_order


def shares(n: int, parts: int) -> list[int]:
    """Sizes of ``parts`` contiguous shares of ``n`` rows (the first ones take the remainder)."""
    if parts < 1 or n < 0:
        raise InputError(f"cannot split {n} rows into {parts} shares")
    base, rest = divmod(n, parts)
    return [base + (1 if r < rest else 0) for r in range(parts)]


def share_range(n: int, parts: int, rank: int) -> tuple[int, int]:
    """Rows ``[lo, hi)`` of share ``rank`` of ``n`` rows split in ``parts``."""
    if not 0 <= rank < parts:
        raise InputError(f"rank {rank} is not in [0, {parts})")
    base, rest = divmod(n, parts)
    lo = rank * base + min(rank, rest)
    return lo, lo + base + (1 if rank < rest else 0)


def steps_per_epoch(n: int, batch_size: int, drop_remainder: bool) -> int:
    full, rest = divmod(n, batch_size)
    return full + (1 if rest and not drop_remainder else 0)


class EpochShard:
    """Rank ``rank``'s part of one epoch: per global step, its rows and where they sit in the
    global batch (what the dropout masks of the global batch are sliced by)."""

    def __init__(self, n: int, batch_size: int, *, seed: int, epoch: int, shuffle: bool, drop_remainder: bool,
                 rank: int, size: int):
        if batch_size < 1:
            raise InputError(f"batch_size must be >= 1, got {batch_size}")
        self.n, self.batch_size, self.rank, self.size = n, batch_size, rank, size
        self.order = epoch_order(n, seed, epoch, shuffle)
        self.steps = steps_per_epoch(n, batch_size, drop_remainder)

    def global_size(self, step: int) -> int:
        """Rows in global batch ``step``."""
        return min(self.batch_size, self.n - step * self.batch_size)

    def local_range(self, step: int) -> tuple[int, int]:
        """This rank's rows of global batch ``step`` as a range of positions in that batch."""
        return share_range(self.global_size(step), self.size, self.rank)

    def rows(self, step: int) -> np.ndarray:
        """Sample indices this rank trains on at ``step``."""
        lo, hi = self.local_range(step)
        start = step * self.batch_size
        return self.order[start + lo:start + hi]

    def local_sizes(self) -> set[int]:
        """Every share size this rank meets in the epoch (one compiled step each)."""
        return {hi - lo for lo, hi in map(self.local_range, range(self.steps))}

    def all_rows(self) -> np.ndarray:
        """Every sample this rank trains on in the epoch, in order."""
        parts = [self.rows(s) for s in range(self.steps)]
        return np.concatenate(parts) if parts else np.zeros(0, np.int64)
