"""The background batch loader: every sample once per epoch, reproducible from (seed, epoch,
step), batches prepared ahead in another thread, errors handed to the consumer."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from irc.nn.data import BatchLoader


def _arrays(n=23):
    return {"x": np.arange(n * 2, dtype=np.float32).reshape(n, 2), "y": np.arange(n, dtype=np.float32)}


def test_epoch_covers_every_sample_once_and_is_reproducible():
    masks = [("drop.mask", (5, 2), 0.5)]
    a = list(BatchLoader(_arrays(), 5, seed=3, epoch=1, masks=masks))
    b = list(BatchLoader(_arrays(), 5, seed=3, epoch=1, masks=masks))
    c = list(BatchLoader(_arrays(), 5, seed=3, epoch=2, masks=masks))
    assert [bt.size for bt in a] == [5, 5, 5, 5, 3]
    seen = np.concatenate([bt.arrays["y"] for bt in a])
    assert sorted(seen) == list(range(23)) and list(seen) != list(range(23))
    for p, q in zip(a, b):
        for k in p.arrays:
            assert np.array_equal(p.arrays[k], q.arrays[k])
    assert not np.array_equal(np.concatenate([bt.arrays["y"] for bt in c]), seen)
    m = a[-1].arrays["drop.mask"]
    assert m.shape == (3, 2) and set(np.unique(m)) <= {0.0, 2.0}
    # Rows stay aligned across inputs; a resumed epoch starts at its step with the same batches.
    assert all(np.array_equal(bt.arrays["x"][:, 0], 2 * bt.arrays["y"]) for bt in a)
    tail = list(BatchLoader(_arrays(), 5, seed=3, epoch=1, masks=masks, start_step=3))
    assert [bt.step for bt in tail] == [3, 4]
    assert np.array_equal(tail[0].arrays["drop.mask"], a[3].arrays["drop.mask"])


def test_batches_are_prepared_while_the_consumer_works():
    made = []

    def augment(arrays, rng):
        made.append(time.perf_counter())
        return arrays

    loader = BatchLoader(_arrays(40), 10, seed=0, epoch=0, augment=augment, prefetch=2)
    it = iter(loader)
    next(it)
    time.sleep(0.3)  # the "step": meanwhile the thread fills the queue
    assert len(made) >= 3
    assert any(t.name == "irc-batch-loader" for t in threading.enumerate())
    list(it)
    assert not loader._thread.is_alive()


def test_errors_in_the_loader_reach_the_consumer_and_early_exit_stops_it():
    def bad(arrays, rng):
        raise ValueError("augmentation failed")

    with pytest.raises(ValueError, match="augmentation failed"):
        list(BatchLoader(_arrays(), 5, seed=0, epoch=0, augment=bad))
    loader = BatchLoader(_arrays(1000), 1, seed=0, epoch=0, prefetch=1)
    for _ in loader:
        break
    loader.close()
    assert not loader._thread.is_alive()


def test_drop_remainder():
    assert [bt.size for bt in BatchLoader(_arrays(), 5, seed=0, epoch=0, drop_remainder=True)] == [5] * 4
