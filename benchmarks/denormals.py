"""Denormal numbers: irc's CPU code with flush_denormals (FTZ/DAZ, the default) and without it
(``ftz=False``), on inputs that make denormals, side by side in one run.

    python benchmarks/denormals.py [--threads 1] [--budget 2]

Denormals cost on some paths only: on recent x86 cores wide FMA runs at full speed with them,
while scalar dependent multiply-add chains, division and square root take a slow path. So the
table has both kinds of rows:

- kernels where the cost is expected: a dependent chain of scalar multiply-adds (a recurrence
  no compiler vectorises), division and square root over denormal data, softmax and layer
  normalization of rows that underflow;
- whole example models whose weights and inputs are scaled into the denormal range, where the
  work is vectorised GEMM: there the pass should cost nothing.

``ftz/ieee`` is the latency with the pass divided by the latency without it: below 1.0 the pass
saves time; about 1.0 it costs nothing. The outputs of both builds are compared with the
interpreter's: the IEEE build must agree (rtol 1e-4, atol 1e-5 of the largest output, plus ATOL for the
denormal range)
and the flushed build's outputs must be finite. Nothing here is asserted.
"""

from __future__ import annotations

import argparse

import numpy as np

import irc
from irc.bench import measure
from irc.ir import GraphBuilder, interpret
from irc.ir.types import DType, TensorType

#: the smallest normal f32 is 1.18e-38: data scaled by this lands in the denormal range
TINY = np.float32(1e-39)
#: outputs are compared to rtol 1e-4 and this absolute tolerance: digits inside the denormal
#: range (a few significant bits at most) are not judged
ATOL = 1.2e-38


def _chain(n: int, steps: int):
    """y_{i+1} = y_i * a + x (element-wise, ``steps`` dependent multiply-adds per element). irc
    fuses the chain into one loop that is vectorised across elements, so this measures whether
    the vector multiply-add path pays for denormals."""
    b = GraphBuilder("madd_chain")
    x = b.input("x", TensorType((n,), DType.f32))
    a = b.const(np.float32(0.5))
    y = x
    for _ in range(steps):
        y = b.op("add", b.op("mul", y, a), x)
    return b.build(y), [np.full(n, TINY, np.float32)]


def _div_sqrt(n: int):
    b = GraphBuilder("div_sqrt")
    x = b.input("x", TensorType((n,), DType.f32))
    y = b.op("div", x, b.op("sqrt", b.op("add", b.op("abs", x), b.const(np.float32(1e-30)))))
    return b.build(y), [np.random.default_rng(0).uniform(1e-40, 1e-38, n).astype(np.float32)]


def _softmax(rows: int, cols: int):
    b = GraphBuilder("softmax_rows")
    x = b.input("x", TensorType((rows, cols), DType.f32))
    g = b.build(b.op("softmax", b.op("mul", x, b.const(np.float32(90.0))), axis=1))
    # scores far apart: exp(x - max) underflows into denormals for most of each row
    return g, [np.random.default_rng(1).uniform(-1.0, 0.0, (rows, cols)).astype(np.float32)]


def _layer_norm(rows: int, cols: int):
    b = GraphBuilder("layer_norm")
    x = b.input("x", TensorType((rows, cols), DType.f32))
    scale = b.param("scale", np.ones(cols, np.float32))
    bias = b.param("bias", np.zeros(cols, np.float32))
    g = b.build(b.op("layer_norm", x, scale, bias, axis=-1, epsilon=1.2e-38))
    return g, [(np.random.default_rng(2).standard_normal((rows, cols)) * 1e-20).astype(np.float32)]


def _zoo(name: str, batch: int):
    """An example model with its first layer's weights scaled so every activation is denormal."""
    from irc.frontend.onnx import import_onnx
    from irc.zoo import build

    g = import_onnx(build(name, batch=batch))
    first = next(v for v in g.params if v.type.rank >= 2)
    params = {v: (a * TINY if v == first else a) for v, a in g.params.items()}
    g = g.replace(params=params)
    x = np.random.default_rng(3).standard_normal(g.inputs[0].shape).astype(np.float32)
    return g, [x]


CASES = [
    ("multiply-add chain (vectorised)", lambda: _chain(1 << 16, 64)),
    ("division and square root", lambda: _div_sqrt(1 << 20)),
    ("softmax, underflowing rows", lambda: _softmax(256, 1000)),
    ("layer norm, tiny rows", lambda: _layer_norm(256, 1024)),
    ("MLP b100, denormal activations", lambda: _zoo("mlp", 100)),
    ("LeNet-5 b64, denormal activations", lambda: _zoo("lenet5", 64)),
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--budget", type=float, default=2.0, help="seconds of timed runs per build")
    args = ap.parse_args()
    print("| case | threads | ftz ms | ieee ms | ftz/ieee | ieee build matches interpreter |")
    print("|---|---|---|---|---|---|")
    for label, make in CASES:
        g, inputs = make()
        builds = {ftz: irc.compile(g, target="cpu", threads=args.threads, ftz=ftz) for ftz in (True, False)}
        ms = {ftz: measure(lambda m=m: m.run(inputs), budget_s=args.budget).median for ftz, m in builds.items()}
        want = interpret(g, inputs)
        got_ieee = builds[False].run(inputs)
        ok = all(np.allclose(a, e, rtol=1e-4, atol=ATOL + 1e-5 * float(np.abs(e).max(initial=0)))
                 for a, e in zip(got_ieee, want))
        finite = all(np.isfinite(a).all() for a in builds[True].run(inputs))
        print(f"| {label} | {args.threads} | {ms[True]:.3f} | {ms[False]:.3f} | {ms[True] / ms[False]:.2f} | "
              f"{'yes' if ok else 'NO'}{'' if finite else ' (flushed build not finite)'} |", flush=True)


if __name__ == "__main__":
    main()
