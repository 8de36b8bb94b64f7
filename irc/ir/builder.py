"""GraphBuilder: the way code creates graphs (frontends, passes, tests, irc.nn).

    b = GraphBuilder("mlp")
    x = b.input("x", (100, 784))
    w = b.param("w0", np.zeros((784, 1024), np.float32))
    y = b.op("relu", b.op("matmul", x, w))
    g = b.build(y)

Each ``op`` call type-checks against the registry at once, so an error points at the line
that made the bad node, and fills in canonical attributes.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from irc.errors import IRCError, ModelError
from irc.ir.graph import Graph, Node, Value
from irc.ir.ops import get_op
from irc.ir.types import DType, TensorType
from irc.ir.verify import verify


class GraphBuilder:
    """Accumulates inputs, parameters and nodes; ``build`` returns a verified Graph."""

    def __init__(self, name: str = "graph", *, taken: Iterable[str] = (), reserved: Iterable[str] = ()):
        self.name = name
        self.inputs: list[Value] = []
        self.params: dict[Value, np.ndarray] = {}
        self.nodes: list[Node] = []
        self._names: set[str] = set(taken)
        # Names that fresh() avoids but claim() and rename() may take (an importer's own names).
        self._reserved: set[str] = set(reserved) - self._names
        self._counter = 0

    def fresh(self, base: str | None = None) -> str:
        """A value name not used yet: ``base`` if free, else ``base_1``, ``base_2``... or ``1``, ``2``..."""
        if base is not None and base not in self._names and base not in self._reserved:
            self._names.add(base)
            return base
        while True:
            self._counter += 1
            name = f"{base}_{self._counter}" if base else str(self._counter)
            if name not in self._names and name not in self._reserved:
                self._names.add(name)
                return name

    def claim(self, name: str) -> str:
        """Reserve exactly ``name`` (ModelError if taken)."""
        if name in self._names:
            raise ModelError(f"value name %{name} is used twice")
        self._names.add(name)
        self._reserved.discard(name)
        return name

    def rename(self, v: Value, name: str) -> Value:
        """``v`` under a new name (claimed), replaced in the params and nodes that define or
        use it. Meant for values just made: the scan runs back from the newest node."""
        if v.name == name:
            return v
        new = Value(self.claim(name), v.type)
        if v in self.params:
            self.params = {(new if k is v else k): a for k, a in self.params.items()}
        self.inputs = [new if x is v else x for x in self.inputs]
        for i in range(len(self.nodes) - 1, -1, -1):
            n = self.nodes[i]
            hit_in, hit_out = v in n.inputs, v in n.outputs
            if hit_in or hit_out:
                self.nodes[i] = Node(
                    n.op,
                    tuple(new if x is v else x for x in n.inputs),
                    tuple(new if x is v else x for x in n.outputs),
                    n.attrs,
                    n.name,
                )
            if hit_out:
                break
        return new

    def input(self, name: str, shape: Iterable[int] | TensorType, dtype: DType = DType.f32) -> Value:
        t = shape if isinstance(shape, TensorType) else TensorType(tuple(shape), dtype)
        v = Value(self.claim(name), t)
        self.inputs.append(v)
        return v

    def param(self, name: str, data: np.ndarray, *, exact: bool = False) -> Value:
        """A parameter holding ``data``; the name is made unique unless ``exact``."""
        data = np.asarray(data)
        if not data.flags.c_contiguous:
            data = data.copy()
        v = Value(self.claim(name) if exact else self.fresh(name), TensorType.of(data))
        self.params[v] = data
        return v

    def const(self, data, dtype: DType | None = None, name: str = "const") -> Value:
        """A constant (a parameter that training leaves alone)."""
        arr = np.asarray(data, dtype=dtype.numpy if dtype else None)
        return self.param(name, arr)

    def add_node(
        self,
        op: str,
        inputs: Iterable[Value],
        attrs: dict[str, Any] | None = None,
        *,
        names: Iterable[str] | None = None,
        node_name: str | None = None,
    ) -> tuple[Value, ...]:
        """Append a node; returns its outputs. ``names`` proposes output names."""
        inputs = tuple(inputs)
        label = node_name or (next(iter(names), None) if names is not None else None) or op
        try:
            attrs, types = get_op(op).type_check([v.type for v in inputs], attrs or {})
        except IRCError as e:
            raise e.at(label, op) from None
        proposed = list(names) if names is not None else []
        outs = tuple(
            Value(self.fresh(proposed[i] if i < len(proposed) else None), t) for i, t in enumerate(types)
        )
        self.nodes.append(Node(op, inputs, outs, attrs, node_name or ""))
        return outs

    def op(self, op: str, *inputs: Value, name: str | None = None, **attrs) -> Value:
        """Append a one-output node and return its output (``name`` proposes the value name)."""
        outs = self.add_node(op, inputs, attrs, names=[name] if name else None)
        if len(outs) != 1:
            raise ModelError(f"op {op} has {len(outs)} outputs; use add_node", op=op)
        return outs[0]

    def build(self, *outputs: Value, check: bool = True) -> Graph:
        g = Graph(self.name, list(self.inputs), dict(self.params), list(self.nodes), list(outputs))
        return verify(g) if check else g


def rebuild_from(g: Graph) -> GraphBuilder:
    """A builder that will not reuse any value name of ``g`` (for passes adding values to it)."""
    return GraphBuilder(g.name, taken=(v.name for v in g.values()))
