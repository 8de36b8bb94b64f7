"""The verifier: the invariants every graph holds between passes.

Single assignment (each value defined once, names unique), topological order (every input
defined before use, hence no cycles), registered ops with canonical attributes, and value types
equal to what the registry infers. Parameter data must match its declared type.
"""

from __future__ import annotations

from irc.errors import IRCError, ModelError
from irc.ir.graph import Graph
from irc.ir.ops import get_op
from irc.ir.types import TensorType


def verify(g: Graph) -> Graph:
    """Returns ``g`` unchanged if it is well formed, else raises ModelError naming the node."""
    defined: set = set()
    names: set[str] = set()

    def define(v, where: str) -> None:
        if v in defined:
            raise ModelError(f"value %{v.name} is assigned more than once ({where})")
        if v.name in names:
            raise ModelError(f"two values are named %{v.name} ({where})")
        defined.add(v)
        names.add(v.name)

    for v in g.inputs:
        define(v, "graph input")
    for v, data in g.params.items():
        define(v, "parameter")
        if TensorType.of(data) != v.type:
            raise ModelError(f"parameter %{v.name} is declared {v.type} but its data is {TensorType.of(data)}")
    for n in g.nodes:
        for v in n.inputs:
            if v not in defined:
                raise ModelError(
                    f"input %{v.name} is not defined before this node (dangling input or cycle)",
                    node=n.label,
                    op=n.op,
                )
        try:
            attrs, types = get_op(n.op).type_check([v.type for v in n.inputs], n.attrs)
        except IRCError as e:
            raise e.at(n.label, n.op) from None
        if attrs != n.attrs:
            raise ModelError(f"attributes {n.attrs} are not canonical (expected {attrs})", node=n.label, op=n.op)
        got = tuple(v.type for v in n.outputs)
        if got != types:
            want = ", ".join(map(str, types))
            have = ", ".join(map(str, got))
            raise ModelError(f"outputs are typed {have}; the op gives {want}", node=n.label, op=n.op)
        for v in n.outputs:
            define(v, f"output of {n.label}")
    if not g.outputs:
        raise ModelError(f"graph '{g.name}' has no outputs")
    for v in g.outputs:
        if v not in defined:
            raise ModelError(f"graph output %{v.name} is never defined")
    return g
