"""Timing irc against its peers, honestly: same process, same inputs, median of many runs after
warm-up, reported as ratios. Used by ``irc bench`` and the scripts in benchmarks/.

Peers are optional: onnxruntime (the ``bench``/``dev`` extras) and PyTorch (never a dependency).
Each is run with the same thread count as irc.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Timing:
    """Latency statistics in milliseconds."""

    median: float
    p10: float
    p90: float
    runs: int

    def __str__(self) -> str:
        return f"{self.median:.3f} ms (p10 {self.p10:.3f}, p90 {self.p90:.3f}, {self.runs} runs)"


CLOCKS = {"wall": time.perf_counter, "thread": time.thread_time}


def measure(fn: Callable[[], object], *, warmup: int = 3, min_runs: int = 10, max_runs: int = 200,
            budget_s: float = 2.0, clock: str = "wall") -> Timing:
    """Run ``fn`` ``warmup`` times, then at least ``min_runs`` times and until ``budget_s`` is
    spent (at most ``max_runs``); the median is robust to the noise of a shared machine.

    ``clock="thread"`` times the calling thread's CPU time instead of elapsed time: with one
    compute thread (the caller) it is what the work costs, and other processes on a loaded
    machine disturb it far less than the wall clock."""
    tick = CLOCKS[clock]
    for _ in range(warmup):
        fn()
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < min_runs or (len(times) < max_runs and time.perf_counter() - start < budget_s):
        t = tick()
        fn()
        times.append((tick() - t) * 1e3)
    q = statistics.quantiles(times, n=10) if len(times) >= 2 else times * 9
    return Timing(statistics.median(times), q[0], q[-1], len(times))


def random_inputs(specs: Sequence[tuple[str, Sequence[int], np.dtype]], seed: int = 0) -> dict[str, np.ndarray]:
    """Inputs of the given (name, shape, dtype): normal floats, small non-negative integers."""
    rng = np.random.default_rng(seed)
    out = {}
    for name, shape, dtype in specs:
        dtype = np.dtype(dtype)
        if dtype.kind == "f":
            out[name] = rng.standard_normal(tuple(shape)).astype(dtype)
        elif dtype.kind == "b":
            out[name] = rng.random(tuple(shape)) > 0.5
        else:
            out[name] = rng.integers(0, 10, tuple(shape)).astype(dtype)
    return out


def onnxruntime_session(model_bytes: bytes, threads: int):
    """An onnxruntime CPU session with every graph optimisation on and ``threads`` intra-op
    threads (one inter-op thread), or None if onnxruntime is not installed."""
    try:
        import onnxruntime as ort
    except ImportError:
        return None
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(model_bytes, so, providers=["CPUExecutionProvider"])


def peak_rss_bytes() -> int:
    """This process's peak resident set (VmHWM); meaningful in a fresh process only."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


@dataclass
class Comparison:
    """irc vs a peer on one model: the numbers ``irc bench`` prints."""

    model: str
    threads: int
    irc: Timing
    peer: str | None = None
    peer_timing: Timing | None = None
    compile_s: float = 0.0
    #: largest |irc - peer| over all outputs on the timed inputs (a timing of wrong code is no timing)
    max_abs_diff: float | None = None

    @property
    def ratio(self) -> float | None:
        """irc latency / peer latency (below 1.0: irc is faster)."""
        if self.peer_timing is None:
            return None
        return self.irc.median / self.peer_timing.median


def compare_onnx(model_path: str | os.PathLike, *, target: str = "cpu", threads: int | None = None,
                 shapes: Mapping[str, Sequence[int]] | None = None, vs: str | None = "onnxruntime",
                 budget_s: float = 2.0, **options) -> Comparison:
    """Compile an ONNX model with irc, time it, and time the peer on the same inputs."""
    import irc
    from irc.errors import InputError
    from irc.frontend.onnx import load_model
    from irc.targets.cpu import check_threads

    threads = check_threads(threads)
    model = load_model(model_path)
    t0 = time.perf_counter()
    compiled = irc.compile(model, target=target, shapes=shapes, threads=threads, **options) if target == "cpu" \
        else irc.compile(model, target=target, shapes=shapes, **options)
    graph = compiled.graph
    compile_s = time.perf_counter() - t0
    feeds = random_inputs([(v.name, v.shape, v.dtype.numpy) for v in graph.inputs])
    inputs = [feeds[v.name] for v in graph.inputs]
    result = Comparison(str(model_path), threads, measure(lambda: compiled.run(inputs), budget_s=budget_s),
                        compile_s=compile_s)
    if vs is None:
        return result
    if vs != "onnxruntime":
        raise InputError(f"unknown peer '{vs}' (known: onnxruntime)")
    sess = onnxruntime_session(model.SerializeToString(), threads)
    if sess is not None:
        result.peer = "onnxruntime"
        result.peer_timing = measure(lambda: sess.run(None, feeds), budget_s=budget_s)
        ours, theirs = compiled.run(inputs), sess.run(None, feeds)
        result.max_abs_diff = max((float(np.max(np.abs(a.astype(np.float64) - b.astype(np.float64))))
                                   for a, b in zip(ours, theirs) if a.size), default=0.0)
    return result
