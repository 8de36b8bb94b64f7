"""Data-parallel training: every rank trains a replica on its share of each global batch.

    mpirun -np 4 python train.py          # model.fit(...) finds the MPI world by itself

Per run of :func:`fit`:

1. every rank compiles the same gradient and update graphs (irc.dist.step) for its share sizes;
2. the ranks compare fingerprints of graph, settings and data (irc.dist.consistency), rank 0's
   weights and optimizer state are broadcast, and the weights' fingerprints compared;
3. step s of an epoch: rank r computes the gradients of its share of global batch s
   (irc.dist.sharding), then
   - ``sync_every=1``: the gradients, each weighted by the rank's share of the batch, are summed
     over ranks (one all-reduce of a few large buckets) and every rank applies the same update:
     exactly single-process training on the global batch, up to float summation order;
   - ``sync_every=K>1``: each rank updates its replica with its own gradients; every K steps
     (counted over the whole run) and at the end of each epoch, weights, optimizer state
     (momentum, Adam moments) and batch-norm statistics are averaged over ranks;
4. at the end of each epoch the loss and metrics are summed over ranks, rank 0 alone prints and
   writes the checkpoint, validation is split over ranks and aggregated, and the model holds
   the averaged weights.

The epoch's history records the communication: ``comm_time`` (seconds a rank spent in
collectives, mean over ranks; includes waiting for slower ranks) and ``comm_bytes`` (bytes each
rank all-reduced).

Failures end the job instead of hanging it: an exception on any rank is reported with its rank
and the job aborted (``MPI_Abort``); a wait longer than ``timeout`` seconds names the ranks
that do not answer (irc.dist.comm).
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from irc.dist.buffers import FlatBuffers
from irc.dist.comm import Communicator, DistributedError
from irc.dist.consistency import check_same, data_digest, digest, graph_digest, settings_digest
from irc.dist.schedule import check_sync_every, syncs_after
from irc.dist.sharding import EpochShard, shares
from irc.dist.step import Runner, compile_graph, gradient_graph, update_graph
from irc.errors import InputError
from irc.nn.data import dropout_masks

STARTUP_TIMEOUT = 600.0  # seconds the ranks wait for each other before the first step


def fit(model, comm: Communicator, x, y, *, batch_size: int = 32, epochs: int = 1, validation_data=None,
        shuffle: bool = True, seed: int | None = None, verbose: int = 1, augment: Callable | None = None,
        drop_remainder: bool = False, sync_every: int = 1, checkpoint=None, broadcast: bool = True,
        bucket_bytes: int = 32 << 20, micro_batch: int | None = None):
    """Train ``model`` data-parallel over ``comm``'s ranks (see module doc); returns its History.

    ``batch_size`` is the global batch (split over ranks), so results do not depend on the number
    of ranks for ``sync_every=1``. ``checkpoint``: a path rank 0 writes after every epoch.
    ``broadcast=False`` keeps each rank's own initial weights, which must then be equal (checked).
    ``micro_batch=m``: each rank runs its share m samples at a time and sums their gradients (the
    step's activations for m samples instead of the whole share: irc.CUDA's ``low_mem``); the
    same update up to float summation order, but not for models with batch statistics."""
    try:
        return _Trainer(model, comm, sync_every, bucket_bytes, micro_batch).fit(
            x, y, batch_size=batch_size, epochs=epochs, validation_data=validation_data, shuffle=shuffle, seed=seed,
            verbose=verbose, augment=augment, drop_remainder=drop_remainder, checkpoint=checkpoint,
            broadcast=broadcast)
    except BaseException as e:
        if comm.size > 1 and not getattr(e, "collective", False):
            comm.fail(e)
        raise


def evaluate(model, comm: Communicator, x, y, batch_size: int = 256) -> dict[str, float]:
    """Loss and metrics over all samples, each rank evaluating a contiguous share of them."""
    from irc.dist.sharding import share_range

    model._need_compiled()
    xs = model._inputs(x)
    ys = model._targets(y, len(xs[0]))
    n = len(ys)
    lo, hi = share_range(n, comm.size, comm.rank)
    names = ["loss", *(m.name for m in model.metrics)]
    sums = np.zeros(len(names) + 1)
    if hi > lo:
        part = model.evaluate([a[lo:hi] for a in xs], ys[lo:hi], batch_size=batch_size)
        sums[:-1] = [part[k] * (hi - lo) for k in names]
        sums[-1] = hi - lo
    total = comm.allreduce_small(sums, "evaluation")
    if total[-1] == 0:
        raise InputError("evaluation data hold no samples")
    return {k: float(v / total[-1]) for k, v in zip(names, total[:-1])}


def save_checkpoint(model, comm: Communicator, path) -> None:
    """Rank 0 writes the checkpoint; every rank returns once it is written."""
    if comm.rank == 0:
        model.save_checkpoint(path)
    comm.barrier(f"writing checkpoint {path}")


class _Trainer:
    def __init__(self, model, comm: Communicator, sync_every: int, bucket_bytes: int, micro_batch: int | None):
        model._need_compiled()
        self.model, self.comm = model, comm
        self.k = check_sync_every(sync_every)
        self.bucket_bytes = int(bucket_bytes)
        self.opt = model.optimizer
        if micro_batch is not None and (isinstance(micro_batch, bool) or not isinstance(micro_batch, int)
                                        or micro_batch < 1):
            raise InputError(f"micro_batch must be a positive integer (samples per run), got {micro_batch!r}")
        self.micro = micro_batch

    def _chunks(self, b: int) -> list[int]:
        """The runs a share of ``b`` rows takes: all at once, or micro-batches."""
        if self.micro is None or b <= self.micro:
            return [b] if b else []
        return [self.micro] * (b // self.micro) + ([b % self.micro] if b % self.micro else [])

    # -- setup --------------------------------------------------------------------------
    def _build(self, local_sizes: set[int]) -> None:
        m = self.model
        m._pull()
        self.grad_runners: dict[int, Runner] = {}
        for b in sorted({c for s in local_sizes for c in self._chunks(s)}):
            m._check_batch(b)
            gs = gradient_graph(m, b)
            self.metric_names, self.trainable, self.stats, self.masks = gs.metric_names, gs.trainable, gs.stats, gs.masks
            self.grad_runners[b] = Runner(compile_graph(m, gs.graph))
        if self.micro is not None and self.stats:
            raise InputError(f"micro-batches of {self.micro} sample(s) cannot train {m.name}: its batch statistics "
                             f"({', '.join(self.stats[:3])}) need the whole batch; train without micro-batches "
                             f"(irc.CUDA mem='mid_mem')")
        ug, self.update_names = update_graph(m)
        self.update = Runner(compile_graph(m, ug))
        self.update_graph = ug
        self.canonical = gradient_graph(m, getattr(m, "fixed_batch", None) or 1).graph

        slots = [n for n in self.update_names if n.startswith("opt.") and n.count(".") >= 2]
        globs = [n for n in self.update_names if n.startswith("opt.") and n.count(".") == 1]
        shape = {k: m.get_weight(k).shape for k in m.weight_keys()}
        shape.update({n: m.opt_state[n].shape for n in slots + globs})
        # Averaged at a K>1 sync and broadcast at start: weights, optimizer slots, statistics.
        self.state = FlatBuffers([(n, shape[n]) for n in [*self.trainable, *slots, *self.stats]], self.bucket_bytes)
        self.globs = FlatBuffers([(n, shape[n]) for n in globs], self.bucket_bytes)
        for n in [*self.trainable, *self.stats]:
            self.state[n][...] = m.get_weight(n)
        for n in slots:
            self.state[n][...] = m.opt_state[n]
        for n in globs:
            self.globs[n][...] = m.opt_state[n]
        # All-reduced every step when K=1: gradients, then each rank's weighted statistics.
        self.grads = FlatBuffers([*((f"grad.{k}", shape[k]) for k in self.trainable),
                                  *((f"stat.{k}", shape[k]) for k in self.stats)], self.bucket_bytes)
        self.slots, self.glob_names = slots, globs
        # Micro-batches after the first write here and are added to the gradients.
        self.partial = FlatBuffers([(f"grad.{k}", shape[k]) for k in self.trainable], self.bucket_bytes) \
            if self.micro is not None else None

    def _fingerprints(self, xs, ys, settings: dict) -> dict[str, np.ndarray]:
        return {"graph": graph_digest(self.canonical, self.update_graph), "settings": settings_digest(settings),
                "data": data_digest([*xs, ys])}

    def _weights_digest(self) -> np.ndarray:
        return digest(*self.state.buckets, *self.globs.buckets)

    # -- training -----------------------------------------------------------------------
    def fit(self, x, y, *, batch_size, epochs, validation_data, shuffle, seed, verbose, augment, drop_remainder,
            checkpoint, broadcast):
        m, comm = self.model, self.comm
        xs, ys = m._training_data(x, y, batch_size, epochs)
        n = len(ys)
        if n < batch_size and drop_remainder:
            raise InputError(f"{n} samples do not fill one batch of {batch_size}")
        val = m._validation_data(validation_data)
        if seed is not None:
            m.seed = int(seed)
        sizes = {s for s in shares(batch_size, comm.size) if s}
        if n % batch_size and not drop_remainder:
            sizes |= {s for s in shares(n % batch_size, comm.size) if s}
        self._build(sizes)
        settings = {"optimizer": self.opt.config(), "loss": m.loss.config(), "metrics": self.metric_names,
                    "target": m.target, "batch_size": batch_size, "epochs": epochs,
                    "options": {k: v for k, v in m.target_options.items() if k != "device"},  # one GPU each
                    "sync_every": self.k, "shuffle": shuffle, "seed": m.seed, "epoch": m.epoch,
                    "step_count": m.step_count, "drop_remainder": drop_remainder, "ranks": comm.size}
        # The first meeting waits for the slowest rank's compilation, hence its longer deadline.
        check_same(comm, self._fingerprints(xs, ys, settings), "checking the ranks agree before training",
                   max(comm.timeout, STARTUP_TIMEOUT))
        if broadcast:
            comm.bcast([*self.state.buckets, *self.globs.buckets], "broadcasting rank 0's weights")
        check_same(comm, {"weights": self._weights_digest()}, "checking the initial weights")

        if verbose and comm.rank == 0 and comm.size > 1:
            print(comm.describe(), flush=True)  # a launcher may name a dead process by its pid only
        arrays = dict(zip(m.input_names, xs), y=ys)
        masks = self.masks
        names = ["loss", *self.metric_names]
        for _ in range(epochs):
            epoch = m.epoch
            t0 = time.perf_counter()
            c_bytes, c_time = comm.bytes, comm.seconds
            shard = EpochShard(n, batch_size, seed=m.seed, epoch=epoch, shuffle=shuffle,
                               drop_remainder=drop_remainder, rank=comm.rank, size=comm.size)
            bar = _progress(shard.steps, f"epoch {epoch + 1}", verbose and comm.rank == 0)
            sums = np.zeros(len(names) + 1)
            try:
                for s, b_local, b_glob, batch in _batches(shard, arrays, masks, m.seed, epoch, augment):
                    sums += self._step(s, b_local, b_glob, batch, epoch, last=(s == shard.steps - 1))
                    if bar is not None:
                        bar.update(1)
            finally:
                if bar is not None:
                    bar.close()
            comm_stats = [comm.bytes - c_bytes, comm.seconds - c_time]
            total = comm.allreduce_small([*sums, *comm_stats], "summing the epoch's loss and metrics")
            seen = total[len(names)]
            logs = {"epoch": epoch + 1, **{k: float(v / seen) for k, v in zip(names, total)}}
            self._store()
            m.epoch += 1
            if val is not None:
                logs.update({f"val_{k}": v for k, v in evaluate(m, comm, *val, batch_size=batch_size).items()})
            logs["time"] = time.perf_counter() - t0
            logs["comm_time"] = float(total[-1] / comm.size)
            logs["comm_bytes"] = int(total[-2] / comm.size)
            logs["ranks"] = comm.size
            m.history.append(logs)
            if checkpoint is not None and comm.rank == 0:
                m.save_checkpoint(checkpoint)
            if verbose and comm.rank == 0:
                print(_summary(logs), flush=True)
        return m.history

    def _step(self, step: int, b_local: int, b_glob: int, batch: dict, epoch: int, last: bool) -> np.ndarray:
        m, comm = self.model, self.comm
        sync_grads = self.k == 1
        out = np.zeros(len(self.metric_names) + 2)
        if b_local:
            nm = len(self.metric_names)
            lo = 0
            for i, chunk in enumerate(self._chunks(b_local)):
                grads = self.grads if i == 0 else self.partial
                scale = chunk / (b_glob if sync_grads else b_local)
                feeds = {k: a[lo:lo + chunk] if chunk < b_local else a for k, a in batch.items()}
                feeds["gscale"] = np.float32(scale)
                feeds.update({k: self.state[k] for k in (*self.trainable, *self.stats)})
                dest = {1 + nm + j: grads[f"grad.{k}"] for j, k in enumerate(self.trainable)}
                dest.update({1 + nm + len(self.trainable) + j: self.grads[f"stat.{k}"]
                             for j, k in enumerate(self.stats)})
                res = self.grad_runners[chunk].run(feeds, dest)
                loss = float(res[0])
                if not math.isfinite(loss):
                    from irc.nn.model import TrainingError

                    raise TrainingError(f"the loss is {loss} on rank {comm.rank} at epoch {epoch + 1}, "
                                        f"step {step + 1}; lower the learning rate or check the data")
                if i:
                    for total, part in zip(self.grads.buckets, self.partial.buckets):
                        total[:part.size] += part
                out[0] += loss * chunk
                out[1:1 + nm] += [float(r) for r in res[1:1 + nm]]
                lo += chunk
            out[-1] = b_local
            if sync_grads:
                for k in self.stats:
                    self.grads[f"stat.{k}"] *= np.float32(scale)
        elif sync_grads:
            self.grads.zero()
        if sync_grads:
            comm.allreduce_sum(self.grads.buckets, f"all-reducing the gradients of step {step + 1}")
        if b_local or sync_grads:
            self._apply(epoch)
        m.step_count += 1
        if not sync_grads and syncs_after(m.step_count, self.k, last):
            comm.allreduce_sum(self.state.buckets, f"averaging the weights after step {step + 1}")
            inv = np.float32(1.0 / comm.size)
            for b in self.state.buckets:
                b *= inv
        return out

    def _apply(self, epoch: int) -> None:
        m = self.model
        feeds = {"lr": np.float32(self.opt.lr_at(epoch, m.step_count))}
        for k in self.trainable:
            feeds[k] = self.state[k]
            feeds[f"grad.{k}"] = self.grads[f"grad.{k}"]
        for n in self.slots:
            feeds[n] = self.state[n]
        for n in self.glob_names:
            feeds[n] = self.globs[n]
        dest = {i: (self.globs[n] if n in self.glob_names else self.state[n]) for i, n in enumerate(self.update_names)}
        self.update.run(feeds, dest)
        for k in self.stats:
            self.state[k][...] = self.grads[f"stat.{k}"]

    def _store(self) -> None:
        """The model takes the (synchronized) weights and optimizer state."""
        m = self.model
        m.set_weights({k: self.state[k].copy() for k in (*self.trainable, *self.stats)})
        for n in self.slots:
            m.opt_state[n] = self.state[n].copy()
        for n in self.glob_names:
            m.opt_state[n] = np.array(self.globs[n]).reshape(m.opt_state[n].shape)


def _batches(shard: EpochShard, arrays: dict, masks, seed: int, epoch: int, augment):
    """(step, local rows, global rows, arrays) for each step, the next one prepared in a thread."""

    def make(step: int):
        rows = shard.rows(step)
        b_glob = shard.global_size(step)
        lo, hi = shard.local_range(step)
        out = {k: np.take(a, rows, axis=0) for k, a in arrays.items()}
        if augment is not None and len(rows):
            rng = np.random.default_rng([seed, epoch, step, 2, lo])
            out = dict(augment(out, rng))
        for k, v in dropout_masks(masks, seed, epoch, step, b_glob).items():
            out[k] = np.ascontiguousarray(v[lo:hi])
        return step, len(rows), b_glob, out

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="irc-dist-loader") as pool:
        nxt = pool.submit(make, 0) if shard.steps else None
        for step in range(shard.steps):
            item = nxt.result()
            nxt = pool.submit(make, step + 1) if step + 1 < shard.steps else None
            yield item


def _progress(total: int, desc: str, on: bool):
    if not on:
        return None
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="step", leave=False, dynamic_ncols=True, file=sys.stdout)


def _summary(logs: dict) -> str:
    parts = [f"epoch {logs['epoch']}:"]
    for k, v in logs.items():
        if k not in ("epoch", "time", "comm_time", "comm_bytes", "ranks"):
            parts.append(f"{k} {v:.4f}")
    parts.append(f"{logs['time']:.2f} s ({logs['comm_time']:.2f} s communicating, "
                 f"{logs['comm_bytes'] / 1e6:.1f} MB all-reduced per rank, {logs['ranks']} ranks)")
    return " ".join(parts)


__all__ = ["fit", "evaluate", "save_checkpoint", "DistributedError"]
