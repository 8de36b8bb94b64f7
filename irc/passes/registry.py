"""Pass registry: a pass is a frozen dataclass whose typed fields are its options.

Two shapes of pass exist (see :mod:`irc.passes.rewrite` for the local-rewrite driver); both are
:class:`Pass` subclasses, registered here by name so pipelines, ``--passes`` and ``--print-after``
can refer to them. A pass owned by a target (the CPU lowering, the DNeuro check) registers when
its target's module is imported.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from typing import Any, ClassVar

from irc.errors import InputError
from irc.ir.graph import Graph


@dataclass(frozen=True)
class Pass(ABC):
    """A graph pass, ``run(graph) -> graph``. Subclasses are frozen dataclasses: their fields are
    the pass's options, ``name`` is how pipelines and the CLI name it, and the docstring says
    what it matches, what it produces and what it assumes."""

    name: ClassVar[str] = ""

    @abstractmethod
    def run(self, g: Graph) -> Graph:
        """The graph after the pass (a new graph; the argument is left as it is)."""

    @classmethod
    def option_names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))

    @classmethod
    def configure(cls, shared: Mapping[str, Any] | None = None, /, **explicit: Any) -> Pass:
        """An instance with the ``shared`` options (a pipeline's compile options) it has fields for
        and every ``explicit`` option; an explicit option that is not a field is an InputError."""
        names = cls.option_names()
        unknown = sorted(set(explicit) - set(names))
        if unknown:
            valid = ", ".join(names) or "none"
            raise InputError(f"pass '{cls.name}' has no option(s) {', '.join(unknown)} (its options: {valid})")
        taken = {k: v for k, v in (shared or {}).items() if k in names}
        try:
            return cls(**taken, **explicit)
        except TypeError as e:  # a required option left out
            raise InputError(f"pass '{cls.name}': {e}") from None


PASSES: dict[str, type[Pass]] = {}
#: Passes registered on first use: name -> a loader that imports the module defining the pass.
#: Targets list their own passes here, so a pipeline or ``--passes`` can name one before its
#: target is loaded.
_LOADERS: dict[str, Callable[[], object]] = {}


def register_pass(cls: type[Pass]) -> type[Pass]:
    """Class decorator: register a :class:`Pass` subclass under its ``name``."""
    assert cls.name, f"{cls.__name__} has no pass name"
    assert cls.name not in PASSES, f"pass {cls.name} registered twice"
    PASSES[cls.name] = cls
    return cls


def register_pass_loader(name: str, load: Callable[[], object]) -> None:
    """Make pass ``name`` known before it is registered: ``load()`` registers it."""
    _LOADERS[name] = load


def get_pass(name: str) -> type[Pass]:
    import irc.passes  # noqa: F401  (registers every target-independent pass)

    if name not in PASSES and name in _LOADERS:
        _LOADERS[name]()
    try:
        return PASSES[name]
    except KeyError:
        known = ", ".join(sorted(set(PASSES) | set(_LOADERS)))
        raise InputError(f"unknown pass '{name}' (known: {known})") from None
