"""The training data loader: batches prepared in a background thread while the step runs.

Cores sit idle while images are loaded one after another, so a thread
shuffles, slices (gathers the batch's rows into fresh contiguous arrays), augments and draws the
dropout masks for the next ``prefetch`` batches while the compiled step works on the current one
(numpy and the compiled step both release the GIL while they compute).

Everything random is seeded from (seed, epoch, step), never from a running generator, so a
resumed run replays the same batches, augmentations and masks as an uninterrupted one:
the order of epoch e is ``default_rng([seed, e]).permutation(n)``; step s of it draws its masks
from ``default_rng([seed, e, s, 1])`` and augments with ``default_rng([seed, e, s, 2])``.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

_DONE = object()


@dataclass
class Batch:
    step: int
    size: int  # real samples in this batch
    arrays: dict[str, np.ndarray]  # x..., y and masks by input name


def epoch_order(n: int, seed: int, epoch: int, shuffle: bool) -> np.ndarray:
    return np.random.default_rng([seed, epoch]).permutation(n) if shuffle else np.arange(n)


def dropout_masks(specs, seed: int, epoch: int, step: int, batch: int) -> dict[str, np.ndarray]:
    """Masks of 0 and 1/(1-rate) for one step (shapes' batch axis cut to ``batch``)."""
    if not specs:
        return {}
    rng = np.random.default_rng([seed, epoch, step, 1])
    out = {}
    for name, shape, rate in specs:
        shape = (batch, *shape[1:])
        out[name] = ((rng.random(shape, dtype=np.float32) >= rate) * np.float32(1 / (1 - rate))).astype(np.float32)
    return out


class BatchLoader:
    """Iterates over one epoch's batches, produced by a background thread.

    ``arrays`` maps input names to arrays of n rows; each batch holds ``batch_size`` rows of
    each (the last one fewer unless ``drop_remainder``), contiguous and of the same dtypes.
    ``augment(batch_arrays, rng) -> batch_arrays`` may change the inputs of a batch.
    """

    def __init__(self, arrays: dict[str, np.ndarray], batch_size: int, *, seed: int, epoch: int,
                 shuffle: bool = True, start_step: int = 0, drop_remainder: bool = False,
                 masks: Sequence[tuple[str, tuple[int, ...], float]] = (),
                 augment: Callable | None = None, prefetch: int = 2):
        self.arrays = arrays
        self.n = len(next(iter(arrays.values())))
        self.batch_size = batch_size
        self.seed, self.epoch = seed, epoch
        self.order = epoch_order(self.n, seed, epoch, shuffle)
        full, rest = divmod(self.n, batch_size)
        self.steps = full + (1 if rest and not drop_remainder else 0)
        self.start_step = start_step
        self.masks = list(masks)
        self.augment = augment
        self._queue: queue.Queue = queue.Queue(maxsize=max(1, prefetch))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._produce, name="irc-batch-loader", daemon=True)
        self._thread.start()

    def __len__(self) -> int:
        return self.steps - self.start_step

    def make(self, step: int) -> Batch:
        idx = self.order[step * self.batch_size:(step + 1) * self.batch_size]
        out = {k: np.take(a, idx, axis=0) for k, a in self.arrays.items()}
        if self.augment is not None:
            rng = np.random.default_rng([self.seed, self.epoch, step, 2])
            out = dict(self.augment(out, rng))
        out.update(dropout_masks(self.masks, self.seed, self.epoch, step, len(idx)))
        return Batch(step, len(idx), out)

    def _produce(self) -> None:
        try:
            for step in range(self.start_step, self.steps):
                if not self._put(self.make(step)):
                    return
            self._put(_DONE)
        except BaseException as e:  # handed to the consumer, which raises it
            self._put(e)

    def _put(self, item) -> bool:
        """Queue ``item``, waiting for room; False when stopped first."""
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def __iter__(self):
        try:
            while True:
                item = self._queue.get()
                if item is _DONE:
                    return
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            self.close()

    def close(self) -> None:
        """Stop the producer thread (also when the consumer stops early)."""
        self._stop.set()
        self._thread.join(timeout=5)
