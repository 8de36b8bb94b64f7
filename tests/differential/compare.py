"""Running one random graph on a target and on its reference, and judging the difference: the
interpreter within graphs.tolerance (cpu, cuda, fpga), or the int8 CPU target bit for bit (dneuro)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

import irc
from irc.errors import IRCError
from irc.ir import interpret
from tests.differential.dneuro_graphs import DneuroCase
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


def run_dneuro_case(case: DneuroCase) -> Outcome:
    """Quantize ``case`` as ``irc.compile(target="fpga", flow="dneuro")`` does, and compare the
    accelerator's emulator with the int8 CPU target on that quantized graph, bit for bit."""
    try:
        acc = irc.compile(case.graph, target="fpga", flow="dneuro", calib=case.calib,
                          activation_scheme=case.scheme).executable
    except IRCError as e:
        # The flow checks its emulator against the int8 interpreter while it builds: that
        # failure is a mismatch, not a refusal.
        kind = "mismatch" if "emulator differs" in str(e) else "refused"
        return Outcome(kind, str(e).splitlines()[0])
    cpu = irc.compile(acc.graph, target="cpu", threads=1)
    for i, (a, e) in enumerate(zip(acc.run(case.inputs), cpu.run(case.inputs), strict=True)):
        if a.shape != e.shape or a.dtype != e.dtype:
            return Outcome("mismatch", f"output {i}: {a.dtype}{list(a.shape)} != {e.dtype}{list(e.shape)}")
        bad = a != e
        if bad.any():
            j = np.flatnonzero(bad)[0]
            return Outcome("mismatch", f"output {i}: {bad.sum()} of {a.size} differ, first at flat index {j}: "
                                       f"{a.flat[j]!r} (emulator) vs {e.flat[j]!r} (cpu), tolerance 0")
    return Outcome("match")
