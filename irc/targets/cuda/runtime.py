"""Running a compiled graph on a GPU through pycuda (the ``cuda`` extra).

At first use: the driver is initialised, the device chosen, the PTX of the newest compiled
architecture the device runs is loaded (the driver JIT-compiles it for the exact GPU), and
device memory is allocated once: the arena, the weights (uploaded once), one buffer per graph
input and output. Every call copies inputs in, launches the plan's steps on one stream, copies
outputs out and synchronizes. With ``graphs=True`` the launches are captured once as a CUDA
graph and replayed (one driver call per run instead of one per kernel: what small batches need).

Every way this can fail before a kernel runs (no pycuda, no driver, no GPU, a device older than
sm_70) is a TargetError that says which; nothing is half-initialised after one.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

import numpy as np

from irc.errors import TargetError
from irc.targets.cuda.arch import Arch, arch_of_device

_cuda = None


def driver():
    """pycuda.driver, initialised; TargetError when pycuda, the driver or a GPU is missing."""
    global _cuda
    if _cuda is not None:
        return _cuda
    try:
        import pycuda.driver as cuda
    except ImportError:
        raise TargetError("the cuda target runs through pycuda, which is not installed; "
                          "pip install 'irc[cuda]' (needs an NVIDIA driver)") from None
    except Exception as e:  # pycuda imports its compiled part, which needs libcuda
        raise TargetError(f"pycuda cannot load the CUDA driver library: {e}") from None
    try:
        cuda.init()
        count = cuda.Device.count()
    except Exception as e:
        raise TargetError(f"the CUDA driver did not initialise (no NVIDIA driver or GPU?): {e}") from None
    if count == 0:
        raise TargetError("no CUDA GPU is present")
    _cuda = cuda
    return cuda


def device_count() -> int:
    """GPUs the driver sees (0 without pycuda, a driver or a GPU)."""
    try:
        return driver().Device.count()
    except TargetError:
        return 0


def device_arch(index: int = 0) -> Arch:
    cuda = driver()
    if not 0 <= index < cuda.Device.count():
        raise TargetError(f"GPU {index} does not exist ({cuda.Device.count()} present)")
    major, minor = cuda.Device(index).compute_capability()
    return arch_of_device(major, minor)


class GpuSession:
    """One compiled graph resident on one GPU: module, memory and stream."""

    def __init__(self, exe, device: int = 0, graphs: bool = False):
        cuda = driver()
        self.cuda = cuda
        self.arch = device_arch(device)
        self.code = exe.code_for_device(self.arch)
        plan = self.code.plan
        self.plan = plan
        dev = cuda.Device(device)
        self.ctx = dev.retain_primary_context()
        self.ctx.push()
        try:
            # the driver reads PTX as a NUL-terminated string
            self.module = cuda.module_from_buffer(self.code.ptx.encode() + b"\0")
            self.funcs = {}
            for name in plan.kernels:
                f = self.module.get_function(name)
                nargs = len(next(s.args for s in plan.steps if s.kernel == name))
                f.prepare("P" * nargs)
                self.funcs[name] = f
            self.arena = cuda.mem_alloc(max(plan.arena_bytes, 256))
            self.weights = cuda.mem_alloc(max(plan.weights_bytes, 256))
            cuda.memcpy_htod(self.weights, exe.weights)
            self.inputs = [cuda.mem_alloc(max(r["nbytes"], 256)) for r in plan.inputs]
            self.outputs = [cuda.mem_alloc(max(r["nbytes"], 256)) for r in plan.outputs]
            self.stream = cuda.Stream()
            self.args = [self._pointers(s) for s in plan.steps]
            self.graph_exec = None
            if graphs:
                self.graph_exec = self._capture()
        finally:
            self.ctx.pop()
        self._lock = threading.Lock()

    def _pointer(self, a) -> int:
        if a.region == "input":
            return int(self.inputs[a.index])
        if a.region == "output":
            return int(self.outputs[a.index])
        if a.region == "param":
            return int(self.weights) + a.offset
        return int(self.arena) + a.offset

    def _pointers(self, step) -> list[int]:
        return [np.uintp(self._pointer(a)) for a in step.args]

    def _launch_all(self) -> None:
        for s, args in zip(self.plan.steps, self.args):
            self.funcs[s.kernel].prepared_async_call(s.grid, s.block, self.stream, *args)

    def _launch(self) -> None:
        if self.graph_exec is None:
            self._launch_all()
            return
        try:
            self.graph_exec.launch(self.stream)
        except TypeError:  # a pycuda whose GraphExec.launch takes no stream: the legacy default
            self.graph_exec.launch()  # stream, which orders itself with ours

    def _capture(self):
        stream = self.stream
        if not hasattr(stream, "begin_capture"):
            raise TargetError("this pycuda has no CUDA graph capture (pycuda >= 2022.1 built against CUDA >= 10); "
                              "compile with graphs=False")
        stream.begin_capture()
        try:
            self._launch_all()
        finally:
            graph = stream.end_capture()
        return graph.instantiate()

    def run(self, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
        cuda = self.cuda
        outs = [np.empty(r["shape"], np.dtype(_np_dtype(r["dtype"]))) for r in self.plan.outputs]
        with self._lock:
            self.ctx.push()
            try:
                for buf, a in zip(self.inputs, inputs):
                    cuda.memcpy_htod_async(buf, np.ascontiguousarray(a), self.stream)
                self._launch()
                for i, src in self.plan.output_copies:  # outputs no kernel writes
                    cuda.memcpy_dtod_async(self.outputs[i], self._pointer(src), src.nbytes, self.stream)
                for buf, o in zip(self.outputs, outs):
                    cuda.memcpy_dtoh_async(o, buf, self.stream)
                self.stream.synchronize()
            finally:
                self.ctx.pop()
        return outs

    def time_ms(self, runs: int = 20) -> list[float]:
        """Milliseconds of the launches alone (no copies), per run, by CUDA events."""
        cuda = self.cuda
        out = []
        self.ctx.push()
        try:
            for _ in range(runs):
                start, end = cuda.Event(), cuda.Event()
                start.record(self.stream)
                self._launch()
                end.record(self.stream)
                end.synchronize()
                out.append(end.time_since(start))
        finally:
            self.ctx.pop()
        return out


def _np_dtype(name: str):
    from irc.ir.types import DType

    return DType(name).numpy
