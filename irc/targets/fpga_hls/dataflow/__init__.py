"""The whole-network dataflow architecture of the HLS flow (``architecture="dataflow"``).

One top-level kernel per network (the architecture of hls4ml's io_stream and FINN): a DATAFLOW
region with one function per layer, joined by FIFOs of pixels, so every layer works on the same
frame stream at once and no tensor goes through device memory between layers. Modules:

- plan.py: layers -> stages and FIFOs (forks for branches, stream-order weights);
- fifos.py: FIFO depths from the stages' read/write schedules (residual bypasses);
- model.py: cycles (trip counts x II + depth) and resources per stage, throughput, latency;
- tuner.py: each stage's PE x SIMD folding, balanced within the board's per-SLR budgets;
- render.py: the C++ (irc_dataflow.h's stage templates, ROM weights, the top, the testbench);
- simulate.py: C simulation of the whole top on several frames (deadlock and leftover checks);
- project.py: the Vitis project on disk.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from irc.errors import TargetError
from irc.fileio import scratch_dir
from irc.ir.graph import Graph
from irc.targets.fpga_hls import toolchain
from irc.targets.fpga_hls.boards import RESOURCES, Board
from irc.targets.fpga_hls.dataflow import render
from irc.targets.fpga_hls.dataflow.fifos import assign_depths
from irc.targets.fpga_hls.dataflow.model import DesignModel, device_bound_fps, macs_per_frame, rom_impl, weight_rom
from irc.targets.fpga_hls.dataflow.plan import MAC_KINDS, build_network
from irc.targets.fpga_hls.dataflow.tuner import tune
from irc.targets.fpga_hls.kernels import c_name
from irc.targets.fpga_hls.precision import Precision
from irc.targets.fpga_hls.render import LIBRARY, TYPES, library_source, render_types
from irc.targets.fpga_hls.vectors import all_values, quantized_graph, sample_inputs

ARCHITECTURES = ("layers", "dataflow")
#: frames the C simulation streams through the top (two: a FIFO left non-empty by the first, or
#: a stage that reads across a frame boundary, shows in the second)
CSIM_FRAMES = 2


@dataclass(slots=True)
class DataflowSources:
    headers: dict[str, str]
    top: str
    testbench: str


class DataflowExecutable:
    """A dataflow design: its stages, model, C++ and project; runs as C simulation."""

    architecture = "dataflow"

    def __init__(self, graph: Graph, precision: Precision, board: Board, options: dict[str, Any]):
        self.graph = graph
        self.precision = precision
        self.board = board
        self.options = options
        self.model_name = c_name(graph.name or "model")
        self.top = render.top_name(self.model_name)
        self.platform = options.get("platform") or board.platform
        self.frames = CSIM_FRAMES
        self.network = build_network(graph, precision)
        self.kernel_plan = self.network.kernels
        assign_depths(self.network)
        models, self.slrs = tune(self.network, precision, board, options["fraction"], options["clock_mhz"],
                                 options.get("folding", "auto"))
        self.design = DesignModel(models, options["clock_mhz"])
        for s in self.stages:
            if s.kind in MAC_KINDS:
                s.rom = rom_impl(*weight_rom(self.network, s, precision), board)
        self.csim_result = None
        self._frames: dict[int, dict] = {}

    # -- facts
    @property
    def stages(self):
        return self.network.stages

    @property
    def fifos(self):
        return self.network.fifos

    @property
    def fps(self) -> float:
        return self.design.fps

    @property
    def device_bound_fps(self) -> float:
        return device_bound_fps(self.network, self.precision, self.board, self.options["clock_mhz"])

    def report(self) -> str:
        d = self.design
        head = (f"{'stage':<34}{'kind':<12}{'PE':>5}{'SIMD':>6}{'trips':>10}{'II':>4}{'cycles':>11}{'fill':>10}"
                + "".join(f"{r:>11}" for r in RESOURCES) + f"{'SLR':>5}")
        lines = [f"dataflow design: {self.board.title}, {self.precision.name}, clock {d.clock_mhz:g} MHz, budget "
                 f"{self.options['fraction']:.0%} of each SLR; one top kernel {self.top}", head, "-" * len(head)]
        for m, slr in zip(d.stages, self.slrs):
            lines.append(f"{m.stage[:33]:<34}{m.kind:<12}{m.pe:>5}{m.simd:>6}{m.trips:>10,}{m.ii:>4}{m.cycles:>11,}"
                         f"{m.fill:>10,}" + "".join(f"{int(m.cost[r]):>11,}" for r in RESOURCES) + f"{slr:>5}")
        tot = d.total()
        lines.append("-" * len(head))
        lines.append(f"{'total (with the control interface)':<92}" + "".join(f"{int(tot[r]):>11,}" for r in RESOURCES))
        lines.append(f"{'device':<92}" + "".join(f"{self.board.totals[r]:>11,}" for r in RESOURCES))
        b = d.bottleneck
        lines.append(f"interval {d.interval:,} cycles (slowest stage {b.stage}) = {d.fps:,.1f} frames/s; latency "
                     f"{d.latency:,} cycles = {d.latency / (d.clock_mhz * 1e3):.3f} ms; {macs_per_frame(self.network):,} "
                     f"MACs a frame; device bound {self.device_bound_fps:,.1f} frames/s "
                     f"({d.fps / self.device_bound_fps:.1%} of it)")
        lines.append("FIFOs (depth in pixels): " + ", ".join(f"{f.name}={f.depth}" for f in self.fifos))
        if len(set(self.slrs)) > 1:
            lines.append(f"the stages span SLRs {min(self.slrs)}-{max(self.slrs)} (contiguous runs, each within its SLR's "
                         f"budget); one kernel is generated, not one per SLR")
        return "\n".join(lines) + "\n"

    def summary(self) -> str:
        text = self.report()
        if self.csim_result is not None:
            text += f"C simulation of the dataflow top: {'PASS' if self.csim_result.passed else 'FAIL'}  " \
                    f"{self.csim_result.message}\n"
        return text

    # -- sources
    @cached_property
    def sources(self) -> DataflowSources:
        values = self.frame_values(0)
        atol, rtol = self.tolerance()
        headers = {LIBRARY: library_source(), render.LIBRARY: render.library_source(),
                   TYPES: render_types(self.precision, self.model_name)}
        return DataflowSources(headers, render.render_top(self.network, self.precision, self.model_name, values),
                               render.render_testbench(self.network, self.precision, self.model_name, self.frames,
                                                       atol, rtol))

    def compile_flags(self) -> list[str]:
        inc = None if self.precision.is_float else toolchain.require_ap_include(self.options.get("ap_include"))
        return toolchain.flags_for(inc)

    def frame_values(self, frame: int) -> dict:
        """Every value of the (quantized) graph on frame ``frame``'s seeded sample input."""
        if frame not in self._frames:
            g = quantized_graph(self.graph, self.precision)
            inputs = [self.precision.round_trip(a) if a.dtype.kind == "f" else a
                      for a in sample_inputs(g, self.options.get("seed", 0) + frame)]
            self._frames[frame] = all_values(g, inputs)
        return self._frames[frame]

    def reference_values(self):
        return self.frame_values(0)

    def tolerance(self) -> tuple[float, float]:
        """(atol, rtol) of the outputs: int8 designs bit-exact; float32 within rtol 1e-4 (sums in
        another order); ap_fixed within accuracy.py's propagated bound of the per-layer design,
        whose arithmetic (exact sums, one rounding per layer) every stage repeats."""
        if self.precision.kind == "int8":
            return 0.0, 0.0
        if self.precision.kind == "float32":
            return 1e-5, 1e-4
        from irc.targets.fpga_hls.accuracy import network_tolerance

        return max(network_tolerance(self, self.frame_values(f))[0] for f in range(self.frames)), 0.0

    # -- C simulation
    def csim(self, vector_root: str | Path | None = None):
        """C simulation of the whole top on CSIM_FRAMES frames; TargetError when it fails."""
        from irc.targets.fpga_hls.dataflow import simulate

        toolchain.require_gxx()
        if vector_root is None:
            with scratch_dir("irc-dataflow-csim") as tmp:
                res = simulate.run(self, Path(tmp))
        else:
            res = simulate.run(self, Path(vector_root))
        self.csim_result = res
        if not res.passed:
            raise TargetError(f"C simulation of the dataflow top {self.top} failed: {res.message}")
        return res

    def run(self, inputs):
        raise TargetError("a dataflow design runs on its board (build the saved project) or in C simulation here "
                          "(csim=True); emulation runs the per-layer design (architecture='layers')")

    def save(self, path: str | Path) -> list[Path]:
        from irc.targets.fpga_hls.dataflow.project import write_project

        return [write_project(self, Path(path))]


def build_dataflow(graph: Graph, precision: Precision, board: Board, options: dict[str, Any]) -> DataflowExecutable:
    exe = DataflowExecutable(graph, precision, board, options)
    if options.get("emulate"):
        raise TargetError("emulate=True runs the per-layer kernels; a dataflow design is checked by csim=True")
    if options.get("csim"):
        exe.csim()
    return exe


__all__ = ["ARCHITECTURES", "DataflowExecutable", "build_dataflow"]
