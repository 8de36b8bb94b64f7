"""The CPU thread pool when it has nothing to do: how much CPU its idle workers burn, and how long
a process takes to exit after its last run, next to the latency of the runs themselves.

    python benchmarks/thread_pool_idle.py [--model lenet5] [--batch 1] [--threads 1,2,16] [--budget 2]
                                          [--spins 1024,4194304] [--rounds 1]

Each thread count runs in a fresh process: compile, time runs (irc.bench.measure), then sleep
one second and report the CPU seconds the process used meanwhile (idle workers spinning show up
here), then return; the parent times from that return to the process's exit. ``--spins`` compares
idle spin counts before a worker sleeps (thread_pool.SPIN_BEFORE_SLEEP; default: the pool's own),
interleaved ``--rounds`` times so that a shared machine's load falls on each alike. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time


def worker(model: str, batch: int, threads: int, budget: float, spins: int) -> None:
    import resource

    import numpy as np

    import irc
    import irc.zoo
    from irc.bench import measure
    from irc.targets.cpu import thread_pool

    if spins > 0:
        thread_pool.SPIN_BEFORE_SLEEP = spins
        thread_pool.jit_pool_address(use_cache=False)  # the pool built now, with these spins

    proto = irc.zoo.build(model, batch=batch)
    m = irc.compile(proto, target="cpu", threads=threads)
    rng = np.random.default_rng(0)
    inputs = [rng.standard_normal(v.shape).astype(np.float32) for v in m.graph.inputs]
    t = measure(lambda: m.run(inputs), budget_s=budget)

    def cpu() -> float:
        r = resource.getrusage(resource.RUSAGE_SELF)
        return r.ru_utime + r.ru_stime

    c0 = cpu()
    time.sleep(1.0)
    idle = cpu() - c0
    print(json.dumps({"median_ms": t.median, "p10_ms": t.p10, "runs": t.runs, "idle_cpu_s": idle,
                      "leave": time.time()}), flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="lenet5")
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--threads", default="1,2,16")
    ap.add_argument("--budget", type=float, default=2.0)
    ap.add_argument("--spins", default="0", help="idle spins before a worker sleeps (0: the pool's own)")
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--worker", nargs=5, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        model, batch, threads, budget, spins = args.worker
        worker(model, int(batch), int(threads), float(budget), int(spins))
        return
    print(f"{'model':<12}{'batch':>6}{'spins':>9}{'threads':>8}{'median ms':>11}{'p10 ms':>9}{'runs':>7}"
          f"{'idle CPU s/s':>13}{'exit ms':>9}")
    runs = [(t, s) for _ in range(args.rounds) for t in args.threads.split(",") for s in args.spins.split(",")]
    for threads, spins in runs:
        p = subprocess.Popen([sys.executable, __file__, "--worker", args.model, str(args.batch), threads,
                              str(args.budget), spins], stdout=subprocess.PIPE, text=True)
        line = p.stdout.readline()
        p.wait()
        gone = time.time()
        r = json.loads(line)
        print(f"{args.model:<12}{args.batch:>6}{spins:>9}{threads:>8}{r['median_ms']:>11.3f}{r['p10_ms']:>9.3f}{r['runs']:>7}"
              f"{r['idle_cpu_s']:>13.3f}{1e3 * (gone - r['leave']):>9.1f}")


if __name__ == "__main__":
    main()
