"""Where a model's CPU time goes: every node of the compiled graph timed on its own.

    python benchmarks/layer_profile.py resnet18 [--batch 1] [--threads 1] [--top 15]
    python benchmarks/layer_profile.py resnet3 --train [--batch 32]   # a compiled train step

The model is compiled for the cpu target; then each node of the compiled graph (after fusion
and lowering: conv_gemm, gemm_packed, ...) is rebuilt as a one-node graph with the same
parameters, compiled with no further passes, and timed (median CPU time of the calling thread
at one thread, wall time otherwise). The table lists the slowest nodes with their GFLOP/s where
the op does multiply-adds, then the time per op. The sum of the nodes is printed next to the
whole model's time: the difference is what running nodes back to back saves (warm caches) or
costs. With ``--train`` the model is one of benchmarks/train_step.py's networks and the graph is
its compiled SGD train step (forward, backward and update), at that network's batch unless
``--batch`` is given. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import collections
import math

import numpy as np


def node_flops(node) -> int:
    """Multiply-adds x 2 of the GEMM-like ops; 0 for the others."""
    y = node.outputs[0].shape
    if node.op == "conv_gemm":
        a = node.attrs
        cin_g = node.inputs[0].shape[1] // a["group"]
        return 2 * math.prod(y) * cin_g * math.prod(a["kernel_shape"])
    if node.op in ("conv", "conv_fused", "conv_dot"):
        w = node.inputs[1].shape
        return 2 * math.prod(y) * math.prod(w[1:])
    if node.op == "conv_transpose":  # every input element meets every weight of its group
        w = node.inputs[1].shape
        return 2 * math.prod(node.inputs[0].shape) * math.prod(w[1:])
    if node.op == "gemm_packed":
        return 2 * math.prod(y) * node.inputs[0].shape[1]
    return 0


def one_node_graph(g, node):
    from irc.ir.builder import GraphBuilder

    b = GraphBuilder(f"{node.op}_alone")
    made = {}  # a value feeding the node twice (x * x) is one input
    for v in node.inputs:
        if v not in made:
            made[v] = b.param(v.name, np.asarray(g.params[v])) if v in g.params else b.input(v.name, v.type)
    outs = b.add_node(node.op, [made[v] for v in node.inputs], dict(node.attrs))
    return b.build(*outs), [v for v in made if v not in g.params]


def train_step_graph(name: str, batch: int | None, threads: int, budget: float, clock: str):
    """(compiled train-step graph, its step time in ms, batch) of a train_step.py network."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from train_step import NETS

    from irc import nn
    from irc.bench import measure

    _, make, default_batch, _, _ = NETS[name]
    batch = batch or default_batch
    model = make()
    model.compile(nn.SGD(0.01, momentum=0.9), "cross_entropy", target="cpu")
    model.prepare(batch)
    exe, step = model._compiled("step", batch), model._steps[batch]
    exe.exe.set_threads(threads)
    rng = np.random.default_rng(0)
    feed = {model.input_names[0]: rng.standard_normal((batch, *model.input_shapes[0])).astype(np.float32),
            "y": np.eye(10, dtype=np.float32)[rng.integers(0, 10, batch)], "lr": np.float32(0.01)}
    args = [feed[k] for k in step.data_names]
    return exe.exe.graph, measure(lambda: exe.run(args), budget_s=budget, clock=clock).median, batch


def typed_inputs(values) -> list[np.ndarray]:
    """Inputs for these graph values: normal floats, small non-negative integers (valid token
    ids and gather indices for any table), random booleans."""
    from irc.bench import random_inputs

    feeds = random_inputs([(v.name, v.shape, v.dtype.numpy) for v in values])
    return [feeds[v.name] for v in values]


def main() -> None:
    import irc
    import irc.zoo
    from irc.bench import measure

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model")
    ap.add_argument("--batch", type=int, default=None, help="default 1, or the network's batch with --train")
    ap.add_argument("--train", action="store_true", help="profile a train step of benchmarks/train_step.py")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--top", type=int, default=15)
    ap.add_argument("--budget", type=float, default=0.3)
    args = ap.parse_args()
    clock = "thread" if args.threads == 1 else "wall"

    if args.train:
        g, total, args.batch = train_step_graph(args.model, args.batch, args.threads, args.budget * 5, clock)
    else:
        args.batch = args.batch or 1
        model = irc.zoo.build(args.model, batch=args.batch)
        whole = irc.compile(model, target="cpu", threads=args.threads)
        x = typed_inputs(whole.graph.inputs)
        total = measure(lambda: whole(*x), budget_s=args.budget * 5, clock=clock).median
        g = whole.graph
    rows = []
    for node in g.nodes:
        if node.op == "reshape":  # a view: no code runs
            continue
        sub, feeds = one_node_graph(g, node)
        c = irc.compile(sub, target="cpu", threads=args.threads, passes=[])
        inputs = typed_inputs(feeds)
        ms = measure(lambda c=c, inputs=inputs: c(*inputs), budget_s=args.budget, clock=clock).median
        rows.append((ms, node))
    by_op: dict[str, list[float]] = collections.defaultdict(lambda: [0.0, 0])
    for ms, node in rows:
        by_op[node.op][0] += ms
        by_op[node.op][1] += 1
    summed = sum(ms for ms, _ in rows)
    print(f"{args.model} batch {args.batch}, {args.threads} thread(s): whole model {total:.2f} ms; "
          f"nodes alone sum to {summed:.2f} ms ({len(rows)} nodes)")
    print("| node | op | output | ms | share | GFLOP/s |")
    print("|---|---|---|---|---|---|")
    for ms, node in sorted(rows, key=lambda r: -r[0])[:args.top]:
        fl = node_flops(node)
        rate = f"{fl / ms / 1e6:.0f}" if fl else ""
        print(f"| {node.label} | {node.op} | {'x'.join(map(str, node.outputs[0].shape))} | {ms:.3f} | "
              f"{ms / summed:.0%} | {rate} |")
    print()
    print("| op | nodes | ms | share | GFLOP/s |")
    print("|---|---|---|---|---|")
    for op, (ms, count) in sorted(by_op.items(), key=lambda kv: -kv[1][0]):
        fl = sum(node_flops(n) for _, n in rows if n.op == op)
        rate = f"{fl / ms / 1e6:.0f}" if fl else ""
        print(f"| {op} | {count} | {ms:.3f} | {ms / summed:.0%} | {rate} |")


if __name__ == "__main__":
    main()
