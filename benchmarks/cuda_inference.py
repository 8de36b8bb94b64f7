"""irc's cuda target next to PyTorch on the same GPU, same weights, same inputs.

    python benchmarks/cuda_inference.py            # every row
    python benchmarks/cuda_inference.py --quick    # fewer runs

Rows: ResNet-18 batch 1 and 64, the MLP (784-1024x3-10) batch 100, MobileNetV2 batch 1:
median milliseconds of irc (launches replayed as a CUDA graph, and plain stream launches),
PyTorch eager and torch.compile where it works, the ratio irc / eager (below 1: irc is faster)
and the largest output difference. Then GEMM 4096^3 in fp32 and bf16: irc's kernel against
cuBLAS (torch.matmul), in TFLOP/s and as a fraction of cuBLAS.

Timing: warm-up runs first; then CUDA events around the launches only (no host copies) for irc
and for PyTorch, median of many runs, all in one process on one GPU. Without a GPU (or without
pycuda or torch with CUDA) the script says what is missing and exits with status 2.
"""

from __future__ import annotations

import argparse
import statistics
import sys

import numpy as np

MODELS = [("resnet18", 1), ("resnet18", 64), ("mlp", 100), ("mobilenet_v2", 1)]


def need_gpu():
    """(torch, irc.targets.cuda.runtime) or exit 2 with the reason."""
    try:
        from irc.targets.cuda.runtime import device_arch, driver

        driver()
        arch = device_arch(0)
    except Exception as e:  # TargetError: no pycuda / driver / GPU
        print(f"cuda_inference: no CUDA GPU to benchmark on: {e}", file=sys.stderr)
        sys.exit(2)
    try:
        import torch
    except ImportError:
        print("cuda_inference: PyTorch is not installed (pip install torch with CUDA)", file=sys.stderr)
        sys.exit(2)
    if not torch.cuda.is_available():
        print("cuda_inference: this PyTorch has no CUDA (a CPU-only build?); install a CUDA build", file=sys.stderr)
        sys.exit(2)
    return torch, arch


def torch_model(model, torch, device):
    """The ONNX zoo model as torch.nn.functional calls on ``device`` (benchmarks/torch_peer.py)."""
    import os

    sys.path.insert(0, os.path.dirname(__file__))
    from torch_peer import torch_graph

    graph, name = torch_graph(model, torch, device), model.graph.input[0].name
    return lambda x: graph({name: x})[0]


def time_torch(fn, torch, runs: int) -> float:
    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(runs):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    return statistics.median(times)


def model_rows(torch, runs: int) -> None:
    import irc
    from irc import zoo

    print(f"{'model':<14}{'batch':>6}{'irc graph ms':>14}{'irc ms':>9}{'eager ms':>10}{'compile ms':>12}"
          f"{'irc/eager':>11}{'max |diff|':>12}")
    dev = torch.device("cuda")
    for name, batch in MODELS:
        model = zoo.build(name, batch=batch)
        shape = [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
        x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
        plain = irc.compile(model, target="cuda")
        graphed = irc.compile(model, target="cuda", graphs=True)
        y_irc = graphed(x)
        plain(x)
        t_graph = statistics.median(graphed.executable.session().time_ms(runs))
        t_plain = statistics.median(plain.executable.session().time_ms(runs))
        f = torch_model(model, torch, dev)
        xt = torch.from_numpy(x).to(dev)
        with torch.no_grad():
            y_t = f(xt).cpu().numpy()
            t_eager = time_torch(lambda f=f, xt=xt: f(xt), torch, runs)
            try:
                fc = torch.compile(f)
                t_comp = time_torch(lambda fc=fc, xt=xt: fc(xt), torch, runs)
                comp = f"{t_comp:12.3f}"
            except Exception:  # torch.compile needs a working Triton/inductor toolchain
                comp = f"{'-':>12}"
        diff = float(np.max(np.abs(y_irc - y_t)))
        print(f"{name:<14}{batch:>6}{t_graph:>14.3f}{t_plain:>9.3f}{t_eager:>10.3f}{comp}"
              f"{t_graph / t_eager:>11.2f}{diff:>12.2e}")


def gemm_rows(torch, runs: int) -> None:
    import irc
    from irc.ir import GraphBuilder
    from irc.ir.types import DType, TensorType

    n = 4096
    flops = 2 * n ** 3
    print(f"\n{'GEMM 4096^3':<14}{'irc TFLOP/s':>12}{'cuBLAS TFLOP/s':>16}{'irc/cuBLAS':>12}")
    for dt, tdt in ((DType.f32, torch.float32), (DType.bf16, torch.bfloat16)):
        b = GraphBuilder("gemm")
        a = b.input("a", TensorType((n, n), dt))
        w = b.input("w", TensorType((n, n), dt))
        (o,) = b.add_node("gemm_fused", [a, w], {})
        c = irc.compile(b.build(o), target="cuda")
        rng = np.random.default_rng(0)
        av, wv = (rng.standard_normal((n, n)).astype(dt.numpy) for _ in range(2))
        c(av, wv)
        t_irc = statistics.median(c.executable.session().time_ms(runs))
        at, wt = (torch.from_numpy(v.astype(np.float32)).to("cuda", tdt) for v in (av, wv))
        t_cublas = time_torch(lambda at=at, wt=wt: at @ wt, torch, runs)
        irc_tf, cub_tf = flops / t_irc / 1e9, flops / t_cublas / 1e9
        print(f"{dt.value:<14}{irc_tf:>12.1f}{cub_tf:>16.1f}{irc_tf / cub_tf:>12.2f}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="10 timed runs instead of 50")
    args = ap.parse_args(argv)
    torch, arch = need_gpu()
    runs = 10 if args.quick else 50
    print(f"GPU: {torch.cuda.get_device_name(0)} ({arch}); PyTorch {torch.__version__}")
    model_rows(torch, runs)
    gemm_rows(torch, runs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
