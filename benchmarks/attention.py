"""The attention subgraph alone: irc with the fuse_attention pass (one ``attention`` kernel),
irc without it (matmul, mul, add, softmax, matmul as separate kernels) and onnxruntime, on the
same ONNX graph, in one process, side by side.

    python benchmarks/attention.py                      # b=1, h=12, d=64, s=128 and 512
    python benchmarks/attention.py --seq 128 --mask --threads 1 2

The graph is what transformer exports write: MatMul(Q, Transpose(K, [0, 1, 3, 2])), Mul by
1/sqrt(d), with --mask an Add of a constant causal mask (-1e9 above the diagonal), Softmax over
the last axis, MatMul with V; Q, K and V are inputs [b, h, s, d]. Each configuration is run
``--repeat`` rounds after a warm-up, the three contenders in turn within a round; the best and
median times are printed and the ratios (unfused / fused, onnxruntime / fused, of the best
times) are the figures to read, since absolute times depend on the machine and its load.
Nothing is asserted about speed (the outputs are checked against onnxruntime's).
"""

from __future__ import annotations

import argparse
import math
import statistics
import time

import numpy as np
from onnx import TensorProto, helper, numpy_helper

import irc
from irc.passes.pipeline import steps
from irc.targets import get_target


def attention_model(b: int, h: int, s: int, d: int, mask: bool):
    """The ONNX attention subgraph with inputs q, k, v [b, h, s, d] and output [b, h, s, d]."""
    inits = [numpy_helper.from_array(np.array(1 / math.sqrt(d), np.float32), "scale")]
    nodes = [helper.make_node("Transpose", ["k"], ["kt"], perm=[0, 1, 3, 2]),
             helper.make_node("MatMul", ["q", "kt"], ["scores"]),
             helper.make_node("Mul", ["scores", "scale"], ["scaled"])]
    last = "scaled"
    if mask:
        inits.append(numpy_helper.from_array(np.triu(np.full((s, s), -1e9, np.float32), k=1), "mask"))
        nodes.append(helper.make_node("Add", ["scaled", "mask"], ["masked"]))
        last = "masked"
    nodes += [helper.make_node("Softmax", [last], ["probs"], axis=-1),
              helper.make_node("MatMul", ["probs", "v"], ["out"])]
    io = [helper.make_tensor_value_info(n, TensorProto.FLOAT, [b, h, s, d]) for n in ("q", "k", "v", "out")]
    graph = helper.make_graph(nodes, "attention", io[:3], io[3:], initializer=inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _times(fns: dict, repeat: int) -> dict:
    """Best and median seconds of each function, run in turn (one of each per round), so that a
    burst of load on the machine hits every contender alike."""
    for fn in fns.values():
        fn()
    times = {name: [] for name in fns}
    for _ in range(repeat):
        for name, fn in fns.items():
            t = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t)
    return {name: (min(ts), statistics.median(ts)) for name, ts in times.items()}


def measure(b: int, h: int, s: int, d: int, mask: bool, threads: int, repeat: int) -> dict:
    import onnxruntime as ort

    model = attention_model(b, h, s, d, mask)
    rng = np.random.default_rng(0)
    feeds = {n: rng.standard_normal((b, h, s, d)).astype(np.float32) for n in ("q", "k", "v")}
    inputs = [feeds["q"], feeds["k"], feeds["v"]]
    cpu = get_target("cpu")
    unfused_passes = [p for p in steps(cpu.pipeline({})) if getattr(p, "name", "") != "fuse_attention"]
    fused = irc.compile(model, "cpu", threads=threads)
    unfused = irc.compile(model, "cpu", threads=threads, passes=unfused_passes)
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    want = sess.run(None, feeds)[0]
    for exe in (fused, unfused):
        np.testing.assert_allclose(exe.run(inputs)[0], want, rtol=1e-4, atol=1e-5)
    assert "attention" in fused.graph.op_histogram() and "attention" not in unfused.graph.op_histogram()
    return _times({"fused": lambda: fused.run(inputs), "unfused": lambda: unfused.run(inputs),
                   "ort": lambda: sess.run(None, feeds)}, repeat)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--heads", type=int, default=12)
    ap.add_argument("--dim", type=int, default=64)
    ap.add_argument("--seq", type=int, nargs="+", default=[128, 512])
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--mask", action="store_true", help="add a causal mask before the softmax")
    ap.add_argument("--repeat", type=int, default=20)
    a = ap.parse_args(argv)
    print("times in ms: best (median)")
    print(f"{'b':>2} {'h':>3} {'s':>5} {'d':>4} {'mask':>5} {'thr':>3} {'fused':>17} {'unfused':>17} {'ort':>17} "
          f"{'unfused/fused':>13} {'ort/fused':>9}")
    for s in a.seq:
        for t in a.threads:
            r = measure(a.batch, a.heads, s, a.dim, a.mask, t, a.repeat)
            cells = " ".join(f"{r[n][0] * 1e3:>7.3f} ({r[n][1] * 1e3:>7.3f})" for n in ("fused", "unfused", "ort"))
            print(f"{a.batch:>2} {a.heads:>3} {s:>5} {a.dim:>4} {str(a.mask):>5} {t:>3} {cells} "
                  f"{r['unfused'][0] / r['fused'][0]:>13.2f} {r['ort'][0] / r['fused'][0]:>9.2f}")

if __name__ == "__main__":
    main()
