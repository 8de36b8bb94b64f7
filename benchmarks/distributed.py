"""Data-parallel training of the MLP over MPI on one machine: steps/s, communication share, and
a scaling estimate for N nodes.

    python benchmarks/distributed.py                       # runs 1 and 2 ranks through mpirun
    python benchmarks/distributed.py --ranks 1,2,3 --sync-every 1,4 --steps 60

The MLP is 784-1024x3-10 (ReLU, softmax, SGD with momentum; 2.9 M weights, 11.7 MB of
gradients), global batch 100 on random data, cpu target with one thread per rank, so that
R ranks use R cores. Per configuration: after a warm-up epoch, the time of one epoch of
``--steps`` global steps from fit's history, and the part of it each rank spent in
collectives (``comm_time``, mean over ranks). Then the all-reduce of 1 KB ... 16 MB buffers
is timed on the largest rank count, a latency-bandwidth model fitted to it
(irc.dist.scaling), and step time, communication share and speed-up predicted for N nodes
connected by that link and by a 100 Gb/s network (alpha 2 us, beta 12.5 GB/s).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def mpirun_prefix(ranks: int) -> list[str]:
    from irc.dist.launch import find_mpirun, mpirun_command

    exe = find_mpirun()
    if exe is None:
        sys.exit("mpirun not found: pip install mpich, or install an MPI library (docs/distributed.md)")
    return mpirun_command(ranks, exe)


def worker(args) -> None:
    from irc import nn
    from irc.dist import Communicator

    comm = Communicator()
    rng = np.random.default_rng(0)
    n = args.batch * args.steps
    x = rng.random((n, 784), dtype=np.float32)
    y = rng.integers(0, 10, n)
    model = nn.Sequential([nn.Dense(1024, activation="relu"), nn.Dense(1024, activation="relu"),
                           nn.Dense(1024, activation="relu"), nn.Dense(10, activation="softmax")],
                          input_shape=(784,), name="mlp")
    model.compile(nn.SGD(0.01, momentum=0.9), "cross_entropy", target="cpu", threads=1)
    model.fit(x[:args.batch * 3], y[:args.batch * 3], batch_size=args.batch, epochs=1, verbose=0, comm=comm,
              sync_every=args.sync_every)  # warm-up: compile, first touches
    hist = model.fit(x, y, batch_size=args.batch, epochs=1, verbose=0, comm=comm, sync_every=args.sync_every)
    h = {k: v[-1] for k, v in hist.history.items()}
    result = {"ranks": comm.size, "sync_every": args.sync_every, "steps": args.steps, "epoch_s": h["time"],
              "comm_s": h["comm_time"], "comm_bytes": h["comm_bytes"],
              "weight_bytes": 4 * sum(model.get_weight(k).size for k in model.trainable_names)}
    if args.sweep and comm.size > 1:
        sweep = []
        for size in (256, 4096, 65536, 1 << 20, 4 << 20, 16 << 20):
            buf = np.ones(size // 4, np.float32)
            times = []
            for _ in range(10 if size <= (1 << 20) else 5):
                comm.barrier("sweep")
                t = time.perf_counter()
                comm.allreduce_sum([buf], "sweep")
                times.append(time.perf_counter() - t)
            sweep.append((size, float(np.median(times))))
        result["sweep"] = sweep
    if comm.rank == 0:
        Path(args.out).write_text(json.dumps(result))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ranks", default="1,2")
    ap.add_argument("--sync-every", default="1,4")
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--sweep", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        args.sync_every = int(args.sync_every)
        return worker(args)

    from irc.dist.scaling import Link, fit_link, step_estimate

    ranks = [int(r) for r in args.ranks.split(",")]
    ks = [int(k) for k in args.sync_every.split(",")]
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for r in ranks:
            for k in ks if r > 1 else ks[:1]:
                out = Path(tmp) / f"r{r}k{k}.json"
                cmd = [*mpirun_prefix(r), sys.executable, __file__, "--worker", "--out", str(out),
                       "--steps", str(args.steps), "--batch", str(args.batch), "--sync-every", str(k)]
                if r == max(ranks) and k == ks[0]:
                    cmd.append("--sweep")
                subprocess.run(cmd, check=True, cwd=ROOT)
                results.append(json.loads(out.read_text()))
    cpu = _cpu()
    print(f"MLP 784-1024x3-10, global batch {args.batch}, {args.steps} steps per epoch, cpu target, "
          f"1 thread per rank; {cpu}")
    print(f"{'ranks':>5} {'K':>3} {'steps/s':>9} {'comm share':>11} {'MB/step':>9}")
    base = None
    for res in results:
        sps = res["steps"] / res["epoch_s"]
        base = base or sps
        print(f"{res['ranks']:>5} {res['sync_every']:>3} {sps:>9.2f} {res['comm_s'] / res['epoch_s']:>10.1%} "
              f"{res['comm_bytes'] / res['steps'] / 1e6:>9.2f}   ({sps / base:.2f}x one rank)")
    swept = next((res for res in results if "sweep" in res), None)
    if swept is None:
        return
    sizes, secs = zip(*swept["sweep"])
    print("all-reduce on this machine: " + ", ".join(f"{s / 1024:g} KiB {t * 1e6:.0f} us" for s, t in swept["sweep"]))
    link = fit_link(sizes, secs, swept["ranks"])
    print(f"fitted link: alpha {link.alpha * 1e6:.1f} us, beta {link.beta / 1e9:.2f} GB/s")
    one = next(res for res in results if res["ranks"] == 1)
    compute = one["epoch_s"] / one["steps"]
    for name, lk in (("this machine's link", link), ("100 Gb/s network (alpha 2 us, beta 12.5 GB/s)", Link(2e-6, 12.5e9))):
        print(f"estimate over {name}, from one rank's {compute * 1e3:.1f} ms per step:")
        for k in ks:
            sync = one["weight_bytes"] * (1 if k == 1 else 2)  # K>1 averages weights and momentum
            row = [step_estimate(compute, sync, n, lk, k) for n in (2, 4, 8, 16, 64)]
            print(f"  K={k}: " + ", ".join(f"{e['ranks']} nodes {e['speedup']:.1f}x ({e['comm_share']:.0%} comm)"
                                           for e in row))


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return f"{line.split(':', 1)[1].strip()}, {os.cpu_count()} cores"
    except OSError:
        pass
    return f"{os.cpu_count()} cores"


if __name__ == "__main__":
    main()
