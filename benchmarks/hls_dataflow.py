"""Modelled frames/s of the HLS flow's dataflow architecture against its per-layer design.

    python benchmarks/hls_dataflow.py [--board u250] [--models lenet5,vgg_cifar,resnet18,mobilenet_v2]
                                      [--precisions int8,ap_fixed<16,6>] [--fraction 0.8] [--clock 300]

For every zoo model (batch 1) and precision, both designs are planned and tuned for the board
(nothing is synthesised; the figures are irc's models, which the tests check against the
generated code):

- dataflow: one DATAFLOW top (architecture="dataflow"), frames/s = clock / the slowest
  stage's cycles per frame; its share of the device bound, DSPs x MACs per DSP (1: no int8
  packing is generated) x clock / MACs per frame; DSP, BRAM and URAM use;
- layers: the per-layer design (architecture="layers"), whose kernels run one after another
  through device memory: frames/s = clock / the sum of the kernels' cycles; "does not fit"
  where it cannot be placed on the board;
- ratio: dataflow / layers frames/s.

The issue's goals: ratio >= 20, >= 50% of the device bound, MobileNetV2 fitting a U250.
"""

from __future__ import annotations

import argparse
import json
import re
import sys

import numpy as np

MODELS = ["lenet5", "vgg_cifar", "resnet18", "mobilenet_v2"]
PRECISIONS = ["int8", "ap_fixed<16,6>"]


def _compile(name: str, precision: str, **options):
    import irc
    import irc.zoo

    model = irc.zoo.build(name, batch=1)
    extra = {}
    if precision == "int8":
        inp = model.graph.input[0]
        shape = [d.dim_value for d in inp.type.tensor_type.shape.dim]
        rng = np.random.default_rng(0)
        extra["calib"] = [{inp.name: rng.standard_normal(shape).astype(np.float32)} for _ in range(2)]
    return irc.compile(model, target="fpga", precision=precision, **extra, **options).executable


def measure(name: str, precision: str, board: str, fraction: float, clock: float) -> dict:
    from irc.errors import TargetError

    common = dict(board=board, fraction=fraction, clock_mhz=clock)
    row: dict = {"model": name, "precision": precision}
    try:
        df = _compile(name, precision, architecture="dataflow", **common)
        d = df.design
        tot = d.total()
        row.update(dataflow_fps=d.fps, device_bound_fps=df.device_bound_fps, bound_share=d.fps / df.device_bound_fps,
                   latency_ms=d.latency / (clock * 1e3), bottleneck=d.bottleneck.stage, stages=len(df.stages),
                   dsp=int(tot["DSP"]), bram=int(tot["BRAM"]), uram=int(tot["URAM"]), slrs=max(df.slrs) + 1)
    except TargetError as e:
        row.update(dataflow_fps=None, dataflow_error=str(e).splitlines()[0][:160])
    try:
        lay = _compile(name, precision, **common)
        row["layers_fps"] = clock * 1e6 / sum(e.cycles for e in lay.estimates)
    except TargetError as e:
        row.update(layers_fps=None, layers_error=str(e).splitlines()[0][:160])
    if row.get("dataflow_fps") and row.get("layers_fps"):
        row["ratio"] = row["dataflow_fps"] / row["layers_fps"]
    return row


def _fmt(x, spec):
    return format(x, spec) if x is not None else "-"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--board", default="u250")
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--precisions", default=",".join(PRECISIONS))
    ap.add_argument("--fraction", type=float, default=0.8)
    ap.add_argument("--clock", type=float, default=300.0)
    ap.add_argument("--json", help="also write the rows to this file")
    args = ap.parse_args(argv)
    rows = [measure(m, p, args.board, args.fraction, args.clock)
            for m in args.models.split(",") for p in re.findall(r"ap_fixed<\d+,\d+>|[^,]+", args.precisions)]
    head = (f"{'model':<14}{'precision':<16}{'dataflow f/s':>14}{'layers f/s':>12}{'ratio':>9}{'bound f/s':>12}"
            f"{'of bound':>10}{'latency ms':>12}{'DSP':>8}{'BRAM':>7}{'URAM':>7}{'SLRs':>6}  bottleneck")
    print(f"modelled on {args.board}, {args.clock:g} MHz, {args.fraction:.0%} of each SLR (irc's models, not synthesis)")
    print(head)
    print("-" * len(head))
    for r in rows:
        lay = _fmt(r.get("layers_fps"), ",.1f") if r.get("layers_fps") else "no fit"
        print(f"{r['model']:<14}{r['precision']:<16}{_fmt(r.get('dataflow_fps'), ',.1f'):>14}{lay:>12}"
              f"{_fmt(r.get('ratio'), ',.0f'):>9}{_fmt(r.get('device_bound_fps'), ',.0f'):>12}"
              f"{_fmt(r.get('bound_share'), '.1%'):>10}{_fmt(r.get('latency_ms'), '.3f'):>12}"
              f"{_fmt(r.get('dsp'), ','):>8}{_fmt(r.get('bram'), ','):>7}{_fmt(r.get('uram'), ','):>7}"
              f"{_fmt(r.get('slrs'), 'd'):>6}  {r.get('bottleneck', r.get('dataflow_error', ''))}")
        if r.get("layers_error"):
            print(f"{'':<30}layers: {r['layers_error']}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
