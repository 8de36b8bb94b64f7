"""Pass registry: a pass is a frozen dataclass whose typed fields are its options.

Two shapes of pass exist (see :mod:`irc.passes.rewrite` for the local-rewrite driver); both are
:class:`Pass` subclasses, registered here by name so pipelines, ``--passes`` and ``--print-after``
can refer to them. A pass owned by a target (the CPU lowering, the DNeuro check) registers when
its target's module is imported.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, make_dataclass
from typing import Any, ClassVar

from irc.errors import InputError
from irc.ir.graph import Graph


@dataclass(frozen=True)
class Pass:
    """A graph pass, ``run(graph) -> graph``. Subclasses are frozen dataclasses: their fields are
    the pass's options, ``name`` is how pipelines and the CLI name it, and the docstring says
    what it matches, what it produces and what it assumes."""

    name: ClassVar[str] = ""

    def run(self, g: Graph) -> Graph:
        raise NotImplementedError

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


def register_pass(arg):
    """Register a pass. On a :class:`Pass` subclass: ``@register_pass`` (its ``name`` is the key).
    On a function ``fn(graph, *, option=default, ...) -> graph``: ``@register_pass("name")`` makes
    the pass class, whose fields are the function's keyword-only parameters."""
    if isinstance(arg, str):
        def wrap(fn: Callable[..., Graph]) -> Callable[..., Graph]:
            _add(function_pass(arg, fn))
            fn.pass_name = arg
            return fn

        return wrap
    _add(arg)
    return arg


def _add(cls: type[Pass]) -> None:
    assert cls.name, f"{cls.__name__} has no pass name"
    assert cls.name not in PASSES, f"pass {cls.name} registered twice"
    PASSES[cls.name] = cls


def function_pass(name: str, fn: Callable[..., Graph]) -> type[Pass]:
    """The Pass class of ``fn``: one field per keyword-only parameter, with its annotation and
    default; ``run`` calls ``fn`` with them."""
    spec = []
    for p in inspect.signature(fn).parameters.values():
        if p.kind is inspect.Parameter.KEYWORD_ONLY:
            kind = Any if p.annotation is inspect.Parameter.empty else p.annotation
            spec.append((p.name, kind) if p.default is inspect.Parameter.empty
                        else (p.name, kind, field(default=p.default)))

    def run(self, g: Graph) -> Graph:
        return fn(g, **{f.name: getattr(self, f.name) for f in fields(self)})

    cls = make_dataclass("".join(w.capitalize() for w in name.split("_")) + "Pass", spec, bases=(Pass,),
                         frozen=True, namespace={"run": run, "__doc__": fn.__doc__, "__module__": fn.__module__})
    cls.name = name
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
