"""The text form of a graph: what `irc compile --emit ir` prints and `parse_graph` reads.

    graph mlp(%x: f32[100,784]) params(%w0: f32[784,1024], %b0: f32[1024]) {
      %1: f32[100,1024] = gemm(%x, %w0, %b0) {alpha=1.0, beta=1.0, trans_a=0, trans_b=0}
      return %1
    }

Names that are not plain identifiers are quoted (``%"conv1/W:0"``); a node whose name differs
from its first output's is suffixed with ``@name``. Floats print with ``repr`` so parsing gives
back the same bits. A graph-valued attribute (the body of an ``elementwise_chain``) prints as a
nested graph, indented one level under its node:

    %3: f32[4] = elementwise_chain(%a, %b) {body=graph chain(%x0: f32[4], %x1: f32[4]) {
        %1: f32[4] = add(%x0, %x1)
        %2: f32[4] = relu(%1)
        return %2
      }}
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from irc.ir.graph import Graph, Node, Value
from irc.ir.types import DType

_PLAIN = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]*\Z")


def quote_name(name: str) -> str:
    return name if _PLAIN.match(name) else json.dumps(name)


def ref(v: Value) -> str:
    return "%" + quote_name(v.name)


def decl(v: Value) -> str:
    return f"{ref(v)}: {v.type}"


def format_attr(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, DType):
        return value.value
    if isinstance(value, bool):
        return str(int(value))
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, (tuple, list)):
        return "[" + ", ".join(format_attr(v) for v in value) + "]"
    if isinstance(value, Graph):
        return print_graph(value).rstrip("\n").replace("\n", "\n  ")
    raise TypeError(f"attribute value {value!r} has no text form")


def print_node(n: Node) -> str:
    lhs = ", ".join(decl(v) for v in n.outputs)
    args = ", ".join(ref(v) for v in n.inputs)
    text = f"{lhs} = {n.op}({args})"
    if n.attrs:
        text += " {" + ", ".join(f"{k}={format_attr(v)}" for k, v in n.attrs.items()) + "}"
    if n.name and n.name != n.outputs[0].name:
        text += " @" + quote_name(n.name)
    return text


def all_params(g: Graph, prefix: str = "") -> dict[str, Any]:
    """Every parameter's data, nested graphs' included, keyed as :func:`irc.ir.parse_graph`
    looks them up: a nested one as ``"<node's first output>.<attribute>/<name>"``."""
    out = {prefix + v.name: data for v, data in g.params.items()}
    for n in g.nodes:
        for key, value in n.attrs.items():
            items = value if isinstance(value, (tuple, list)) else None
            if isinstance(value, Graph):
                out.update(all_params(value, f"{prefix}{n.outputs[0].name}.{key}/"))
            elif items is not None:
                for i, item in enumerate(items):
                    if isinstance(item, Graph):
                        out.update(all_params(item, f"{prefix}{n.outputs[0].name}.{key}/{i}/"))
    return out


def print_graph(g: Graph) -> str:
    head = f"graph {quote_name(g.name)}(" + ", ".join(decl(v) for v in g.inputs) + ")"
    if g.params:
        head += " params(" + ", ".join(decl(v) for v in g.params) + ")"
    if g.meta:
        head += " meta{" + ", ".join(f"{k}={format_attr(v)}" for k, v in g.meta.items()) + "}"
    lines = [head + " {"]
    lines += ["  " + print_node(n).replace("\n", "\n  ") for n in g.nodes]
    lines.append("  return " + ", ".join(ref(v) for v in g.outputs))
    lines.append("}")
    return "\n".join(lines) + "\n"
