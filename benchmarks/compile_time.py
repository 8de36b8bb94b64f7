"""Compile time and peak memory: irc's cold and warm (compile cache hit) compiles next to
onnxruntime's session creation, for every zoo model and the train steps, in one table.

    python benchmarks/compile_time.py                        # every zoo model, LeNet-5 and MLP train steps
    python benchmarks/compile_time.py --models lenet5 resnet18 --threads 1
    python benchmarks/compile_time.py --no-train --json out.json

Every figure comes from a fresh process, so nothing is shared between measurements: the
libraries are imported first (``import irc``, the cpu target and, for a cold compile, irc's ONNX
reader, which a warm compile does not use; ``import onnxruntime``) and not timed, then the
timed part is ``irc.compile(path, "cpu")`` or ``ort.InferenceSession(path)`` followed by one
run on zeros (which must succeed). ``cold`` compiles with an empty compile
cache, ``warm`` again in a new process with the cache the cold run filled. Peak RSS is VmHWM
from /proc/self/status at the end of the process (compile and one run; it includes the
interpreter and libraries), for the cold and the warm process, next to onnxruntime's.
Train steps (irc.nn, no onnxruntime peer) time ``Model.prepare(batch)``: trace, autodiff and
compile of one step. Ratios are irc / onnxruntime; each model is timed ``--repeat`` times per
mode and the median is kept.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: the irc source tree the measured processes import (--irc-root: compare two versions)
IRC_ROOT = ROOT

_CHILD = r"""
import json, os, sys, time
mode, path, threads, phase = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
import numpy as np

def peak_rss_mb():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")

if mode == "ort":
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    t = time.perf_counter()
    s = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    dt = time.perf_counter() - t
    types = {"tensor(float)": np.float32, "tensor(int64)": np.int64, "tensor(int32)": np.int32,
             "tensor(bool)": np.bool_, "tensor(float16)": np.float16, "tensor(double)": np.float64}
    feeds = {i.name: np.zeros([d if isinstance(d, int) else 1 for d in i.shape], types[i.type])
             for i in s.get_inputs()}
    s.run(None, feeds)
    print(json.dumps({"seconds": dt, "rss_mb": peak_rss_mb(), "cached": None}))
elif mode == "irc":
    import irc
    if phase == "cold":
        import irc.frontend.onnx  # the ONNX reader, as importing onnxruntime loads its own (a warm compile needs none)
    from irc.targets import get_target
    get_target("cpu")
    compile_ = irc.compile  # irc.api is imported on first use: here, not in the timed part
    t = time.perf_counter()
    c = compile_(path, "cpu", threads=threads)
    dt = time.perf_counter() - t
    c(*[np.zeros(v.shape, v.dtype.numpy) for v in c.graph.inputs])
    print(json.dumps({"seconds": dt, "rss_mb": peak_rss_mb(), "cached": getattr(c.executable, "cached", None)}))
else:  # a train step: mode is "train:<name>"
    sys.path.insert(0, os.path.dirname(path))
    from train_step import irc_lenet, irc_mlp
    from irc import nn
    model = {"train:lenet5": irc_lenet, "train:mlp": irc_mlp}[mode]()
    batch = 64 if mode == "train:lenet5" else 100
    model.compile(nn.SGD(0.05, momentum=0.9), "cross_entropy", metrics=["accuracy"], target="cpu", threads=threads)
    t = time.perf_counter()
    model.prepare(batch)
    dt = time.perf_counter() - t
    exe = model._compiled("step", batch)
    print(json.dumps({"seconds": dt, "rss_mb": peak_rss_mb(), "cached": getattr(exe.exe, "cached", None)}))
"""


def child(mode: str, path: str, threads: int, cache_dir: str, phase: str = "cold") -> dict:
    env = {**os.environ, "IRC_CACHE_DIR": cache_dir, "PYTHONPATH": os.pathsep.join(
        [str(IRC_ROOT), os.environ.get("PYTHONPATH", "")])}
    r = subprocess.run([sys.executable, "-c", _CHILD, mode, path, str(threads), phase], capture_output=True,
                       text=True, env=env, cwd=IRC_ROOT)
    if r.returncode != 0:
        return {"error": (r.stderr.strip().splitlines() or ["failed"])[-1]}
    return json.loads(r.stdout.strip().splitlines()[-1])


def median_of(runs: list[dict]) -> dict:
    ok = [r for r in runs if "error" in r] or runs
    if "error" in ok[0]:
        return ok[0]
    return {"seconds": statistics.median(r["seconds"] for r in runs),
            "rss_mb": statistics.median(r["rss_mb"] for r in runs), "cached": runs[0]["cached"]}


def measure(name: str, path: str, threads: int, repeat: int, peer: bool) -> dict:
    cold, warm = [], []
    for _ in range(repeat):
        with tempfile.TemporaryDirectory(prefix="irc-bench-cache-") as cache:
            cold.append(child(name if name.startswith("train:") else "irc", path, threads, cache))
            warm.append(child(name if name.startswith("train:") else "irc", path, threads, cache, "warm"))
    row = {"model": name, "cold": median_of(cold), "warm": median_of(warm)}
    if peer:
        row["ort"] = median_of([child("ort", path, threads, "") for _ in range(repeat)])
    return row


def fmt(x, spec=".2f") -> str:
    return "-" if x is None else format(x, spec)


def table(rows: list[dict]) -> str:
    head = (f"{'model':<16}{'cold s':>8}{'warm s':>8}{'ort s':>8}{'warm/ort':>9}{'cold/ort':>9}"
            f"{'cold MB':>8}{'warm MB':>8}{'ort MB':>8}{'warm/ort':>9}{'cold/ort':>9}  hit")
    lines = [head, "-" * len(head)]
    for r in rows:
        c, w, o = r["cold"], r["warm"], r.get("ort") or {}
        err = next((x["error"] for x in (c, w, o) if "error" in x), None)
        if err:
            lines.append(f"{r['model']:<16} failed: {err}")
            continue
        os_ = o.get("seconds")
        om = o.get("rss_mb")
        lines.append(f"{r['model']:<16}{fmt(c['seconds']):>8}{fmt(w['seconds']):>8}{fmt(os_):>8}"
                     f"{fmt(os_ and w['seconds'] / os_):>9}{fmt(os_ and c['seconds'] / os_):>9}"
                     f"{fmt(c['rss_mb'], '.0f'):>8}{fmt(w['rss_mb'], '.0f'):>8}{fmt(om, '.0f'):>8}"
                     f"{fmt(om and w['rss_mb'] / om):>9}{fmt(om and c['rss_mb'] / om):>9}  {w['cached']}")
    return "\n".join(lines)


def main() -> None:
    import irc.zoo

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", nargs="*", default=list(irc.zoo.MODELS), help="zoo models (default: all)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=1, help="processes per figure; the median is kept")
    ap.add_argument("--no-train", action="store_true", help="skip the train steps")
    ap.add_argument("--json", metavar="PATH", help="also write the rows as JSON")
    ap.add_argument("--irc-root", metavar="DIR", help="measure the irc in this source tree (e.g. a checkout of an "
                                                       "earlier commit) instead of this one")
    args = ap.parse_args()
    global IRC_ROOT
    IRC_ROOT = Path(args.irc_root).resolve() if args.irc_root else ROOT
    rows = []
    with tempfile.TemporaryDirectory(prefix="irc-bench-models-") as tmp:
        for name in args.models:
            path = os.path.join(tmp, f"{name}.onnx")
            Path(path).write_bytes(irc.zoo.build(name, batch=1).SerializeToString())
            rows.append(measure(name, path, args.threads, args.repeat, peer=True))
            print(table(rows[-1:]).splitlines()[-1], flush=True)
        if not args.no_train:
            for name in ("train:lenet5", "train:mlp"):
                rows.append(measure(name, str(IRC_ROOT / "benchmarks" / "train_step.py"), args.threads, args.repeat,
                                    peer=False))
                print(table(rows[-1:]).splitlines()[-1], flush=True)
    print()
    print(f"irc: {IRC_ROOT}, cpu: {_cpu_name()}, threads={args.threads}, repeat={args.repeat}, "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print(table(rows))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))


def _cpu_name() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


if __name__ == "__main__":
    main()
