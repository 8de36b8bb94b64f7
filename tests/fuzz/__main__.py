"""``python -m tests.fuzz --n 10000 [--seed S] [--targets interp,cpu] [--out DIR]``: a fuzzing run."""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

from tests.fuzz.campaign import BAD, fuzz, now, summary
from tests.fuzz.seeds import SEEDS


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tests.fuzz", description=__doc__)
    p.add_argument("--n", type=int, default=1000, help="number of mutants (default 1000)")
    p.add_argument("--seed", type=int, default=0, help="run seed: mutant i depends only on (seed, i)")
    p.add_argument("--only", type=int, nargs="*", help="run only these mutant indices (to reproduce one)")
    p.add_argument("--targets", default="interp,cpu", help="comma-separated: interp, cpu, info (default interp,cpu)")
    p.add_argument("--seeds", default=",".join(SEEDS), help=f"seed models (default all: {','.join(SEEDS)})")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds per mutant, all targets (default 60)")
    p.add_argument("--jobs", type=int, default=1, help="mutants tried at once (default 1)")
    p.add_argument("--out", type=Path, help="folder for the mutants that end in other/crash/hang")
    p.add_argument("--log", type=Path, help="write one JSON line per mutant (index, mutation, class, detail) here")
    p.add_argument("-q", "--quiet", action="store_true", help="no line per offending mutant while running")
    a = p.parse_args(argv)
    targets = [t for t in a.targets.split(",") if t]
    seeds = [s for s in a.seeds.split(",") if s]
    unknown = [s for s in seeds if s not in SEEDS] + [t for t in targets if t not in ("interp", "cpu", "info")]
    if unknown:
        p.error(f"unknown seed model or target: {', '.join(unknown)}")
    # compiled code of the mutants goes to a cache of its own, never the user's
    os.environ.setdefault("IRC_CACHE_DIR", str(Path(tempfile.gettempdir()) / "irc-fuzz-cache"))
    start = now()
    log = a.log.open("w") if a.log else None

    def progress(done, m, o):
        if log is not None:
            log.write(json.dumps({"index": m.index, "seed_model": m.seed_model, "mutation": m.mutation,
                                  "class": o.cls, "detail": o.detail, "where": o.where}) + "\n")
        if o.cls in BAD and not a.quiet:
            print(f"#{m.index} {o.cls} [{m.seed_model}, {m.mutation}] {o.where} {o.detail[:200]}", flush=True)
        if (done + 1) % 100 == 0:
            print(f"... {done + 1} mutants, {now() - start:.0f} s", file=sys.stderr, flush=True)

    indices = a.only if a.only else range(a.n)
    counts, bad = fuzz(indices, seed=a.seed, targets=targets, seeds=seeds, timeout=a.timeout, jobs=a.jobs,
                       out=a.out, progress=progress)
    if log is not None:
        log.close()
    print(summary(counts, bad, now() - start))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
