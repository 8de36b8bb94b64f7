"""Several GPUs, data parallel: ``irc.CUDA(devices=[1, 0, 1, 0], mem="mid_mem", sync_every=K)``.

    gpus = irc.CUDA(devices=[1, 1], mem="low_mem", sync_every=4)
    gpus.memory_report(model, batch=64)     # bytes per GPU at every memory level (no GPU needed)
    exe = gpus.compile(model, batch=64)     # one compiled copy per selected GPU
    y = exe(x)                               # the batch split across them, results joined

    model.compile(nn.SGD(0.1), "cross_entropy", target=gpus)   # training: one process per GPU,
    model.fit(x, y, batch_size=64)          # under mpirun -np 2, through irc.dist's trainer

- ``devices`` is a mask, one entry per GPU index: 1 uses that GPU (``[1, 0, 1, 0]``: GPUs 0 and 2).
  The batch is split in contiguous shares along axis 0, as even as possible (the first GPUs take
  the remainder), every selected GPU at least one sample.
- ``sync_every`` = K: in data-parallel training every GPU steps on its own share and the weights
  (and optimizer state) are averaged across GPUs every K batches and at each epoch's end (K = 1:
  the gradients are all-reduced every batch instead, the same as one GPU on the global batch); in
  between each GPU's weights drift on their own data (delayed averaging, what makes many GPUs
  worth it on slow links). ``sync_schedule`` says at which steps, and ``sync_bytes`` how many
  bytes a ring all-reduce moves per GPU each time.
- Training runs one process per selected GPU (``mpirun -np N``), each on the GPU its place on
  its host picks (irc.dist.devices), through the same trainer as CPU ranks (irc.dist); one process
  may train alone on a mask that selects one GPU.
- ``mem`` trades speed for memory, with the bytes each level needs computed from the memory
  plan of the graph at the GPU's share of the batch (``memory_report``):

  ============  ==============================================================================
  full_mem      every intermediate value keeps its own buffer for the whole run (the cuda
                target's ``mem="full_mem"``): no reuse, no false dependencies between kernels;
  mid_mem       the liveness-planned arena of the cuda target (buffers reused once dead; the
                default);
  low_mem       the share runs one sample at a time through the arena planned for batch 1:
                inference joins the samples' outputs, training sums their gradients (refused
                for models with batch statistics, which need the whole batch): the least
                memory, the most launches
  ============  ==============================================================================

  Weights, and the input/output buffers of the whole share, are counted at every level.

Running needs the GPUs (``compile`` returns a DataParallelExecutable over one GpuSession per GPU,
shares run concurrently from Python threads); planning and the memory report do not.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from irc.dist.schedule import ring_bytes, sync_schedule
from irc.errors import InputError, TargetError
from irc.ir.graph import Graph

MEM_LEVELS = ("full_mem", "mid_mem", "low_mem")


@dataclass(frozen=True)
class LevelBytes:
    """Device bytes one GPU needs at one memory level."""

    level: str
    activations: int
    weights: int
    io: int

    @property
    def total(self) -> int:
        return self.activations + self.weights + self.io


@dataclass(frozen=True)
class MemoryReport:
    batch: int
    shares: tuple[int, ...]
    devices: tuple[int, ...]
    #: level -> per selected GPU, in device order
    levels: dict[str, tuple[LevelBytes, ...]] = field(default_factory=dict)

    def total(self, level: str) -> int:
        """Bytes the largest share needs at ``level`` (what every GPU must have free)."""
        return max(b.total for b in self.levels[level])

    def fits(self, level: str, free_bytes: int) -> bool:
        return self.total(level) <= free_bytes

    def table(self) -> str:
        rows = [f"batch {self.batch} over GPUs {list(self.devices)} (shares {list(self.shares)})",
                f"{'level':<10}{'activations':>14}{'weights':>14}{'in/out':>12}{'per GPU':>14}"]
        for level in MEM_LEVELS:
            b = max(self.levels[level], key=lambda x: x.total)
            rows.append(f"{level:<10}{b.activations:>14,}{b.weights:>14,}{b.io:>12,}{b.total:>14,}")
        return "\n".join(rows)


@dataclass(frozen=True)
class CUDA:
    """GPUs to run on (a mask), the memory level, and how often data-parallel training syncs."""

    devices: Sequence[int] = (1,)
    mem: str = "mid_mem"
    sync_every: int = 1

    def __post_init__(self):
        mask = tuple(self.devices)
        if not mask or any(d not in (0, 1) or isinstance(d, bool) for d in mask):
            raise InputError(f"devices is a mask of 0/1 per GPU (e.g. [1, 0, 1, 0]), got {list(mask)}")
        if not any(mask):
            raise InputError("devices selects no GPU (no 1 in the mask)")
        if self.mem not in MEM_LEVELS:
            raise InputError(f"mem must be one of {', '.join(MEM_LEVELS)}, got {self.mem!r}")
        if not isinstance(self.sync_every, int) or isinstance(self.sync_every, bool) or self.sync_every < 1:
            raise InputError(f"sync_every must be a positive integer (1: every batch), got {self.sync_every!r}")
        object.__setattr__(self, "devices", mask)

    @property
    def target_mem(self) -> str:
        """The cuda target's ``mem`` option for one copy: its arena plan (low_mem plans as
        mid_mem; what makes it low is that the share runs a sample at a time)."""
        return "full_mem" if self.mem == "full_mem" else "mid_mem"

    @property
    def gpus(self) -> tuple[int, ...]:
        """Indices of the selected GPUs."""
        return tuple(i for i, on in enumerate(self.devices) if on)

    def split(self, batch: int) -> tuple[int, ...]:
        """Each selected GPU's share of a batch (contiguous, the first GPUs take the remainder)."""
        n = len(self.gpus)
        if batch < n:
            raise InputError(f"batch {batch} is smaller than the {n} GPUs selected: every GPU needs a sample")
        base, rest = divmod(batch, n)
        return tuple(base + (1 if i < rest else 0) for i in range(n))

    def sync_schedule(self, steps: int, steps_per_epoch: int | None = None) -> list[int]:
        """The (1-based) training steps after which the GPUs' weights are averaged (every K steps
        and at each epoch's end: the schedule irc.dist's trainer follows)."""
        return sync_schedule(steps, self.sync_every, steps_per_epoch)

    def sync_bytes(self, weight_bytes: int) -> int:
        """Bytes each GPU sends (and receives) per weight average: a ring all-reduce moves
        2 (n-1)/n of the weights; 0 on one GPU."""
        return ring_bytes(weight_bytes, len(self.gpus))

    # ------------------------------------------------------------------------------ planning
    def memory_report(self, model, batch: int, *, input_name: str | None = None) -> MemoryReport:
        """Bytes per GPU at every memory level for ``model`` (ONNX path/proto with a batch axis,
        or a function ``batch -> Graph``) at ``batch`` split over the selected GPUs."""
        graph_at = _graph_source(model, input_name)
        shares = self.split(batch)
        levels: dict[str, list[LevelBytes]] = {lv: [] for lv in MEM_LEVELS}
        one = _level_bytes(graph_at(1))
        for share in shares:
            full = _level_bytes(graph_at(share))
            levels["full_mem"].append(LevelBytes("full_mem", full["all_values"], full["weights"], full["io"]))
            levels["mid_mem"].append(LevelBytes("mid_mem", full["arena"], full["weights"], full["io"]))
            levels["low_mem"].append(LevelBytes("low_mem", one["arena"], one["weights"], full["io"]))
        return MemoryReport(batch, shares, self.gpus, {k: tuple(v) for k, v in levels.items()})

    def compile(self, model, batch: int, *, input_name: str | None = None, **options) -> DataParallelExecutable:
        """One compiled copy of ``model`` per selected GPU, at its share of ``batch`` (needs GPUs)."""
        from irc.api import compile as irc_compile
        from irc.targets.cuda.runtime import driver

        cuda = driver()
        have = cuda.Device.count()
        missing = [i for i in self.gpus if i >= have]
        if missing:
            raise TargetError(f"GPU(s) {missing} selected but only {have} present")
        graph_at = _graph_source(model, input_name)
        shares = self.split(batch)
        micro = 1 if self.mem == "low_mem" else None
        copies = []
        for gpu, share in zip(self.gpus, shares):
            g = graph_at(micro or share)
            copies.append(irc_compile(g, target="cuda", device=gpu, mem=self.target_mem, **options))
        return DataParallelExecutable(self, copies, shares, micro)


class DataParallelExecutable:
    """A model on several GPUs: inputs split along axis 0, shares run concurrently, outputs joined."""

    def __init__(self, config: CUDA, copies, shares: tuple[int, ...], micro: int | None):
        self.config = config
        self.copies = copies
        self.shares = shares
        self.micro = micro
        self._pool = ThreadPoolExecutor(max_workers=len(copies))

    def run(self, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
        total = sum(self.shares)
        for a in inputs:
            if np.shape(a)[0] != total:
                raise InputError(f"inputs have batch {np.shape(a)[0]}; this executable was planned for {total}")
        cuts = np.cumsum((0,) + self.shares)

        def one(k: int):
            part = [np.ascontiguousarray(a[cuts[k]:cuts[k + 1]]) for a in inputs]
            if self.micro is None:
                return self.copies[k].run(part)
            outs = [self.copies[k].run([p[i:i + 1] for p in part]) for i in range(self.shares[k])]
            return [np.concatenate([o[j] for o in outs]) for j in range(len(outs[0]))]

        results = list(self._pool.map(one, range(len(self.copies))))
        return [np.concatenate([r[j] for r in results]) for j in range(len(results[0]))]

    def __call__(self, *inputs):
        outs = self.run(list(inputs))
        return outs[0] if len(outs) == 1 else tuple(outs)


def _graph_source(model, input_name: str | None):
    """A function batch -> Graph (the model imported with its batch axis bound)."""
    if callable(model) and not isinstance(model, Graph):
        return model
    if isinstance(model, Graph):
        fixed = model

        def same(b: int) -> Graph:
            if fixed.inputs and fixed.inputs[0].shape[0] != b:
                raise InputError(f"graph {fixed.name} has a fixed batch {fixed.inputs[0].shape[0]}; "
                                 f"give an ONNX model or a function batch -> Graph to plan batch {b}")
            return fixed

        return same
    from irc.frontend.onnx import import_onnx, input_specs, load_model

    proto = load_model(model)
    specs = input_specs(proto)

    def at(b: int) -> Graph:
        shapes = {}
        for name, dims, _ in specs:
            if input_name is not None and name != input_name:
                continue
            shapes[name] = (b, *[d if isinstance(d, int) else 1 for d in dims[1:]])
        return import_onnx(proto, shapes)

    return at


def _level_bytes(g: Graph) -> dict[str, int]:
    from irc.passes.memory_plan import align
    from irc.passes.pipeline import run_pipeline
    from irc.targets.cuda import CudaTarget
    from irc.targets.cuda.codegen import memory_plan_for_cuda

    tgt = CudaTarget()
    g = run_pipeline(g, tgt.pipeline(tgt.options), verify_each=False)
    plan = memory_plan_for_cuda(g)
    io = set(g.inputs) | set(g.outputs)
    return {
        "arena": plan.arena_bytes,
        "all_values": memory_plan_for_cuda(g, "full_mem").arena_bytes,
        "weights": plan.weights_bytes,
        "io": sum(align(v.type.nbytes) for v in io),
    }
