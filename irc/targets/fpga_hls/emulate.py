"""Emulation: the whole network run through the kernels' compiled C++ (what Vitis calls
software emulation), with every tensor kept in a "device" buffer in the device's number format.

The kernels are compiled by g++ into one shared library and called through ctypes in plan
order; the host side converts graph inputs to the device format once, and outputs back. Views
(reshape) share their source's buffer, as they do on the board.
"""

from __future__ import annotations

import ctypes
from collections.abc import Sequence

import numpy as np

from irc.ir.graph import Value
from irc.targets.fpga_hls import toolchain
from irc.targets.fpga_hls.kernels import Plan
from irc.targets.fpga_hls.precision import Precision
from irc.targets.fpga_hls.sources import Sources


def compile_library(sources: Sources, flags: list[str]) -> ctypes.CDLL:
    units = [toolchain.Unit(f"{name}.cpp", text, sources.headers, f"kernel {name}")
             for name, text in sources.kernels.items()]
    objs = toolchain.compile_objects(units, flags)
    return ctypes.CDLL(str(toolchain.link(objs, shared=True, what="the kernel library")))


class DeviceMemory:
    """The device buffers of a plan: one array per buffer value, allocated once."""

    def __init__(self, plan: Plan, precision: Precision):
        self.plan = plan
        self.precision = precision
        self.buffers: dict[Value, np.ndarray] = {}
        aliased = {a.dst for a in plan.aliases}
        for v in plan.graph.values():
            if v in aliased:
                continue
            dt = precision.storage if v.dtype.is_float else v.dtype.numpy
            self.buffers[v] = np.zeros(v.shape, dt)
        for v, a in plan.graph.params.items():
            self.write(v, a)

    def buffer(self, v: Value) -> np.ndarray:
        return self.buffers[self.plan.buffer_of(v)]

    def write(self, v: Value, host: np.ndarray) -> None:
        """Host to device: converted to the device format."""
        self.buffer(v)[...] = self.precision.to_device(host).reshape(self.buffer(v).shape)

    def read(self, v: Value) -> np.ndarray:
        """Device to host, as v's type."""
        raw = self.buffer(v)
        out = self.precision.from_device(raw) if v.dtype.is_float else raw
        return np.ascontiguousarray(out.reshape(v.shape).astype(v.dtype.numpy, copy=False))


class Emulator:
    """Runs a plan's kernels from a compiled library on device buffers."""

    def __init__(self, plan: Plan, precision: Precision, lib: ctypes.CDLL):
        self.plan = plan
        self.precision = precision
        self.lib = lib
        self.memory = DeviceMemory(plan, precision)
        self.calls = []
        for k in plan.kernels:
            fn = getattr(lib, k.name)
            fn.restype = None
            fn.argtypes = [ctypes.c_void_p] * len(k.args)
            ptrs = [self.memory.buffer(a.value).ctypes.data for a in k.args]
            self.calls.append((fn, ptrs))

    def run(self, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
        g = self.plan.graph
        for v, a in zip(g.inputs, inputs):
            self.memory.write(v, a)
        for fn, ptrs in self.calls:
            fn(*ptrs)
        return [self.memory.read(v) for v in g.outputs]
