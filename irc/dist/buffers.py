"""Many small arrays as views into a few large contiguous buffers.

A collective call has a fixed cost (latency) on top of its bytes, so gradients and weights are
all-reduced as a few large buffers ("buckets") rather than one call per tensor. Each array is a
view into its bucket, 64-byte aligned (what the CPU kernels vectorize on), so the compiled step
writes its gradients straight into the bucket and the optimizer reads them from there: nothing
is packed or unpacked around a collective.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from irc.targets.state import aligned_empty

_ALIGN_ELEMS = 16  # 64 bytes of float32


class FlatBuffers:
    """``arrays[name]``: float32 views of the given shapes laid out in buckets of at most
    ``bucket_bytes`` (an array larger than that gets a bucket of its own)."""

    def __init__(self, specs: Sequence[tuple[str, tuple[int, ...]]], bucket_bytes: int = 32 << 20):
        limit = max(1, bucket_bytes // 4)
        plans: list[list[tuple[str, tuple[int, ...], int]]] = [[]]
        used = 0
        for name, shape in specs:
            size = int(np.prod(shape, dtype=np.int64))
            padded = -(-size // _ALIGN_ELEMS) * _ALIGN_ELEMS
            if plans[-1] and used + padded > limit:
                plans.append([])
                used = 0
            plans[-1].append((name, tuple(shape), used))
            used += padded
        self.buckets: list[np.ndarray] = []
        self.arrays: dict[str, np.ndarray] = {}
        for plan in plans:
            if not plan:
                continue
            name, shape, off = plan[-1]
            total = off + -(-max(1, int(np.prod(shape, dtype=np.int64))) // _ALIGN_ELEMS) * _ALIGN_ELEMS
            flat = aligned_empty((total,), np.float32)
            flat[:] = 0
            for name, shape, off in plan:
                size = int(np.prod(shape, dtype=np.int64))
                self.arrays[name] = flat[off:off + size].reshape(shape)
            self.buckets.append(flat)

    @property
    def nbytes(self) -> int:
        """Bytes the buckets hold (padding included): what one all-reduce of them moves in."""
        return sum(b.nbytes for b in self.buckets)

    def __getitem__(self, name: str) -> np.ndarray:
        return self.arrays[name]

    def zero(self) -> None:
        for b in self.buckets:
            b[:] = 0
