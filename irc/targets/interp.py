"""The reference interpreter as a target: slow, exact, always available."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from irc.ir.graph import Graph
from irc.ir.interp import interpret
from irc.passes.pipeline import pipeline_for


class InterpExecutable:
    def __init__(self, graph: Graph):
        self.graph = graph

    def run(self, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
        return interpret(self.graph, list(inputs))


class InterpTarget:
    name = "interp"
    options: dict[str, Any] = {"quantize": None, "calib": None, "calib_method": "minmax", "activation_scheme": "asym"}

    def pipeline(self, options: dict[str, Any]) -> list[str]:
        if options.get("quantize"):  # the int8 graph every target's integer kernels must match
            return ["dead_code", "fold_constants", "fold_batchnorm", "calibrate", "quantize", "fold_qdq"]
        return pipeline_for("interp")

    def build(self, graph: Graph, options: dict[str, Any]) -> InterpExecutable:
        return InterpExecutable(graph)
