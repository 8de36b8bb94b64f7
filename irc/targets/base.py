"""What a target is: a name, the options it takes, its pipeline as data, and ``build(graph)``
giving an Executable, a callable ``exe(list of arrays) -> list of arrays`` over checked inputs.

Targets subclass :class:`Target` for the default ``pipeline`` (the ``PIPELINE`` entries that apply
to the options) and ``pass_options`` (none).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar, Protocol

import numpy as np

from irc.ir.graph import Graph
from irc.passes.pipeline import PassSpec, select


class Executable(Protocol):
    graph: Graph

    def run(self, inputs: Sequence[np.ndarray]) -> list[np.ndarray]: ...


class Target(Protocol):
    name: str
    #: option name -> default; compile() refuses an option neither listed here nor taken by a
    #: pass of the pipeline.
    options: dict[str, Any]
    #: the passes, in order: names and Steps (see irc.passes.pipeline).
    PIPELINE: ClassVar[Sequence[PassSpec]] = ()

    def pipeline(self, options: dict[str, Any]) -> list[PassSpec]:
        """The passes to run for ``options`` (defaults filled from ``self.options``)."""
        return select(self.PIPELINE, {**self.options, **options})

    def pass_options(self, options: dict[str, Any]) -> dict[str, Any]:
        """Options for the passes that the target derives from its own (facts about the device)."""
        return {}

    def build(self, graph: Graph, options: dict[str, Any]) -> Executable: ...
