"""The long run: ``python -m tests.differential --n 1000 [--target cpu] [--seed S] [--out DIR]``.

Draws ``n`` random graphs (the same ones for the same seed), runs each on the target and the
interpreter, and prints how many matched, mismatched, were refused by the target (an IRCError:
an op or attribute it does not support) or broke the generator; mismatching graphs are written
to --out as IR text."""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable

from tests.differential.compare import run_case
from tests.differential.graphs import graphs


#: how each target runs here: cpu on one thread, cuda and fpga on their host emulators (no GPU,
#: no FPGA: the CUDA kernels through the emulator, the HLS kernels compiled with g++)
OPTIONS = {"cpu": {"threads": 1}, "cuda": {"emulate": True}, "fpga": {"emulate": True}}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--target", default="cpu")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--max-ops", type=int, default=8)
    ap.add_argument("--out", type=Path, default=None, help="folder for the graphs that mismatch")
    args = ap.parse_args(argv)
    counts: Counter[str] = Counter()
    ops: Counter[str] = Counter()
    failures: list[str] = []
    t0 = time.perf_counter()

    @settings(max_examples=args.n, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(case=graphs(max_ops=args.max_ops))
    def run(case):
        out = run_case(case, args.target, **OPTIONS.get(args.target, {}))
        counts[out.kind] += 1
        ops.update(n.op for n in case.graph.nodes)
        if out.kind == "mismatch":
            failures.append(f"# {out.detail}\n{case.describe()}")
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
    if failures and args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        for i, text in enumerate(failures):
            (args.out / f"mismatch_{i}.ir").write_text(text)
    return 1 if counts["mismatch"] else 0


if __name__ == "__main__":
    sys.exit(main())
