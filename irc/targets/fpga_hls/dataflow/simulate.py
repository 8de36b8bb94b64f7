"""C simulation of a whole dataflow top: the generated top and testbench compiled by g++ and run
on several frames of the network's test vectors (every stage in its own thread, FIFOs of the
generated depths; see irc_dataflow.h), as ``vitis_hls`` csim_design would run it.

The vectors: the (quantized) graph evaluated by the interpreter on one seeded input per frame,
inputs in device format and outputs as float64, each frame pixel-major (plan.to_stream)."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from irc.targets.fpga_hls import toolchain
from irc.targets.fpga_hls.dataflow.plan import to_stream
from irc.targets.fpga_hls.dataflow.render import io_name, loaded_stages, weight_data


@dataclass(slots=True)
class DataflowCsim:
    """What the testbench printed: per-FIFO fill levels, and its verdict."""

    passed: bool
    message: str
    fifos: dict[str, dict[str, int]]
    log: str
    outputs: dict[str, np.ndarray]   # graph output name -> what the top wrote (float64, stream order)


def write_vectors(exe, root: Path) -> None:
    """in_<input>.bin (device format) and out_<output>.expected.bin (float64), all frames, and
    w_<stage>.bin: the weights the top loads into URAM."""
    root.mkdir(parents=True, exist_ok=True)
    g = exe.graph
    frames = [exe.frame_values(f) for f in range(exe.frames)]
    for v in g.inputs:
        data = np.concatenate([to_stream(exe.precision.to_device(vals[v])) for vals in frames])
        (root / f"in_{io_name(v)}.bin").write_bytes(np.ascontiguousarray(data).tobytes())
    for s in loaded_stages(exe.network):
        data = weight_data(exe.network, s, exe.precision, frames[0])
        (root / f"w_{s.name}.bin").write_bytes(np.ascontiguousarray(data).tobytes())
    for v in g.outputs:
        data = np.concatenate([to_stream(vals[v]).astype(np.float64) for vals in frames])
        (root / f"out_{io_name(v)}.expected.bin").write_bytes(np.ascontiguousarray(data).tobytes())


def build(exe) -> Path:
    src = exe.sources
    units = [toolchain.Unit(name, text, src.headers, f"the dataflow {what}")
             for name, text, what in ((f"{exe.top}.cpp", src.top, "top"), (f"{exe.top}_tb.cpp", src.testbench,
                                                                            "testbench"))]
    flags = [*exe.compile_flags(), "-pthread"]
    objs = [toolchain.compile_object(u, flags) for u in units]
    return toolchain.link(objs, shared=False, what="the dataflow testbench")


def parse_fifos(text: str) -> dict[str, dict[str, int]]:
    out = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 7 and parts[1] == "depth" and parts[3] == "peak":
            out[parts[0]] = {"depth": int(parts[2]), "peak": int(parts[4]), "writes": int(parts[6]),
                             "left": int(parts[8]) if len(parts) > 8 and parts[7] == "LEFT" else 0}
    return out


def run(exe, root: Path, timeout: float = 600) -> DataflowCsim:
    write_vectors(exe, root)
    binary = build(exe)
    r = subprocess.run([str(binary), str(root)], capture_output=True, text=True, timeout=timeout)
    lines = r.stdout.strip().splitlines()
    last = lines[-1] if lines else ""
    if r.returncode != 0 and r.stderr.strip():
        last = f"{last} {' | '.join(r.stderr.strip().splitlines()[:3])}".strip()
    outs = {}
    for v in exe.graph.outputs:
        got = root / f"out_{io_name(v)}.got.bin"
        if got.is_file():
            outs[v.name] = np.fromfile(got, np.float64)
    return DataflowCsim(r.returncode == 0, last or f"exit status {r.returncode}", parse_fifos(r.stdout), r.stdout,
                        outs)
