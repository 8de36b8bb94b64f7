"""CPU inference: irc vs onnxruntime (and PyTorch when installed), one table, one run.

    python benchmarks/cpu_inference.py [--models mlp,lenet5,...] [--threads 1,2] [--budget 3]
    python benchmarks/cpu_inference.py --gemm          # GEMM GFLOP/s vs numpy, share of peak

Every (model, batch, threads, engine) is measured in a fresh worker process, so its peak RSS
(VmHWM) is its own; latency is the median of repeated runs after warm-up (irc.bench.measure).
The ratio column is irc / onnxruntime: below 1.0 irc is faster; after the table, the geometric
mean of the ratios over all rows of each thread count. Nothing here is asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np
import onnx

#: (zoo model, batch, keyword arguments)
MODELS = [
    ("mlp", 100, {}),
    ("lenet5", 64, {}),
    ("resnet18", 1, {}),
    ("resnet18", 8, {}),
    ("mobilenet_v2", 1, {}),
    ("vgg_cifar", 32, {}),
    ("bert_base", 1, {}),
    ("gpt2_small", 1, {}),
    ("efficientnet_b0", 1, {}),
    ("convnext_tiny", 1, {}),
    ("vit_b16", 1, {}),
]
ENGINES = ("irc", "onnxruntime", "torch")


def worker(engine: str, name: str, batch: int, threads: int, budget: float) -> dict:
    """Runs in its own process: build, compile, time; prints a JSON line."""
    import irc.zoo
    from irc.bench import measure, onnxruntime_session, peak_rss_bytes, random_inputs

    model = irc.zoo.build(name, batch=batch)
    specs = [(i.name, [d.dim_value for d in i.type.tensor_type.shape.dim],
              onnx.helper.tensor_dtype_to_np_dtype(i.type.tensor_type.elem_type)) for i in model.graph.input
             if i.name not in {t.name for t in model.graph.initializer}]
    feeds = random_inputs(specs)  # token ids: small integers, valid for any vocabulary
    t0 = time.perf_counter()
    if engine == "irc":
        import irc

        m = irc.compile(model, target="cpu", threads=threads)
        inputs = [feeds[n] for n in m.input_names]

        def run():
            return m.run(inputs)
    elif engine == "onnxruntime":
        sess = onnxruntime_session(model.SerializeToString(), threads)
        if sess is None:
            return {"skip": "onnxruntime not installed"}

        def run():
            return sess.run(None, feeds)
    else:
        sys.path.insert(0, os.path.dirname(__file__))
        from torch_peer import torch_runner

        run_t = torch_runner(model, threads)
        if run_t is None:
            return {"skip": "torch not installed"}

        def run():
            return run_t(feeds)
    setup = time.perf_counter() - t0
    t = measure(run, budget_s=budget)
    return {"ms": t.median, "p10": t.p10, "p90": t.p90, "runs": t.runs, "rss": peak_rss_bytes(), "setup_s": setup}


def _spawn(engine, name, batch, threads, budget) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), OPENBLAS_NUM_THREADS=str(threads))
    cmd = [sys.executable, __file__, "--worker", engine, name, str(batch), str(threads), str(budget)]
    r = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if r.returncode != 0:
        return {"error": (r.stderr.strip().splitlines() or ["failed"])[-1][:120]}
    return json.loads(r.stdout.strip().splitlines()[-1])


def table(models, threads_list, budget) -> None:
    print("| model | batch | threads | irc ms | onnxruntime ms | PyTorch ms | irc/onnxruntime | irc RSS MB | "
          "ort RSS MB | torch RSS MB | irc compile s |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    ratios: dict[int, list[float]] = {t: [] for t in threads_list}
    for name, batch, _ in models:
        for threads in threads_list:
            res = {e: _spawn(e, name, batch, threads, budget) for e in ENGINES}

            def cell(e, key, fmt):
                r = res[e]
                if key in r:
                    return fmt.format(r[key] / (2**20 if key == "rss" else 1))
                return r.get("skip") and "-" or "err: " + r.get("error", "?")

            ratio = "-"
            if "ms" in res["irc"] and "ms" in res["onnxruntime"]:
                ratios[threads].append(res["irc"]["ms"] / res["onnxruntime"]["ms"])
                ratio = f"{ratios[threads][-1]:.2f}"
            print(f"| {name} | {batch} | {threads} | {cell('irc', 'ms', '{:.2f}')} | {cell('onnxruntime', 'ms', '{:.2f}')} | "
                  f"{cell('torch', 'ms', '{:.2f}')} | {ratio} | {cell('irc', 'rss', '{:.0f}')} | "
                  f"{cell('onnxruntime', 'rss', '{:.0f}')} | {cell('torch', 'rss', '{:.0f}')} | "
                  f"{cell('irc', 'setup_s', '{:.2f}')} |", flush=True)
    print()
    for threads, rs in ratios.items():
        mean = f"{geometric_mean(rs):.2f}" if rs else "-"
        print(f"geometric mean of irc/onnxruntime at {threads} thread{'s' * (threads > 1)}: {mean} over {len(rs)} rows")


def geometric_mean(ratios) -> float:
    """The mean that treats 2x faster and 2x slower alike: exp of the mean log ratio."""
    return float(np.exp(np.mean(np.log(ratios))))


def gemm_table(threads_list, budget) -> None:
    """irc's packed GEMM vs numpy's BLAS, GFLOP/s, and the share of the measured FMA peak."""
    import irc
    from irc.bench import measure
    from irc.ir import GraphBuilder
    from irc.targets.cpu.gemm import choose_tile
    from irc.targets.cpu.llvm_env import cpu_spec
    from irc.targets.cpu.lowering.ops import pack_panels

    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        threadpool_limits = None
    peak = fma_peak_gflops()
    print(f"measured FMA peak: {peak:.1f} GFLOP/s per core ({cpu_spec().describe()})")
    print("| M x K x N | threads | irc GFLOP/s | numpy GFLOP/s | irc/numpy | irc share of peak |")
    print("|---|---|---|---|---|---|")
    rng = np.random.default_rng(0)
    for m, k, n in [(1024, 1024, 1024), (100, 784, 1024), (100, 1024, 1024), (100, 1024, 10)]:
        w = (rng.standard_normal((k, n)) / np.sqrt(k)).astype(np.float32)
        x = rng.standard_normal((m, k)).astype(np.float32)
        tile = choose_tile(m, n, cpu_spec().vector_bits)
        b = GraphBuilder("gemm")
        xv = b.input("x", (m, k))
        g = b.build(b.op("gemm_packed", xv, b.param("bp", pack_panels(np.ascontiguousarray(w.T), tile.nr)), n=n))
        flops = 2 * m * n * k
        for threads in threads_list:
            exe = irc.compile(g, target="cpu", threads=threads)
            ti = measure(lambda: exe.run([x]), budget_s=budget).median
            if threadpool_limits is not None:
                with threadpool_limits(threads):
                    tn = measure(lambda: x @ w, budget_s=budget).median
            else:
                tn = measure(lambda: x @ w, budget_s=budget).median
            gi, gn = flops / ti / 1e6, flops / tn / 1e6
            print(f"| {m} x {k} x {n} | {threads} | {gi:.1f} | {gn:.1f} | {gi / gn:.2f} | {gi / (peak * threads):.0%} |",
                  flush=True)


def fma_peak_gflops() -> float:
    """Single-core f32 FMA throughput: a loop of independent vector FMAs in LLVM IR."""
    import ctypes

    from llvmlite import ir

    from irc.targets.cpu import llvm_env
    from irc.targets.llvm import lltypes as T
    from irc.targets.llvm import machine

    spec = llvm_env.cpu_spec()
    vl = spec.vector_bits // 32
    vt = ir.VectorType(T.F32, vl)
    mod = ir.Module("peak")
    fn = ir.Function(mod, ir.FunctionType(T.F32, [T.I64]), "peak")
    fma = ir.Function(mod, ir.FunctionType(vt, [vt, vt, vt]), f"llvm.fma.v{vl}f32")
    b = ir.IRBuilder(fn.append_basic_block("e"))
    entry = b.block
    loop = fn.append_basic_block("l")
    done = fn.append_basic_block("d")
    b.branch(loop)
    b.position_at_end(loop)
    i = b.phi(T.I64)
    i.add_incoming(ir.Constant(T.I64, 0), entry)
    accs = [b.phi(vt) for _ in range(12)]
    one = ir.Constant(vt, [1.0000001] * vl)
    for a in accs:
        a.add_incoming(ir.Constant(vt, [0.5] * vl), entry)
    new = [b.call(fma, [a, one, one]) for a in accs]
    for a, v in zip(accs, new):
        a.add_incoming(v, loop)
    i2 = b.add(i, ir.Constant(T.I64, 1))
    i.add_incoming(i2, loop)
    b.cbranch(b.icmp_signed("<", i2, fn.args[0]), loop, done)
    b.position_at_end(done)
    s = new[0]
    for v in new[1:]:
        s = b.fadd(s, v)
    b.ret(b.extract_element(s, ir.Constant(T.I32, 0)))
    tm = llvm_env.target_machine(spec, jit=True)
    m = machine.parse(str(mod))
    lib = llvm_env.jit_link(tm.emit_object(m), ["peak"])
    f = ctypes.CFUNCTYPE(ctypes.c_float, ctypes.c_int64)(lib["peak"])
    n = 20_000_000
    f(1000)
    best = float("inf")
    for _ in range(5):
        t = time.perf_counter()
        f(n)
        best = min(best, time.perf_counter() - t)
    return 12 * vl * 2 * n / best / 1e9


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        engine, name, batch, threads, budget = sys.argv[2:7]
        print(json.dumps(worker(engine, name, int(batch), int(threads), float(budget))))
        return
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default=",".join(sorted({m for m, _, _ in MODELS})))
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--budget", type=float, default=3.0, help="seconds of timed runs per measurement")
    ap.add_argument("--gemm", action="store_true", help="GEMM GFLOP/s instead of the model table")
    args = ap.parse_args()
    threads = [int(t) for t in args.threads.split(",")]
    if args.gemm:
        gemm_table(threads, args.budget)
        return
    wanted = set(args.models.split(","))
    table([m for m in MODELS if m[0] in wanted], threads, args.budget)


if __name__ == "__main__":
    main()
