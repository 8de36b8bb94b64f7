"""Pipelines: the ordered list of passes each target runs, in one place.

``run_pipeline`` applies passes by name, verifying after each one when ``verify`` is set
(the default in tests and with ``--debug``), and calls ``on_pass(name, graph)`` after each so the
CLI can print the IR after a chosen pass.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from irc.errors import IRCError
from irc.ir.graph import Graph
from irc.ir.verify import verify
from irc.passes.registry import get_pass

#: Target name -> passes, in order. Options a pass takes come from the compile options.
PIPELINES: dict[str, list[str]] = {
    "interp": ["dead_code"],
}


def pipeline_for(target: str) -> list[str]:
    return list(PIPELINES.get(target, ["dead_code"]))


def run_pipeline(
    g: Graph,
    passes: Sequence[str],
    *,
    options: dict | None = None,
    verify_each: bool = True,
    on_pass: Callable[[str, Graph], None] | None = None,
) -> Graph:
    options = options or {}
    for name in passes:
        info = get_pass(name)
        try:
            g = info.fn(g, **_options_for(info.fn, options))
        except IRCError:
            raise
        if verify_each:
            verify(g)
        if on_pass is not None:
            on_pass(name, g)
    return g


def _options_for(fn, options: dict) -> dict:
    """The subset of compile options that ``fn`` declares as keyword parameters."""
    import inspect

    params = inspect.signature(fn).parameters
    return {k: v for k, v in options.items() if k in params and params[k].kind == inspect.Parameter.KEYWORD_ONLY}
