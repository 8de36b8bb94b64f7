"""The dataflow graph: SSA values, nodes in topological order, inputs, parameters, outputs.

Values and nodes are immutable; a pass builds a new node list (and a new Graph) and may
share untouched values and nodes with the graph it started from. Values hash by identity,
so two values with the same name in different graphs never get confused.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from irc.ir.types import TensorType


@dataclass(frozen=True, slots=True, eq=False)
class Value:
    """One SSA value: produced once (by a node, or as a graph input or parameter)."""

    name: str
    type: TensorType

    @property
    def shape(self) -> tuple[int, ...]:
        return self.type.shape

    @property
    def dtype(self):
        return self.type.dtype

    def __repr__(self) -> str:
        return f"%{self.name}: {self.type}"


@dataclass(frozen=True, slots=True, eq=False)
class Node:
    """An op applied to input values, defining output values. ``attrs`` are resolved:
    every attribute of the op's schema is present with a concrete value."""

    op: str
    inputs: tuple[Value, ...]
    outputs: tuple[Value, ...]
    attrs: dict[str, Any] = field(default_factory=dict)
    name: str = ""

    @property
    def output(self) -> Value:
        """The single output of a one-output node."""
        assert len(self.outputs) == 1, f"{self.op} has {len(self.outputs)} outputs"
        return self.outputs[0]

    @property
    def label(self) -> str:
        """Name used in messages: the node's own name, else its first output's."""
        return self.name or (self.outputs[0].name if self.outputs else self.op)

    def __repr__(self) -> str:
        return f"Node({self.label}: {self.op})"


@dataclass(slots=True)
class Graph:
    """A whole network. ``params`` maps each parameter value to its data (weights,
    biases and constants); ``inputs`` are the data inputs given at every run; ``meta`` holds
    whole-graph decisions made by passes for targets to honour (e.g. flush_denormals)."""

    name: str
    inputs: list[Value]
    params: dict[Value, np.ndarray]
    nodes: list[Node]
    outputs: list[Value]
    meta: dict[str, Any] = field(default_factory=dict)

    def replace(self, **changes) -> Graph:
        """A new graph sharing everything but ``changes``."""
        return dataclasses.replace(self, **changes)

    def producers(self) -> dict[Value, Node]:
        return {v: n for n in self.nodes for v in n.outputs}

    def users(self) -> dict[Value, list[Node]]:
        """Value -> the nodes that read it (in order, a node once per use)."""
        out: dict[Value, list[Node]] = {}
        for n in self.nodes:
            for v in n.inputs:
                out.setdefault(v, []).append(n)
        return out

    def values(self) -> Iterator[Value]:
        """Every value, in definition order: inputs, params, node outputs."""
        yield from self.inputs
        yield from self.params
        for n in self.nodes:
            yield from n.outputs

    def value(self, name: str) -> Value:
        for v in self.values():
            if v.name == name:
                return v
        raise KeyError(name)

    def param_data(self, name: str) -> np.ndarray:
        return self.params[self.value(name)]

    def op_histogram(self) -> dict[str, int]:
        hist: dict[str, int] = {}
        for n in self.nodes:
            hist[n.op] = hist.get(n.op, 0) + 1
        return hist

    @property
    def param_bytes(self) -> int:
        return sum(a.nbytes for a in self.params.values())

    @property
    def param_count(self) -> int:
        return sum(a.size for a in self.params.values())

    def __str__(self) -> str:
        from irc.ir.printer import print_graph

        return print_graph(self)

    # The text form, so that a graph held as a node attribute (a fused body) keys caches by content.
    __repr__ = __str__
