"""The long run: ``python -m tests.differential --n 1000 [--target T] [--seed S] [--out DIR]``.

Draws ``n`` random graphs (the same ones for the same seed), runs each on the target and its
reference, and prints how many matched, mismatched, were refused by the target (an IRCError:
an op or attribute it does not support) or broke the generator; mismatching graphs are written
to --out as IR text. The targets, each with its generator, reference and tolerance:

- cpu: every generated op (graphs.py) on one thread, against the interpreter; fp32 rtol 1e-4,
  atol 1e-5 of the output's magnitude bound (graphs.tolerance: kernels reassociate sums);
- cuda: the same graphs through the CUDA kernels' host emulator; the same tolerance;
- fpga: graphs of the ops the HLS flow maps (hls_graphs.py), its float32 kernels compiled by
  g++ and run as the Vitis software emulation, against the interpreter; the same tolerance
  (float32 arithmetic, loops in another order);
- dneuro: int8 networks of the layers the DNeuro flow maps (dneuro_graphs.py), quantized by
  irc.compile(target="fpga", flow="dneuro"); its bit-exact emulator against the int8 CPU
  target on the same quantized graph; tolerance 0 (equal bit for bit).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable

from tests.differential.compare import run_case, run_dneuro_case
from tests.differential.dneuro_graphs import dneuro_graphs
from tests.differential.graphs import graphs
from tests.differential.hls_graphs import hls_graphs

#: how each target runs here: cpu on one thread, cuda and fpga on their host emulators (no GPU,
#: no FPGA: the CUDA kernels through the emulator, the HLS kernels compiled with g++)
OPTIONS = {"cpu": {"threads": 1}, "cuda": {"emulate": True}, "fpga": {"emulate": True}}
#: the generator of each target (default: every op) and its default number of ops per graph
#: (fpga: fewer, as each kernel is a g++ compile)
GENERATORS = {"fpga": (hls_graphs, 6), "dneuro": (dneuro_graphs, 6)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--target", default="cpu", choices=["cpu", "cuda", "fpga", "dneuro"])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--max-ops", type=int, default=None,
                    help="ops (dneuro: layers) per graph at most (default 8; fpga and dneuro 6)")
    ap.add_argument("--out", type=Path, default=None, help="folder for the graphs that mismatch")
    args = ap.parse_args(argv)
    make, max_ops = GENERATORS.get(args.target, (graphs, 8))
    if args.max_ops is not None:
        max_ops = args.max_ops
    counts: Counter[str] = Counter()
    ops: Counter[str] = Counter()
    failures: list[str] = []
    refusals: Counter[str] = Counter()
    t0 = time.perf_counter()

    @settings(max_examples=args.n, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(case=make(max_ops=max_ops))
    def run(case):
        if args.target == "dneuro":
            out = run_dneuro_case(case)
        else:
            out = run_case(case, args.target, **OPTIONS.get(args.target, {}))
        counts[out.kind] += 1
        ops.update(n.op for n in case.graph.nodes)
        if out.kind == "refused":
            refusals[out.detail[:160]] += 1
        if out.kind == "mismatch":
            failures.append(f"# {out.detail}\n{case.describe()}")
            print(f"  mismatch: {failures[-1]}", file=sys.stderr, flush=True)
        done = sum(counts.values())
        if done % 50 == 0:
            print(f"  {done} graphs, {dict(counts)}, {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)

    run._hypothesis_internal_use_seed = args.seed  # the same graphs for the same seed
    try:
        run()
    except Unsatisfiable:
        pass
    total = sum(counts.values())
    print(f"{total} random graphs on {args.target}: {counts['match']} match, {counts['mismatch']} mismatch, "
          f"{counts['refused']} refused; {time.perf_counter() - t0:.0f} s")
    print("ops exercised: " + ", ".join(f"{k} {v}" for k, v in sorted(ops.items())))
    for why, k in refusals.most_common(5):
        print(f"refused {k}x: {why}")
    if failures and args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        for i, text in enumerate(failures):
            (args.out / f"mismatch_{i}.ir").write_text(text)
    return 1 if counts["mismatch"] else 0


if __name__ == "__main__":
    sys.exit(main())
