"""Winograd vs im2col per layer: every distinct 3x3 stride-1 convolution of ResNet-18 and
VGG-CIFAR, as one fused layer (bias + ReLU), timed with irc's im2col + GEMM (winograd=off), irc's
F(2x2,3x3) and F(4x4,3x3) (winograd=f2 / f4), and onnxruntime's Conv + Relu on the same shape.

    python benchmarks/winograd.py [--models resnet18,vgg_cifar] [--batch 1] [--threads 1,2] [--budget 1]
    python benchmarks/winograd.py --whole [--threads 1,2]     # whole models, before / after

Columns: milliseconds per layer, the ratios to im2col and to onnxruntime (below 1.0 faster), and
what ``winograd=auto`` picks for the layer. ``--whole`` times ResNet-18 (batch 1 and 8) and
VGG-CIFAR (batch 32, as benchmarks/cpu_inference.py) with winograd=off (before) and auto
(after) next to onnxruntime, each engine in a fresh process. Timings are medians in one process, one after the
other (at one thread the calling thread's CPU time, which other processes on a loaded machine
disturb far less than the wall clock; at two, wall time): compare the ratios of one run, not
figures across runs or machines. Nothing is asserted.
"""

from __future__ import annotations

import argparse
from collections import Counter

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def layers(model: str, batch: int) -> Counter:
    """(Cin, H, W, Cout, pads) of each 3x3 stride-1 convolution, with how often it occurs."""
    import irc
    import irc.zoo

    m = irc.compile(irc.zoo.build(model, batch=batch), target="cpu", threads=1, winograd="off", cache=False)
    found = Counter()
    for n in m.graph.nodes:
        a = n.attrs
        if n.op == "conv_gemm" and tuple(a["kernel_shape"]) == (3, 3) and tuple(a["strides"]) == (1, 1) \
                and tuple(a["dilations"]) == (1, 1) and a["group"] == 1:
            _, c, h, w = n.inputs[0].shape
            found[(c, h, w, a["cout"], tuple(a["pads"]))] += 1
    return found


def conv_model(batch: int, c: int, h: int, w: int, cout: int, pads, seed: int = 0) -> onnx.ModelProto:
    rng = np.random.default_rng(seed)
    wt = (rng.standard_normal((cout, c, 3, 3)) / np.sqrt(9 * c)).astype(np.float32)
    bias = (rng.standard_normal(cout) * 0.1).astype(np.float32)
    oh, ow = h + pads[0] + pads[2] - 2, w + pads[1] + pads[3] - 2
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["t"], kernel_shape=[3, 3], pads=list(pads)),
             helper.make_node("Relu", ["t"], ["y"])]
    g = helper.make_graph(nodes, "conv3x3", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, c, h, w])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, cout, oh, ow])],
                          [numpy_helper.from_array(wt, "w"), numpy_helper.from_array(bias, "b")])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])


WHOLE = [("resnet18", 1), ("resnet18", 8), ("vgg_cifar", 32)]


def whole_worker(engine: str, name: str, batch: int, threads: int, budget: float) -> float:
    """Milliseconds per run of a zoo model: irc with winograd=off / auto, or onnxruntime."""
    import irc
    import irc.zoo
    from irc.bench import measure, onnxruntime_session

    model = irc.zoo.build(name, batch=batch)
    dims = [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    x = np.random.default_rng(0).standard_normal(dims).astype(np.float32)
    if engine == "onnxruntime":
        sess = onnxruntime_session(model.SerializeToString(), threads)
        return measure(lambda: sess.run(None, {model.graph.input[0].name: x}), budget_s=budget).median
    m = irc.compile(model, target="cpu", threads=threads, winograd=engine.split("=")[1])
    return measure(lambda: m.run([x]), budget_s=budget).median


def whole(threads_list, budget: float) -> None:
    import json
    import os
    import subprocess
    import sys

    print("| model | batch | threads | irc off ms | irc auto ms | ort ms | off/ort | auto/ort | auto/off |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, batch in WHOLE:
        for threads in threads_list:
            ms = {}
            for engine in ("winograd=off", "winograd=auto", "onnxruntime"):
                env = dict(os.environ, OMP_NUM_THREADS=str(threads))
                r = subprocess.run([sys.executable, __file__, "--worker", engine, name, str(batch), str(threads),
                                    str(budget)], capture_output=True, text=True, env=env, check=True)
                ms[engine] = json.loads(r.stdout.strip().splitlines()[-1])
            off, auto, ort = ms["winograd=off"], ms["winograd=auto"], ms["onnxruntime"]
            print(f"| {name} | {batch} | {threads} | {off:.2f} | {auto:.2f} | {ort:.2f} | {off / ort:.2f} | "
                  f"{auto / ort:.2f} | {auto / off:.2f} |", flush=True)


def main() -> None:
    import irc
    from irc.bench import measure, onnxruntime_session
    from irc.targets.cpu.llvm_env import cpu_spec

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", default="resnet18,vgg_cifar")
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--threads", default="1,2")
    p.add_argument("--budget", type=float, default=1.0)
    p.add_argument("--whole", action="store_true", help="whole models, winograd off vs auto vs onnxruntime")
    p.add_argument("--worker", nargs=5, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        engine, name, batch, threads, budget = args.worker
        print(whole_worker(engine, name, int(batch), int(threads), float(budget)))
        return
    if args.whole:
        whole([int(t) for t in args.threads.split(",")], args.budget)
        return
    print(f"cpu: {cpu_spec().describe()}; batch {args.batch}")
    print("| model | layer (Cin x H x W -> Cout) | count | threads | im2col ms | F2 ms | F4 ms | ort ms | "
          "F2/im2col | F4/im2col | best/ort | im2col/ort | auto picks |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for model in args.models.split(","):
        for (c, h, w, cout, pads), count in sorted(layers(model, args.batch).items()):
            onnx_model = conv_model(args.batch, c, h, w, cout, pads)
            x = np.random.default_rng(1).standard_normal((args.batch, c, h, w)).astype(np.float32)
            for threads in (int(t) for t in args.threads.split(",")):
                clock = "thread" if threads == 1 else "wall"
                ms, picked = {}, "im2col"
                for mode in ("off", "f2", "f4", "auto"):
                    m = irc.compile(onnx_model, target="cpu", threads=threads, winograd=mode, cache=False)
                    ops = [n for n in m.graph.nodes if n.op == "conv_winograd"]
                    if mode == "auto":
                        picked = f"F{ops[0].attrs['m']}" if ops else "im2col"
                        continue
                    ms[mode] = measure(lambda m=m, x=x: m.run([x]), budget_s=args.budget, clock=clock).median
                sess = onnxruntime_session(onnx_model.SerializeToString(), threads)
                ms["ort"] = measure(lambda s=sess, x=x: s.run(None, {"x": x}), budget_s=args.budget, clock=clock).median \
                    if sess is not None else float("nan")
                best = min(ms["off"], ms["f2"], ms["f4"])
                print(f"| {model} | {c}x{h}x{w} -> {cout} | {count} | {threads} | {ms['off']:.3f} | {ms['f2']:.3f} | "
                      f"{ms['f4']:.3f} | {ms['ort']:.3f} | {ms['f2'] / ms['off']:.2f} | {ms['f4'] / ms['off']:.2f} | "
                      f"{best / ms['ort']:.2f} | {ms['off'] / ms['ort']:.2f} | {picked} |", flush=True)


if __name__ == "__main__":
    main()
