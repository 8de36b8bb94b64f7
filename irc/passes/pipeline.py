"""Pipelines as data, and the runner.

Each target declares its pipeline in one place, its ``PIPELINE``: an ordered tuple of pass names
and :class:`Step` entries (a pass run only when an option asks for it, or with fixed options),
readable top to bottom. ``select`` keeps the steps that apply to the compile options.

``run_pipeline`` runs passes given by name, Step or Pass instance. The compile options are shared
by the pipeline: each pass takes those its fields name. Options fixed in a Step must all be
fields of its pass (else an InputError naming the valid ones). The graph is verified after each
pass when ``verify_each`` is set (the default in tests and with ``--debug``), and
``on_pass(name, graph)`` is called after each so the CLI can print the IR after a chosen pass.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import MISSING, dataclass, field, fields
from typing import Any

from irc.ir.graph import Graph
from irc.ir.verify import verify
from irc.passes.registry import Pass, get_pass

Condition = Callable[[Mapping[str, Any]], bool]


@dataclass(frozen=True)
class Step:
    """One pipeline entry: pass ``name``, with ``options`` fixed for this step, run when ``when``
    holds: None (always), an option name (when that option is set), or a predicate of the
    compile options."""

    name: str
    when: str | Condition | None = None
    options: Mapping[str, Any] = field(default_factory=dict)

    def applies(self, options: Mapping[str, Any]) -> bool:
        if self.when is None:
            return True
        if isinstance(self.when, str):
            return bool(options.get(self.when))
        return bool(self.when(options))


PassSpec = str | Step | Pass


def when(condition: str | Condition, *names: str) -> tuple[Step, ...]:
    """Steps for ``names`` that run only when ``condition`` holds (see Step.when)."""
    return tuple(Step(n, when=condition) for n in names)


def steps(pipeline: Iterable[PassSpec]) -> list[Step | Pass]:
    """A pipeline's entries with names made Steps."""
    return [Step(p) if isinstance(p, str) else p for p in pipeline]


def select(pipeline: Iterable[PassSpec], options: Mapping[str, Any]) -> list[Step | Pass]:
    """The entries of ``pipeline`` that apply to ``options``, in order."""
    return [s for s in steps(pipeline) if not isinstance(s, Step) or s.applies(options)]


def pass_class(spec: PassSpec) -> type[Pass]:
    if isinstance(spec, Pass):
        return type(spec)
    return get_pass(spec if isinstance(spec, str) else spec.name)


def option_defaults(pipeline: Iterable[PassSpec]) -> dict[str, Any]:
    """Every option a pass of ``pipeline`` takes, with its default (None where it has none)."""
    return {f.name: None if f.default is MISSING else f.default
            for spec in pipeline for f in fields(pass_class(spec))}


def instantiate(spec: PassSpec, options: Mapping[str, Any] | None = None) -> Pass:
    """The pass ``spec`` names, configured from the shared ``options`` and the step's own."""
    if isinstance(spec, Pass):
        return spec
    if isinstance(spec, str):
        return get_pass(spec).configure(options)
    return get_pass(spec.name).configure(options, **spec.options)


def run_pipeline(
    g: Graph,
    passes: Sequence[PassSpec],
    *,
    options: Mapping[str, Any] | None = None,
    verify_each: bool = True,
    on_pass: Callable[[str, Graph], None] | None = None,
) -> Graph:
    configured = [instantiate(p, options) for p in passes]  # every option error before any work
    for p in configured:
        g = p.run(g)
        if verify_each:
            verify(g)
        if on_pass is not None:
            on_pass(p.name, g)
    return g
