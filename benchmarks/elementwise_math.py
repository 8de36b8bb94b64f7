"""Transcendental element-wise ops on the cpu target: irc against onnxruntime on the same
one-node ONNX model (Exp, Erf, Tanh, Sigmoid, Log over 1M f32 elements), side by side in one run.

    python benchmarks/elementwise_math.py [--threads 1] [--budget 2] [--n 1048576]

``irc/ort`` is irc's median latency divided by onnxruntime's (below 1.0 irc is faster). With one
thread both run on the calling thread and are timed by its CPU time (irc.bench.measure's thread
clock), which a loaded machine disturbs far less than the wall clock; with more threads the wall
clock is used. ``max |irc-ort|`` is the largest difference of the outputs relative to the largest
output (both compute in f32 with their own approximations). Nothing here is asserted.
"""

from __future__ import annotations

import argparse

import numpy as np
import onnx
from onnx import TensorProto, helper

import irc
from irc.bench import measure, onnxruntime_session

#: op -> the input range its data is drawn from (uniformly)
CASES = {"Exp": (-10.0, 10.0), "Erf": (-4.0, 4.0), "Tanh": (-6.0, 6.0), "Sigmoid": (-12.0, 12.0),
         "Log": (1e-3, 1e3)}


def one_node_model(op: str, n: int) -> onnx.ModelProto:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [n])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [n])
    graph = helper.make_graph([helper.make_node(op, ["x"], ["y"])], f"{op.lower()}_1m", [x], [y])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--budget", type=float, default=2.0, help="seconds of timed runs per side")
    ap.add_argument("--n", type=int, default=1 << 20, help="elements")
    args = ap.parse_args()
    clock = "thread" if args.threads == 1 else "wall"
    print(f"{args.n} f32 elements, {args.threads} thread(s), {clock} clock")
    print("| op | irc ms | onnxruntime ms | irc/ort | max |irc-ort| / max |y| |")
    print("|---|---|---|---|---|")
    rng = np.random.default_rng(0)
    for op, (lo, hi) in CASES.items():
        x = rng.uniform(lo, hi, args.n).astype(np.float32)
        print(row(op, x, args.threads, args.budget, clock))


def row(op: str, x: np.ndarray, threads: int, budget: float, clock: str) -> str:
    """One table row: ``op`` on ``x`` by irc and by onnxruntime."""
    model = one_node_model(op, x.size)
    m = irc.compile(model, "cpu", threads=threads)
    ours = m(x)
    t_irc = measure(lambda: m(x), budget_s=budget, clock=clock)
    sess = onnxruntime_session(model.SerializeToString(), threads)
    if sess is None:
        return f"| {op} | {t_irc.median:.3f} | - | - | - |"
    theirs = sess.run(None, {"x": x})[0]
    t_ort = measure(lambda: sess.run(None, {"x": x}), budget_s=budget, clock=clock)
    diff = float(np.max(np.abs(ours.astype(np.float64) - theirs)) / np.max(np.abs(theirs)))
    return f"| {op} | {t_irc.median:.3f} | {t_ort.median:.3f} | {t_irc.median / t_ort.median:.2f} | {diff:.1e} |"

if __name__ == "__main__":
    main()
