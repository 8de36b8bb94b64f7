"""Export of an accelerator: one directory with everything to synthesize and simulate it.

    layers.json   the layer graph: blocks, parameters, parallelism (the tuned design)
    report.txt    per-layer table, totals, latency and throughput, the flow's stages
    rtl/          the block library and the generated top-level module
    mem/          weight and parameter ROM contents (.mem for $readmemh, .mif for Quartus)
    vectors/      input beats, expected output beats, every layer's expected codes
    tb/tb.v       the testbench (Icarus Verilog or Verilator; see sim.py)

The directory is written whole or not at all (irc.fileio.atomic_dir).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from irc.fileio import atomic_dir
from irc.targets.fpga_dneuro.emulator import Emulator
from irc.targets.fpga_dneuro.render import library_files, memory_files, render_top, top_name
from irc.targets.fpga_dneuro.tune import Design
from irc.targets.fpga_dneuro.vectors import testbench, vector_files


def design_files(design: Design, codes: np.ndarray, report: str = "") -> dict[str, str]:
    """{relative path: text} of an export, with test vectors for input ``codes`` [N, C, H, W]."""
    outputs = Emulator(design.lg).run_codes(codes, keep_all=True)
    files = {"layers.json": design.lg.to_json(design.par)}
    if report:
        files["report.txt"] = report
    for name, text in library_files().items():
        files[f"rtl/{name}"] = text
    files[f"rtl/{top_name(design.lg)}.v"] = render_top(design)
    files.update(memory_files(design))
    files.update(vector_files(design, codes, outputs))
    files["tb/tb.v"] = testbench(design, codes.shape[0])
    return files


def write_design(out: str | Path, design: Design, codes: np.ndarray, report: str = "") -> list[Path]:
    """Write the export directory ``out`` atomically; returns the paths written."""
    files = design_files(design, codes, report)
    out = Path(out)
    with atomic_dir(out) as tmp:
        for rel, text in files.items():
            p = tmp / rel
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_text(text)
    return [out / rel for rel in files]
