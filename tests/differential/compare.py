"""Running one random graph on a target and on the interpreter, and judging the difference."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

import irc
from irc.errors import IRCError
from irc.ir import interpret
from tests.differential.graphs import Case, tolerance


@dataclass
class Outcome:
    kind: str  # "match", "mismatch" or "refused" (the target declined the graph with an IRCError)
    detail: str = ""


def run_case(case: Case, target: str, **options) -> Outcome:
    """Compile ``case`` for ``target``, run it, and compare with the interpreter."""
    want = interpret(case.graph, list(case.inputs))
    try:
        got = irc.compile(case.graph, target=target, **options).run(list(case.inputs))
    except IRCError as e:
        return Outcome("refused", str(e).splitlines()[0])
    for i, (a, e, bound) in enumerate(zip(got, want, case.bounds)):
        if a.shape != e.shape or a.dtype != e.dtype:
            return Outcome("mismatch", f"output {i}: {a.dtype}{list(a.shape)} != {e.dtype}{list(e.shape)}")
        rtol, atol = tolerance(bound)
        a64, e64 = a.astype(np.float64), e.astype(np.float64)
        bad = ~np.isclose(a64, e64, rtol=rtol, atol=atol, equal_nan=True)
        if bad.any():
            j = np.flatnonzero(bad)[0]
            return Outcome("mismatch", f"output {i}: {bad.sum()} of {a.size} differ, first at flat index {j}: "
                                       f"{a64.flat[j]!r} vs {e64.flat[j]!r} (rtol {rtol}, atol {atol:.3g})")
    return Outcome("match")
