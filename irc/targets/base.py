"""What a target is: a name, the options it takes, its pipeline, and ``build(graph)`` giving an
Executable, a callable ``exe(list of arrays) -> list of arrays`` over checked inputs."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np

from irc.ir.graph import Graph


class Executable(Protocol):
    graph: Graph

    def run(self, inputs: Sequence[np.ndarray]) -> list[np.ndarray]: ...


class Target(Protocol):
    name: str
    #: option name -> default; compile() refuses options not listed here.
    options: dict[str, Any]

    def pipeline(self, options: dict[str, Any]) -> list[str]: ...

    def build(self, graph: Graph, options: dict[str, Any]) -> Executable: ...
