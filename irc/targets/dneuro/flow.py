"""The DNeuro flow as a target: ``irc.compile(model, target="fpga", flow="dneuro", calib=...)``.

Pipeline (each stage reported in ``summary()`` and report.txt):

1. ``dneuro_check`` (a pass, on the float graph): every layer must map to a block, else ONE error
   lists each layer with its usual replacement; the float model runs in the interpreter on the
   first calibration batch (its outputs must be finite);
2. ``fold_batchnorm`` then the shared ``quantize`` pass (calibration, int8 per-channel weights,
   the fixed-point requantize of irc.ir.quant_arith);
3. ``build``: the quantized graph is mapped to blocks, and the emulator must equal the int8
   interpreter bit for bit on the calibration batch; then the parallelism is tuned to the device.

The executable runs the emulator (``exe.run``) and ``save(dir)`` exports the accelerator (see
export.py), optionally simulating its RTL on the test vectors first (``simulate=True`` or a
simulator name): the export is written only if the simulation equals the emulator.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from irc.errors import InputError, TargetError
from irc.ir.graph import Graph, Node
from irc.ir.interp import interpret
from irc.ir.types import DType, TensorType
from irc.ir.verify import verify
from irc.passes.calibrate import sample_batches
from irc.passes.registry import Pass, register_pass
from irc.targets.base import Target
from irc.targets.dneuro.devices import DEFAULT_DEVICE, get_device
from irc.targets.dneuro.emulator import Emulator
from irc.targets.dneuro.layers import LayerGraph
from irc.targets.dneuro.mapping import map_graph
from irc.targets.dneuro.report import design_report
from irc.targets.dneuro.tune import Tuning, tune

OPTIONS: dict[str, Any] = {
    "flow": "dneuro",
    "device": DEFAULT_DEVICE,
    "calib": None,
    "calib_method": "minmax",
    "activation_scheme": "asym",
    "max_dsp": 1.0,
    "max_m20k": 1.0,
    "clock_mhz": 200.0,
    "target_fps": None,
    "frames": 1,
    "simulate": None,
    "seed": 0,
}


def dneuro_check(g: Graph, *, calib=None) -> Graph:
    """The dneuro_check pass as a function (see DneuroCheck)."""
    lg = map_graph(g)
    info: dict[str, Any] = {"blocks": len(lg)}
    if calib is not None:
        batch = sample_batches(g, calib)[0]
        outs = interpret(g, batch)
        bad = [v.name for v, a in zip(g.outputs, outs) if a.dtype.kind == "f" and not np.isfinite(a).all()]
        if bad:
            raise TargetError(f"the float model gives non-finite outputs ({', '.join(bad)}) on the calibration data")
        info["float_outputs"] = {v.name: [float(np.min(a)), float(np.max(a))] for v, a in zip(g.outputs, outs)}
    return g.replace(meta={**g.meta, "dneuro": json.dumps(info)})


@register_pass
@dataclass(frozen=True)
class DneuroCheck(Pass):
    """DNeuro flow, before quantization: maps the float graph to blocks (an UnsupportedOpError
    lists every layer without one, with its replacement) and runs it in the interpreter on the
    first calibration batch; records the output ranges in ``meta["dneuro"]``. Leaves the graph
    as it is."""

    name: ClassVar[str] = "dneuro_check"
    calib: Any = None

    def run(self, g: Graph) -> Graph:
        return dneuro_check(g, calib=self.calib)


def codes_value(g: Graph):
    """The int8 value the accelerator's last block computes: what the final dequantize reads."""
    prod = g.producers()
    v = g.outputs[0]
    while v in prod and prod[v].op in ("softmax", "log_softmax", "argmax", "identity"):
        v = prod[v].inputs[0]
    n = prod.get(v)
    if n is None or n.op != "dequantize_linear":
        raise TargetError(f"the quantized graph's output '{g.outputs[0].name}' is not a dequantized int8 tensor")
    return n.inputs[0]


def accelerator_graph(g: Graph, lg: LayerGraph) -> Graph:
    """The graph of what the accelerator computes: the quantized graph, its final softmax replaced
    by the arg-max (int64 [N], the top-1 class) when the accelerator ends with one."""
    if lg.output.kind != "argmax":
        return g
    prod = g.producers()
    out = g.outputs[0]
    last = prod[out]
    x = last.inputs[0]
    top = type(out)(out.name, TensorType((x.shape[0],), DType.i64))
    node = Node("argmax", (x,), (top,), {"axis": 1, "keepdims": 0, "select_last_index": 0}, last.name)
    nodes = [n for n in g.nodes if n is not last] + [node]
    return verify(g.replace(nodes=nodes, outputs=[top]))


class DneuroExecutable:
    """A tuned accelerator: ``run`` emulates it, ``save(dir)`` exports it, ``summary()`` reports."""

    def __init__(self, graph: Graph, lg: LayerGraph, tuning: Tuning, options: dict[str, Any], stages: list[str],
                 sample: np.ndarray | None):
        self.graph = graph
        self.layers = lg
        self.tuning = tuning
        self.design = tuning.design
        self.options = options
        self.stages = stages
        self.sample = sample
        self.emulator = Emulator(lg)

    def run(self, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
        if len(inputs) != 1:
            raise InputError(f"the accelerator takes one input, got {len(inputs)}")
        return [self.emulator.run(inputs[0])]

    def summary(self) -> str:
        return design_report(self.tuning, self.stages)

    def test_frames(self) -> np.ndarray:
        """Input codes for the test vectors: the first calibration frames (or seeded random codes)."""
        n = int(self.options.get("frames") or 1)
        if n < 1:
            raise InputError(f"frames must be at least 1, got {n}")
        if self.sample is not None and self.sample.shape[0] >= n:
            return self.emulator.quantize_input(self.sample[:n])
        inp = self.layers.input
        rng = np.random.default_rng(int(self.options.get("seed") or 0))
        lo, hi = (-128, 128) if inp.signed else (0, 256)
        return rng.integers(lo, hi, (n, inp.shape.c, inp.shape.h, inp.shape.w)).astype(np.int64)

    def save(self, out: str | Path) -> list[Path]:
        """Export the accelerator to directory ``out`` (written whole or not at all)."""
        from irc.targets.dneuro.export import write_design

        if not self.tuning.fits:
            raise TargetError(f"the design does not fit {self.design.device.title}: {self.tuning.stop} "
                              f"(needs {self.design.dsp} DSP blocks and {self.design.m20k} M20K)")
        sim = self.options.get("simulate")
        simulator = None if sim in (None, False, "", "none") else (None if sim is True else str(sim))
        write_design(out, self.design, self.test_frames(), self.summary(),
                     simulate=sim not in (None, False, "", "none"), simulator=simulator)
        return [Path(out)]


class DneuroTarget(Target):
    """FPGA, DNeuro flow: an int8 dataflow accelerator of RTL blocks tuned to an Arria 10."""

    name = "fpga"
    options: dict[str, Any] = dict(OPTIONS)

    PIPELINE = ("dead_code", "fold_constants", "dneuro_check", "fold_batchnorm", "quantize", "dead_code")

    def build(self, graph: Graph, options: dict[str, Any]) -> DneuroExecutable:
        device = get_device(str(options.get("device") or DEFAULT_DEVICE))
        if not any(n.op in ("qconv", "qgemm") for n in graph.nodes):
            raise TargetError("the dneuro flow needs the quantized graph (the quantize pass did not run)")
        stages = []
        info = json.loads(graph.meta.get("dneuro", "{}"))
        if "float_outputs" in info:
            ranges = ", ".join(f"{k} in [{lo:.4g}, {hi:.4g}]" for k, (lo, hi) in info["float_outputs"].items())
            stages.append(f"1 float model: every layer maps to a block; interpreter outputs finite ({ranges})")
        q = json.loads(graph.meta.get("quantization", "{}"))
        err = q.get("output_error", {})
        errs = "; ".join(f"{k}: max |int8 - float| {e['max_abs']:.3g}, relative RMS {e['rel_rms']:.3g}"
                         for k, e in err.items())
        stages.append(f"2 quantized to int8 ({q.get('activation_scheme', '?')} activations, {q.get('calibration', '?')} "
                      f"calibration), {len(q.get('layers', []))} integer layers" + (f"; {errs}" if errs else ""))
        lg = map_graph(graph)
        sample = None
        calib = options.get("calib")
        if calib is not None:
            batch = sample_batches(graph, calib)[0]
            sample = np.asarray(batch[graph.inputs[0].name])
            ref = _codes_of(graph, batch)
            body = _without_argmax(lg) if lg.output.kind == "argmax" else lg
            em = Emulator(body)
            got = em.run_codes(em.quantize_input(sample))[body.output.name]
            if not np.array_equal(got.reshape(ref.shape), ref):
                raise TargetError("internal: the emulator differs from the int8 interpreter on the calibration batch")
            stages.append(f"3 int8 model: the emulator equals the int8 interpreter bit for bit on {sample.shape[0]} "
                          f"calibration frame(s)")
        stages.append(f"4 mapped to {len(lg)} blocks: " + ", ".join(
            f"{k} {sum(1 for ly in lg if ly.kind == k)}" for k in dict.fromkeys(ly.kind for ly in lg)))
        t = tune(lg, device, max_dsp=float(options.get("max_dsp", 1.0)), max_m20k=float(options.get("max_m20k", 1.0)),
                 clock_mhz=float(options.get("clock_mhz") or 200.0), target_fps=_opt_float(options.get("target_fps")))
        d = t.design
        stages.append(f"5 tuned for {device.name}: {d.dsp} DSP, {d.m20k} M20K, {d.fps:,.1f} frames/s at "
                      f"{d.clock_mhz:g} MHz" if t.fits else f"5 does not fit {device.name}: {t.stop}")
        return DneuroExecutable(accelerator_graph(graph, lg), lg, t, dict(options), stages, sample)


def _opt_float(v) -> float | None:
    if v is None or v == "":
        return None
    try:
        return float(v)
    except (TypeError, ValueError):
        raise InputError(f"target_fps must be a number, got {v!r}") from None


def _codes_of(g: Graph, batch: dict) -> np.ndarray:
    v = codes_value(g)
    found = {}

    def observe(n: Node, outs) -> None:
        for o, a in zip(n.outputs, outs):
            if o is v:
                found["a"] = a

    interpret(g, batch, observe=observe)
    return np.asarray(found["a"]).astype(np.int64)


def _without_argmax(lg: LayerGraph) -> LayerGraph:
    return LayerGraph(lg.name, lg.layers[:-1], lg.host)
