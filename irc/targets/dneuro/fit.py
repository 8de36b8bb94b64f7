"""Which models fit which devices (``irc dneuro fit``), and the trade-off curve of one model.

A model is mapped from its float graph (shapes are all that matter) and costed at minimum
parallelism on each device:

- **fits at minimum parallelism**: its DSP blocks and M20K blocks are within the device (with
  10% of the M20K left for the fitter), every weight on chip; the cell then also gives the tuned
  frame rate;
- **fits with weights from external memory**: as above once the layers offchip.choose picks read
  their weights from the board's DDR (the cell names them, and the tuned frame rate counts the
  memory's bandwidth);
- **memory may be insufficient**: the DSP blocks fit and the data (weights, line buffers, FIFOs)
  is smaller than the device's M20K memory, but whole-block rounding or the fitter's margin
  leaves too little: it may fit with denser packing;
- **does not fit**: more DSP blocks than the device has even at minimum parallelism, or more data
  than its on-chip memory.
"""

from __future__ import annotations

import csv
import functools
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from irc.targets.dneuro.devices import M20K_BITS, Device
from irc.targets.dneuro.layers import LayerGraph
from irc.targets.dneuro.offchip import ON_CHIP_SHARE, passes
from irc.targets.dneuro.tune import Tuner, budgets, evaluate, minimum

FITS, DDR, MEMORY, NO = "fits", "ddr", "memory?", "no"
LABELS = {FITS: "fits at minimum parallelism", DDR: "fits with weights from external memory",
          MEMORY: "memory may be insufficient", NO: "does not fit"}
#: Share of the M20K blocks a design may use and still count as fitting.
M20K_MARGIN = ON_CHIP_SHARE


@dataclass(frozen=True, slots=True)
class Cell:
    """The verdict for one model on one device, and why."""

    model: str
    device: str
    status: str
    reason: str
    dsp: int
    m20k: int
    fps: float | None = None
    streamed: tuple[str, ...] = ()  # layers whose weights stream from external memory

    @property
    def fitting(self) -> bool:
        """Any verdict but "does not fit" (the original table's OK and "memory may be
        insufficient" alike)."""
        return self.status != NO


def _mb(bits: int) -> str:
    return f"{bits / 8 / (1 << 20):.2f} MB"


def fit_cell(name: str, lg: LayerGraph, device: Device, clock_mhz: float = 200.0, *, offchip: bool = True) -> Cell:
    """The verdict for one model and device; without ``offchip``, every weight stays on chip."""
    tuner = Tuner(lg, device, clock_mhz, streamed=None if offchip else frozenset())
    d = tuner.designs[0]
    streamed = tuple(ly.name for ly in lg if ly.name in d.streamed)
    data_bits = d.memory_bits
    weight_bits = sum(m.bits for c in d.costs.values() for m in c.memories if m.what == "weights")
    off = ""
    if streamed:
        off_bits = sum(c.ddr_bytes // passes(d, n) for n, c in d.costs.items() if n in d.streamed) * 8
        off = f"; {len(streamed)} layer(s) stream {_mb(off_bits)} of weights from external memory"
    cell = functools.partial(Cell, name, device.name, dsp=d.dsp, m20k=d.m20k, streamed=streamed)
    if d.dsp > device.dsp:
        return cell(NO, f"needs {d.dsp} DSP blocks at minimum parallelism; the device has {device.dsp}")
    if data_bits > device.m20k_bits:
        return cell(NO, f"its on-chip data ({_mb(data_bits)}, of which weights {_mb(weight_bits)}{off}) "
                        f"exceeds the on-chip memory ({device.m20k_mb} MB)")
    if d.m20k > M20K_MARGIN * device.m20k_blocks:
        return cell(MEMORY, f"{d.m20k} M20K blocks at minimum parallelism for {_mb(data_bits)} of on-chip data"
                            f"{off}: over {M20K_MARGIN:.0%} of the device's {device.m20k_blocks}")
    t = tuner.tune(1.0, M20K_MARGIN)
    td = t.design
    bound = (f", bound by external memory ({_mb(td.ddr_bytes * 8)} of weights per frame)"
             if streamed and td.ddr_cycles >= td.slowest.cycles else "")
    return cell(DDR if streamed else FITS,
                f"{d.dsp} DSP, {d.m20k} M20K at minimum{off}; tuned: {td.fps:,.1f} frames/s at {clock_mhz:g} MHz "
                f"with {td.dsp} DSP, {td.m20k} M20K{bound}", fps=td.fps)


def fit_table(models: dict[str, LayerGraph], devices: list[Device], clock_mhz: float = 200.0, *,
              offchip: bool = True) -> list[Cell]:
    return [fit_cell(name, lg, dev, clock_mhz, offchip=offchip) for name, lg in models.items() for dev in devices]


def format_fit(cells: list[Cell], devices: list[Device]) -> str:
    """The compatibility matrix (model x device), then the reason of every cell."""
    models = list(dict.fromkeys(c.model for c in cells))
    by = {(c.model, c.device): c for c in cells}
    short = [d.name.removeprefix("arria10-") for d in devices]
    w = max(12, *(len(m) for m in models)) + 2
    lines = [f"{'model':<{w}}" + "".join(f"{s:>9}" for s in short)]
    for m in models:
        lines.append(f"{m:<{w}}" + "".join(f"{by[(m, d.name)].status:>9}" for d in devices))
    lines.append("")
    lines.append("  ".join(f"{k}: {v}" for k, v in LABELS.items()))
    lines.append("")
    for c in cells:
        lines.append(f"{c.model} on {c.device}: {LABELS[c.status]}: {c.reason}")
        if c.streamed and c.status != NO:
            lines.append(f"    streamed: {', '.join(c.streamed)}")
    return "\n".join(lines) + "\n"


def fit_csv(cells: list[Cell]) -> str:
    out = io.StringIO()
    w = csv.writer(out)
    w.writerow(["model", "device", "status", "dsp_min", "m20k_min", "fps_tuned", "streamed", "reason"])
    for c in cells:
        w.writerow([c.model, c.device, LABELS[c.status], c.dsp, c.m20k, "" if c.fps is None else f"{c.fps:.2f}",
                    " ".join(c.streamed), c.reason])
    return out.getvalue()


# ----------------------------------------------------------------------------------------
# Trade-off curve: DSP budget -> frame rate, DSP, M20K


@dataclass(frozen=True, slots=True)
class CurvePoint:
    budget: float
    dsp_budget: int
    fps: float
    dsp: int
    m20k: int
    latency_ms: float
    fits: bool


def tradeoff(lg: LayerGraph, device: Device, *, points: int = 24, clock_mhz: float = 200.0,
             max_m20k: float = 1.0) -> list[CurvePoint]:
    """The tuned design for DSP budgets from the minimum design's share of the device to all of
    it (geometric steps), the M20K budget fixed at ``max_m20k``."""
    d0 = evaluate(lg, device, minimum(lg), clock_mhz)
    lo = min(1.0, max(d0.dsp, 1) / device.dsp)
    tuner = Tuner(lg, device, clock_mhz)  # one path serves every budget
    out = []
    for f in np.unique(np.geomspace(lo, 1.0, max(2, points))):
        f = float(min(1.0, f))
        t = tuner.tune(f, max_m20k)
        d = t.design
        out.append(CurvePoint(f, budgets(device, f, max_m20k)[0], d.fps if t.fits else 0.0, d.dsp, d.m20k,
                              d.latency_ms, t.fits))
    return out


def curve_csv(curve: list[CurvePoint]) -> str:
    out = io.StringIO()
    w = csv.writer(out)
    w.writerow(["dsp_budget_fraction", "dsp_budget", "fps", "dsp", "m20k", "m20k_bits", "latency_ms", "fits"])
    for p in curve:
        w.writerow([f"{p.budget:.4f}", p.dsp_budget, f"{p.fps:.3f}", p.dsp, p.m20k, p.m20k * M20K_BITS,
                    f"{p.latency_ms:.4f}", int(p.fits)])
    return out.getvalue()


def curve_png(curve: list[CurvePoint], path: str | Path, title: str) -> bool:
    """Plot frame rate and M20K against DSP blocks used; False (nothing written) when matplotlib
    is not installed (pip install 'irc[plot]')."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    from irc.fileio import atomic_path

    pts = [p for p in curve if p.fits]
    fig, ax = plt.subplots(figsize=(7, 4.2))
    ax.plot([p.dsp for p in pts], [p.fps for p in pts], "o-", color="tab:blue", label="frames/s")
    ax.set_xlabel("DSP blocks used")
    ax.set_ylabel("frames/s", color="tab:blue")
    ax.set_yscale("log" if pts and max(p.fps for p in pts) > 20 * max(1e-9, min(p.fps for p in pts)) else "linear")
    ax2 = ax.twinx()
    ax2.plot([p.dsp for p in pts], [p.m20k for p in pts], "s--", color="tab:orange", label="M20K blocks")
    ax2.set_ylabel("M20K blocks", color="tab:orange")
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
    return True


__all__ = ["Cell", "CurvePoint", "fit_cell", "fit_table", "format_fit", "fit_csv", "tradeoff", "curve_csv",
           "curve_png"]
