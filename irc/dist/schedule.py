"""When replicas synchronize and what a synchronization moves.

With ``sync_every`` = K each replica steps on its own share and the weights are averaged every K
steps (K = 1: the gradients are all-reduced every step instead). Shared by the MPI data-parallel
trainer (irc.dist) and the multi-GPU planner (irc.targets.cuda.multi).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from irc.errors import InputError


def check_sync_every(k) -> int:
    if not isinstance(k, (int, np.integer)) or isinstance(k, bool) or k < 1:
        raise InputError(f"sync_every must be a positive integer (1: every batch), got {k!r}")
    return int(k)


def sync_schedule(steps: int, sync_every: int) -> list[int]:
    """The (1-based) steps after which weights are averaged, for ``steps`` steps (the last step
    always syncs so that every replica ends with the same weights)."""
    marks = list(range(sync_every, steps + 1, sync_every))
    if steps and (not marks or marks[-1] != steps):
        marks.append(steps)
    return marks


def ring_bytes(payload_bytes: int, ranks: int) -> int:
    """Bytes each rank sends (and receives) in a ring all-reduce of ``payload_bytes``:
    2 (n-1)/n of the payload; 0 on one rank."""
    return 0 if ranks <= 1 else math.ceil(2 * (ranks - 1) * payload_bytes / ranks)


def average_weights(states: Sequence[Sequence[np.ndarray]]) -> list[np.ndarray]:
    """The element-wise mean of each weight over replicas (what a sync computes; float64 sum,
    result in each weight's type): ``states[r][w]`` is weight w on replica r."""
    n = len(states)
    out = []
    for ws in zip(*states):
        acc = np.zeros(ws[0].shape, np.float64)
        for w in ws:
            acc += w
        out.append((acc / n).astype(ws[0].dtype))
    return out
