"""Pass registry: every pass is a named function ``Graph -> Graph``.

Two shapes of pass exist (see :mod:`irc.passes.rewrite` for the local-rewrite driver); both are
registered here by name so pipelines, ``--passes`` and ``--print-after`` can refer to them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from irc.errors import InputError
from irc.ir.graph import Graph

PassFn = Callable[..., Graph]


@dataclass(frozen=True, slots=True)
class PassInfo:
    name: str
    fn: PassFn
    doc: str


PASSES: dict[str, PassInfo] = {}


def register_pass(name: str):
    """Decorator: register ``fn(graph, **options) -> graph`` under ``name``."""

    def wrap(fn: PassFn) -> PassFn:
        assert name not in PASSES, f"pass {name} registered twice"
        PASSES[name] = PassInfo(name, fn, (fn.__doc__ or "").strip())
        fn.pass_name = name
        return fn

    return wrap


def get_pass(name: str) -> PassInfo:
    import irc.passes  # noqa: F401  (registers every pass)

    try:
        return PASSES[name]
    except KeyError:
        known = ", ".join(sorted(PASSES))
        raise InputError(f"unknown pass '{name}' (known: {known})") from None
