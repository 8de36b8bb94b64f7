"""A fuzzing run: mutants 0..n-1 of one seed, tried in children, counted per class; the ones
that end in another exception, a crash or a hang are saved with what made them."""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tests.fuzz.runner import CLASSES, Mutant, Outcome, make_mutant, run_isolated, warm_up, write_mutant

BAD = ("other", "crash", "hang")


def fuzz(indices: Iterable[int], *, seed: int, targets: list[str], seeds: list[str], timeout: float,
         jobs: int = 1, out: Path | None = None,
         progress: Callable[[int, Mutant, Outcome], None] | None = None) -> tuple[Counter, list[tuple[Mutant, Outcome]]]:
    """Counts per class and the (mutant, outcome) pairs of every bad class."""
    warm_up()
    counts: Counter = Counter({c: 0 for c in CLASSES})
    bad: list[tuple[Mutant, Outcome]] = []

    def one(i: int) -> tuple[Mutant, Outcome]:
        m = make_mutant(seed, i, seeds)
        return m, run_isolated(m, targets, timeout)

    with ThreadPoolExecutor(max(1, jobs)) as pool:
        for done, (m, o) in enumerate(pool.map(one, indices)):
            counts[o.cls] += 1
            if o.cls in BAD:
                bad.append((m, o))
                if out is not None:
                    save(m, o, out)
            if progress is not None:
                progress(done, m, o)
    return counts, bad


def save(m: Mutant, o: Outcome, out: Path) -> Path:
    folder = out / f"{m.index:06d}-{o.cls}"
    write_mutant(m, folder)
    (folder / "outcome.json").write_text(json.dumps(
        {"index": m.index, "seed_model": m.seed_model, "mutation": m.mutation, "class": o.cls,
         "detail": o.detail, "where": o.where}, indent=1) + "\n")
    return folder


def summary(counts: Counter, bad: list[tuple[Mutant, Outcome]], seconds: float) -> str:
    total = sum(counts.values())
    lines = [f"{total} mutants in {seconds:.0f} s"]
    for c in CLASSES:
        lines.append(f"  {c:<9} {counts[c]:>6}  ({100 * counts[c] / max(total, 1):.1f}%)")
    kinds = Counter(f"{o.cls}: {o.where}" for _, o in bad)
    if kinds:
        lines.append("offending classes (each with its first mutant):")
        first = {}
        for m, o in bad:
            first.setdefault(f"{o.cls}: {o.where}", (m, o))
        for k, n in kinds.most_common():
            m, o = first[k]
            lines.append(f"  {n:>5}  {k}  [#{m.index} {m.seed_model}, {m.mutation}] {o.detail[:160]}")
    return "\n".join(lines)


def now() -> float:
    return time.monotonic()
