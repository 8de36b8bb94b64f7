"""The reference interpreter as a target: slow, exact, always available."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from irc.ir.graph import Graph
from irc.ir.interp import interpret
from irc.passes.pipeline import when
from irc.targets.base import Target


class InterpExecutable:
    def __init__(self, graph: Graph):
        self.graph = graph

    def run(self, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
        return interpret(self.graph, list(inputs))


class InterpTarget(Target):
    name = "interp"
    options: dict[str, Any] = {"quantize": None, "calib": None, "calib_method": "minmax", "activation_scheme": "asym",
                               "weight_bits": 8}
    PIPELINE = (
        "dead_code",
        # with quantize: the int8 graph every target's integer kernels must match
        *when("quantize", "fold_constants", "fold_batchnorm", "calibrate", "quantize", "fold_qdq"),
    )

    def build(self, graph: Graph, options: dict[str, Any]) -> InterpExecutable:
        return InterpExecutable(graph)
