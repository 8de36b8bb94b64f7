"""The FPGA target, HLS flow: a Vitis project from a model.

``irc.compile(model, target="fpga", flow="hls", ...)`` plans one HLS kernel per fused group,
chooses each kernel's parallelism against the board's resources, and renders the C++. The
executable it returns can

- ``save(dir)``: write the Vitis project (kernels, host code, connectivity, Makefile, HLS scripts,
  test vectors, README, resource report; see project.py);
- run C simulation (``csim=True``): every kernel compiled by g++ and checked on its vectors;
- run the network (``emulate=True``): every kernel called from its compiled C++, tensors in device
  buffers. Without emulation there is nothing to run on: the board runs the built project.

``architecture="dataflow"`` builds one DATAFLOW top kernel for the whole network instead, its
layers streaming into each other (irc/targets/fpga_hls/dataflow); "layers", the design above,
stays the default: the dataflow stages cover fewer ops (no windowed average pooling, softmax,
argmax or broadcasting element-wise ops) and batch 1 only.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from irc.errors import InputError, TargetError
from irc.fileio import scratch_dir
from irc.ir.graph import Graph
from irc.passes.pipeline import Step
from irc.targets.base import Target
from irc.targets.fpga_hls import toolchain
from irc.targets.fpga_hls.boards import DEFAULT_BOARD, Board, get_board
from irc.targets.fpga_hls.csim import CsimResult, format_results, run_csim
from irc.targets.fpga_hls.dataflow import ARCHITECTURES, build_dataflow
from irc.targets.fpga_hls.fit import assign_parallelism
from irc.targets.fpga_hls.kernels import Plan, c_name, plan_kernels
from irc.targets.fpga_hls.precision import Precision, parse_precision
from irc.targets.fpga_hls.resources import Estimate, format_table
from irc.targets.fpga_hls.sources import Sources
from irc.targets.fpga_hls.vectors import all_values, quantized_graph, sample_inputs

FLOWS = ("hls",)


class FpgaExecutable:
    """A planned and rendered HLS design; runs by emulation, saves as a Vitis project."""

    def __init__(self, graph: Graph, plan: Plan, precision: Precision, board: Board, options: dict[str, Any],
                 estimates: list[Estimate], sources: Sources):
        self.graph = graph
        self.kernel_plan = plan
        self.precision = precision
        self.board = board
        self.options = options
        self.estimates = estimates
        self.sources = sources
        self.model_name = c_name(graph.name or "model")
        self.platform = options.get("platform") or board.platform
        self.csim_results: list[CsimResult] | None = None
        self._emulator = None
        self._values = None

    # -- facts
    @property
    def kernels(self):
        return self.kernel_plan.kernels

    def report(self) -> str:
        return format_table(self.estimates, self.board, self.options["fraction"], self.options["clock_mhz"],
                            self.precision)

    def summary(self) -> str:
        """The resource table, and the C simulation results when csim ran."""
        text = self.report()
        if self.csim_results is not None:
            text += format_results(self.csim_results)
        return text

    def compile_flags(self) -> list[str]:
        inc = None if self.precision.is_float else toolchain.require_ap_include(self.options.get("ap_include"))
        return toolchain.flags_for(inc)

    def reference_values(self):
        """Every value of the (quantized) graph on the seeded sample inputs (the test vectors' source)."""
        if self._values is None:
            g = quantized_graph(self.graph, self.precision)
            inputs = [self.precision.round_trip(a) if a.dtype.kind == "f" else a
                      for a in sample_inputs(g, self.options.get("seed", 0))]
            self._values = all_values(g, inputs)
        return self._values

    # -- C simulation and emulation
    def csim(self, vector_root: str | Path | None = None) -> list[CsimResult]:
        """C simulation of every kernel; TargetError names the kernels that fail."""
        toolchain.require_gxx()
        flags = self.compile_flags()
        if vector_root is None:
            with scratch_dir("irc-csim") as tmp:  # removed however csim ends (a killed run's: by the next)
                results = run_csim(self.kernel_plan, self.sources, self.precision, self.reference_values(), flags,
                                   tmp)
        else:
            results = run_csim(self.kernel_plan, self.sources, self.precision, self.reference_values(), flags,
                               Path(vector_root))
        self.csim_results = results
        bad = [r for r in results if not r.passed]
        if bad:
            raise TargetError("C simulation failed: " + "; ".join(f"kernel '{r.kernel}' ({r.op}): {r.message}"
                                                                   for r in bad))
        return results

    def emulator(self):
        if self._emulator is None:
            from irc.targets.fpga_hls.emulate import Emulator, compile_library

            toolchain.require_gxx()
            lib = compile_library(self.sources, self.compile_flags())
            self._emulator = Emulator(self.kernel_plan, self.precision, lib)
        return self._emulator

    def run(self, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
        if not self.options.get("emulate"):
            raise TargetError("an fpga design runs on its board (build the saved project with make and run its "
                              "host), or in emulation here: compile with emulate=True (irc run --emulate)")
        return self.emulator().run(inputs)

    # -- the project
    def save(self, path: str | Path) -> list[Path]:
        from irc.targets.fpga_hls.project import write_project

        return [write_project(self, Path(path))]


class HlsTarget(Target):
    """FPGA through Vitis HLS (flow "hls")."""

    name = "fpga"
    options: dict[str, Any] = {
        "flow": "hls",
        "board": DEFAULT_BOARD,
        "platform": None,
        "precision": "float32",
        "parallelism": "auto",
        "fraction": 0.8,
        "clock_mhz": 300.0,
        "csim": False,
        "emulate": False,
        "ap_include": None,
        "seed": 0,
        # "layers": one kernel per fused layer, through device memory; "dataflow": one DATAFLOW
        # top kernel streaming between layers (irc/targets/fpga_hls/dataflow)
        "architecture": "layers",
        # dataflow: "auto" or {stage or layer name: (PE, SIMD)}
        "folding": "auto",
        # int8: calibration data for the quantize pass ({input: array}, an array or a .npz path)
        "calib": None,
        "calib_method": "minmax",
        "activation_scheme": "asym",
    }

    PIPELINE = (
        "dead_code",
        "fold_constants",
        "fold_batchnorm",
        Step("quantize", when=lambda o: parse_precision(o.get("precision") or "float32").kind == "int8"),
        "recognise_activations",
        "fuse",
        "fuse_elementwise",
        "dead_code",
    )

    def build(self, graph: Graph, options: dict[str, Any]) -> FpgaExecutable:
        flow = str(options.get("flow", "hls")).lower()
        if flow not in FLOWS:
            raise InputError(f"unknown fpga flow '{options.get('flow')}' (this target builds: {', '.join(FLOWS)})")
        board = get_board(options.get("board") or DEFAULT_BOARD)
        precision = parse_precision(options.get("precision") or "float32")
        if precision.kind == "int8" and "quantization" not in graph.meta:
            raise TargetError("precision int8 needs the quantize pass in the pipeline (it was not run)")
        try:
            fraction = float(options.get("fraction", 0.8))
            clock = float(options.get("clock_mhz", 300.0))
        except (TypeError, ValueError):
            raise InputError("fraction and clock_mhz must be numbers") from None
        if clock <= 0:
            raise InputError(f"clock_mhz must be positive, got {clock}")
        opts = dict(options, fraction=fraction, clock_mhz=clock)
        arch = str(options.get("architecture") or "layers").lower()
        if arch not in ARCHITECTURES:
            raise InputError(f"unknown architecture '{options.get('architecture')}' (expected {' or '.join(ARCHITECTURES)})")
        if arch == "dataflow":
            return build_dataflow(graph, precision, board, opts)
        plan = plan_kernels(graph)
        estimates = assign_parallelism(plan.kernels, precision, board, fraction, options.get("parallelism", "auto"))
        sources = Sources.of(plan, precision, c_name(graph.name or "model"))
        exe = FpgaExecutable(graph, plan, precision, board, opts, estimates, sources)
        if opts.get("emulate") and not precision.is_float:
            toolchain.require_ap_include(opts.get("ap_include"))
        if opts.get("csim"):
            exe.csim()
        return exe
