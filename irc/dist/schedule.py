"""When replicas synchronize and what a synchronization moves.

With ``sync_every`` = K each replica steps on its own share and the weights are averaged every K
steps (K = 1: the gradients are all-reduced every step instead). Shared by the MPI data-parallel
trainer (irc.dist) and the multi-GPU planner (irc.targets.cuda.multi).
"""

from __future__ import annotations

import math

import numpy as np

from irc.errors import InputError


def check_sync_every(k) -> int:
    if not isinstance(k, (int, np.integer)) or isinstance(k, bool) or k < 1:
        raise InputError(f"sync_every must be a positive integer (1: every batch), got {k!r}")
    return int(k)


def syncs_after(step_count: int, sync_every: int, last_of_epoch: bool) -> bool:
    """Whether replicas average their weights after global step ``step_count`` (1-based, counted
    over the whole run): every K steps, and at the end of every epoch so that evaluation, the
    history and checkpoints see one set of weights. What irc.dist's trainer does at K > 1."""
    return step_count % sync_every == 0 or last_of_epoch


def sync_schedule(steps: int, sync_every: int, steps_per_epoch: int | None = None) -> list[int]:
    """The (1-based) steps after which weights are averaged over ``steps`` steps of epochs of
    ``steps_per_epoch`` (default: one epoch of ``steps``), as :func:`syncs_after` decides."""
    per = steps_per_epoch or steps
    return [s for s in range(1, steps + 1) if syncs_after(s, sync_every, s % per == 0 or s == steps)]


def ring_bytes(payload_bytes: int, ranks: int) -> int:
    """Bytes each rank sends (and receives) in a ring all-reduce of ``payload_bytes``:
    2 (n-1)/n of the payload; 0 on one rank."""
    return 0 if ranks <= 1 else math.ceil(2 * (ranks - 1) * payload_bytes / ranks)
