"""int8 vs fp32 on the CPU, and irc int8 vs onnxruntime int8 on the same QDQ model, one table.

    python benchmarks/int8.py [--models lenet5,small_resnet,...] [--threads 1,2] [--budget 2]
                              [--calib-method minmax] [--calib-samples 64] [--clock cpu]

For every zoo model and batch:

- accuracy: the zoo nets are untrained, so accuracy is measured against the fp32 outputs on
  held-out inputs (a seed apart from the calibration data): the share of samples whose top-1
  class agrees with fp32 ("top-1 agree") and the relative RMS error of the outputs;
- latency: irc fp32, irc int8 (quantize="int8", calibration on --calib-samples inputs) with
  8-bit weights, and with 7-bit weights (weight_bits=7: on AVX2 without VNNI every layer then
  takes the vpmaddubsw kernel; the accuracy columns show what the lost weight bit costs). The
  "kernels" columns count the layers per int8 micro-kernel (int8_isa=auto on this CPU);
- the QDQ model: irc's quantized graph exported as QDQ ONNX; onnxruntime runs it with every
  graph optimisation on (its QDQ fusion turns it into QLinearConv etc.), and irc compiles the
  same file (import, fold_qdq, int8 kernels). Its accuracy column is onnxruntime's.

Latency is the median of repeated runs after warm-up (irc.bench.measure), all engines in one
process with the same thread count. On a shared machine wall time swings with the load; with
``--clock cpu`` (one thread only) the figure is the calling thread's CPU time instead (median of
runs), which other processes disturb far less; irc and onnxruntime both compute on that thread.
Ratio columns: int8 speedup = fp32 / int8 (above 1: int8 is faster); irc/ort = irc int8 /
onnxruntime int8 (below 1: irc is faster). Nothing is asserted.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

#: (zoo model, batch)
MODELS = [
    ("mlp", 64),
    ("lenet5", 64),
    ("small_resnet", 8),
    ("vgg_cifar", 16),
    ("resnet18", 1),
    ("mobilenet_v2", 1),
]


def _accuracy(got: np.ndarray, want: np.ndarray) -> tuple[float, float]:
    agree = float(np.mean(got.argmax(1) == want.argmax(1)))
    rel = float(np.sqrt(np.mean((got - want) ** 2)) / max(np.sqrt(np.mean(want**2)), 1e-30))
    return agree, rel


def _kernels(g) -> str:
    """Layers per int8 micro-kernel, e.g. "pmaddubsw256 x3, pmaddwd256 x2"."""
    import collections

    n = collections.Counter(node.attrs["isa"] for node in g.nodes if node.op in ("qconv_gemm", "qgemm_packed"))
    return ", ".join(f"{isa} x{k}" for isa, k in sorted(n.items()))


def row(name: str, batch: int, threads: int, budget: float, method: str, samples: int, clock: str) -> dict:
    import irc
    import irc.zoo
    from irc.bench import measure as measure_clock
    from irc.bench import onnxruntime_session
    from irc.frontend.onnx.exporter import export_onnx

    def measure(fn, budget_s):
        return measure_clock(fn, budget_s=budget_s, clock="thread" if clock == "cpu" else "wall")

    model = irc.zoo.build(name, batch=batch)
    inp = model.graph.input[0].name
    shape = [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    calib = {inp: np.random.default_rng(1).standard_normal([samples] + shape[1:]).astype(np.float32)}
    x = np.random.default_rng(2).standard_normal(shape).astype(np.float32)
    out: dict = {}

    fp32 = irc.compile(model, "cpu", threads=threads)
    want = fp32(x)
    out["fp32_ms"] = measure(lambda: fp32.run([x]), budget_s=budget).median
    for bits, tag in ((8, ""), (7, "7")):
        int8 = irc.compile(model, "cpu", threads=threads, quantize="int8", calib=calib, calib_method=method,
                           weight_bits=bits)
        out["agree" + tag], out["rel" + tag] = _accuracy(int8(x), want)
        out["int8_ms" + tag] = measure(lambda int8=int8: int8.run([x]), budget_s=budget).median
        out["kernels" + tag] = _kernels(int8.graph)

    # The same quantized graph as QDQ ONNX, for onnxruntime and for irc's QDQ import.
    qgraph = irc.compile(model, "interp", quantize="int8", calib=calib, calib_method=method).graph
    qdq = export_onnx(qgraph).SerializeToString()
    sess = onnxruntime_session(qdq, threads)
    if sess is not None:
        feeds = {inp: x}
        out["ort_agree"], out["ort_rel"] = _accuracy(sess.run(None, feeds)[0], want)
        out["ort_ms"] = measure(lambda: sess.run(None, feeds), budget_s=budget).median
        fsess = onnxruntime_session(model.SerializeToString(), threads)
        out["ort_fp32_ms"] = measure(lambda: fsess.run(None, feeds), budget_s=budget).median
    from_qdq = irc.compile(qdq, "cpu", threads=threads)
    out["qdq_ms"] = measure(lambda: from_qdq.run([x]), budget_s=budget).median
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default=",".join(m for m, _ in MODELS))
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--budget", type=float, default=2.0, help="seconds of timed runs per measurement")
    ap.add_argument("--calib-method", default="minmax", choices=["minmax", "percentile", "entropy"])
    ap.add_argument("--calib-samples", type=int, default=64)
    ap.add_argument("--clock", default="wall", choices=["wall", "cpu"],
                    help="wall: elapsed time; cpu: the calling thread's CPU time (with --threads 1)")
    args = ap.parse_args()
    if args.clock == "cpu" and args.threads != "1":
        ap.error("--clock cpu measures one thread: use it with --threads 1")
    wanted = args.models.split(",")
    from irc.targets.cpu.llvm_env import cpu_spec

    print(f"CPU: {cpu_spec().describe()}; calibration: {args.calib_method} on {args.calib_samples} samples; "
          f"times: {'CPU time of the calling thread' if args.clock == 'cpu' else 'wall clock'}, median")
    print("| model | batch | threads | irc fp32 ms | ort fp32 ms | int8 ms | speedup | top-1 agree | rel RMS | "
          "kernels | int8 w7 ms | speedup w7 | top-1 agree w7 | rel RMS w7 | kernels w7 | ort int8 ms (QDQ) | "
          "ort top-1 agree | irc int8/ort | irc int8 w7/ort | irc on the QDQ file ms |")
    print("|" + "---|" * 20)
    for name, batch in [m for m in MODELS if m[0] in wanted]:
        for threads in (int(t) for t in args.threads.split(",")):
            try:
                r = row(name, batch, threads, args.budget, args.calib_method, args.calib_samples, args.clock)
            except Exception as e:  # one broken row must not hide the others
                print(f"| {name} | {batch} | {threads} | error: {type(e).__name__}: {str(e)[:100]} |", flush=True)
                continue
            ort = "ort_ms" in r
            cells = [name, batch, threads, f"{r['fp32_ms']:.2f}", f"{r['ort_fp32_ms']:.2f}" if ort else "-"]
            for tag in ("", "7"):
                cells += [f"{r['int8_ms' + tag]:.2f}", f"{r['fp32_ms'] / r['int8_ms' + tag]:.2f}x",
                          f"{100 * r['agree' + tag]:.1f}%", f"{100 * r['rel' + tag]:.2f}%", r["kernels" + tag]]
            cells += [f"{r['ort_ms']:.2f}", f"{100 * r['ort_agree']:.1f}%", f"{r['int8_ms'] / r['ort_ms']:.2f}",
                      f"{r['int8_ms7'] / r['ort_ms']:.2f}"] if ort else ["-"] * 4
            cells.append(f"{r['qdq_ms']:.2f}")
            print("| " + " | ".join(map(str, cells)) + " |", flush=True)


if __name__ == "__main__":
    sys.exit(main())
