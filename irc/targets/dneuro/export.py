"""Export of an accelerator: one directory with everything to synthesize and simulate it.

    layers.json   the layer graph: blocks, parameters, parallelism (the tuned design)
    report.txt    per-layer table, totals, latency and throughput, the flow's stages
    rtl/          the block library and the generated top-level module
    mem/          weight and parameter ROM contents (.mem for $readmemh, .mif for Quartus); ddr.mem,
                  the external-memory image of streamed weights (ddr.py), when some stream
    vectors/      input beats, expected output beats, every layer's expected codes
    tb/tb.v       the testbench (Icarus Verilog or Verilator; see sim.py), tb/dn_ddr_model.v its
                  external-memory model when weights stream; tb/tb_avalon.v, the
                  Avalon-ST wrapper's (rtl/<top>_avalon.v, wrapper.py)
    quartus/      the Quartus project of the wrapped accelerator (quartus.py)

The directory is written whole or not at all (irc.fileio.atomic_dir).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from irc.errors import TargetError
from irc.fileio import atomic_dir
from irc.targets.dneuro.emulator import Emulator
from irc.targets.dneuro.quartus import quartus_files
from irc.targets.dneuro.render import library_files, memory_files, render_top, top_name
from irc.targets.dneuro.tune import Design
from irc.targets.dneuro.vectors import model_files, testbench, vector_files
from irc.targets.dneuro.wrapper import wrapper_files


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
    files.update(model_files(design))
    files.update(wrapper_files(design, codes.shape[0]))
    files.update(quartus_files(design, files))
    return files


def write_design(out: str | Path, design: Design, codes: np.ndarray, report: str = "", *, simulate: bool = False,
                 simulator: str | None = None) -> list[Path]:
    """Write the export directory ``out`` atomically; returns the paths written. With
    ``simulate``, the RTL is simulated on the test vectors first (Verilator or Icarus Verilog,
    see sim.py) and the directory is written only if its output equals the emulator's;
    ``simulation.txt`` records the run."""
    files = design_files(design, codes, report)
    out = Path(out)
    with atomic_dir(out) as tmp:
        for rel, text in files.items():
            p = tmp / rel
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_text(text)
        if simulate:
            files["simulation.txt"] = check_simulation(tmp, design, simulator)
            (tmp / "simulation.txt").write_text(files["simulation.txt"])
    return [out / rel for rel in files]


def check_simulation(build: Path, design: Design, simulator: str | None = None) -> str:
    """Simulate an export directory; TargetError unless its outputs equal the expected vectors.
    Returns a short log: simulator, beats compared, cycles per frame and latency against the
    model."""
    from irc.targets.dneuro.sim import available, simulate

    sim = available(simulator)
    res = simulate(build, sim)
    want = [int(w, 16) for w in (build / "vectors" / "output.hex").read_text().split()]
    if res.words != want:
        k = next((i for i, (a, b) in enumerate(zip(res.words, want)) if a != b), min(len(res.words), len(want)))
        raise TargetError(f"RTL simulation ({sim}) differs from the emulator at output beat {k} of {len(want)}")
    period = res.frame_cycles
    lines = [f"simulator      {sim}", f"output beats   {len(want)} equal to the emulator's",
             f"latency        {res.latency} cycles (model {design.latency_cycles})"]
    if period:
        lines.append(f"frame period   {period[-1]} cycles (model {design.cycles})")
    return "\n".join(lines) + "\n"
