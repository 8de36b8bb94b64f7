"""Reads the text form written by :mod:`irc.ir.printer` back into a Graph.

Parameter data is not part of the text: pass ``params={name: array}``, or get zeros of the
declared types. A nested graph's parameters (the body of an ``if`` or ``loop``) are keyed by
their path, ``"<node's first output>.<attribute>/<name>"``: :func:`irc.ir.printer.all_params`
gives every parameter of a graph under those keys, so ``parse_graph(print_graph(g),
all_params(g))`` is ``g`` again, numbers included. Every node is type-checked against the registry while parsing, so a text that
parses is a graph that verifies.
"""

from __future__ import annotations

import json
import re
from typing import Any

import numpy as np

from irc.errors import IRCError, ModelError
from irc.ir.graph import Graph, Node, Value
from irc.ir.ops import get_op
from irc.ir.types import DType, TensorType

_TOKEN = re.compile(
    r"""\s*(?:
      (?P<str>"(?:[^"\\]|\\.)*")
    | (?P<num>-?(?:inf|nan|\d+\.?\d*(?:e[-+]?\d+)?|\.\d+(?:e[-+]?\d+)?))(?![A-Za-z_])
    | (?P<word>[A-Za-z_][A-Za-z0-9_.\-]*)
    | (?P<punct>[%@(){}\[\],:=])
    )""",
    re.VERBOSE,
)


class _Lexer:
    def __init__(self, text: str):
        self.toks: list[tuple[str, str, int]] = []
        pos = 0
        text = text.rstrip()
        line, counted = 1, 0  # lines counted as the tokens go (a count from the start each time is quadratic)
        while pos < len(text):
            m = _TOKEN.match(text, pos)
            if not m or m.end() == pos:
                raise ModelError(f"cannot read IR text at line {_line(text, pos)}: {text[pos:pos + 20]!r}")
            kind = m.lastgroup
            start = m.start(kind)
            line += text.count("\n", counted, start)
            counted = start
            self.toks.append((kind, m.group(kind), line))
            pos = m.end()
        self.i = 0

    def peek(self, value: str | None = None) -> bool:
        if self.i >= len(self.toks):
            return False
        return value is None or self.toks[self.i][1] == value

    def next(self, kind: str | None = None) -> str:
        if self.i >= len(self.toks):
            raise ModelError("IR text ends too early")
        k, v, line = self.toks[self.i]
        if kind is not None and k != kind:
            raise ModelError(f"IR text line {line}: expected {kind}, found {v!r}")
        self.i += 1
        return v

    def expect(self, value: str) -> None:
        line = self.toks[self.i][2] if self.i < len(self.toks) else "end"
        got = self.next()
        if got != value:
            raise ModelError(f"IR text line {line}: expected {value!r}, found {got!r}")

    def name(self) -> str:
        if self.peek() and self.toks[self.i][0] == "str":
            return json.loads(self.next())
        kind, v, line = self.toks[self.i] if self.i < len(self.toks) else ("", "", "end")
        if kind not in ("word", "num"):
            raise ModelError(f"IR text line {line}: expected a name, found {v!r}")
        self.i += 1
        return v


def _line(text: str, pos: int) -> int:
    return text.count("\n", 0, pos) + 1


def _type(lx: _Lexer) -> TensorType:
    dt = DType.parse(lx.next("word"))
    lx.expect("[")
    dims = []
    while not lx.peek("]"):
        dims.append(int(lx.next("num")))
        if not lx.peek("]"):
            lx.expect(",")
    lx.expect("]")
    return TensorType(tuple(dims), dt)


def _attr_value(lx: _Lexer, params: dict[str, np.ndarray] | None = None, prefix: str = "") -> Any:
    if lx.peek("graph"):
        return _graph(lx, params, prefix)
    if lx.peek("["):
        lx.next()
        items = []
        while not lx.peek("]"):
            items.append(_attr_value(lx, params, f"{prefix}{len(items)}/"))
            if not lx.peek("]"):
                lx.expect(",")
        lx.expect("]")
        return tuple(items)
    kind, v, _ = lx.toks[lx.i]
    lx.i += 1
    if kind == "str":
        return json.loads(v)
    if kind == "num":
        return float(v) if any(c in v for c in ".einf") else int(v)
    if v == "none":
        return None
    return DType.parse(v)


def _decl_list(lx: _Lexer) -> list[tuple[str, TensorType]]:
    out = []
    lx.expect("(")
    while not lx.peek(")"):
        lx.expect("%")
        name = lx.name()
        lx.expect(":")
        out.append((name, _type(lx)))
        if not lx.peek(")"):
            lx.expect(",")
    lx.expect(")")
    return out


def parse_graph(text: str, params: dict[str, np.ndarray] | None = None) -> Graph:
    """The graph written in ``text``; raises ModelError (or the registry's errors) if it is not one."""
    lx = _Lexer(text)
    g = _graph(lx, params)
    if lx.peek():
        raise ModelError("text after the end of the graph")
    return g


def _graph(lx: _Lexer, params: dict[str, np.ndarray] | None, prefix: str = "") -> Graph:
    """One graph from the lexer's position (a whole text, or a nested graph attribute): its
    values are its own scope; its parameters are looked up as ``prefix + name``."""
    if lx.next("word") != "graph":
        raise ModelError("IR text must start with 'graph'")
    gname = lx.name()
    env: dict[str, Value] = {}

    def define(name: str, t: TensorType) -> Value:
        if name in env:
            raise ModelError(f"value %{name} is defined twice")
        env[name] = Value(name, t)
        return env[name]

    inputs = [define(n, t) for n, t in _decl_list(lx)]
    pvals: dict[Value, np.ndarray] = {}
    if lx.peek("params"):
        lx.next()
        for n, t in _decl_list(lx):
            data = (params or {}).get(prefix + n)
            if data is None:
                data = np.zeros(t.shape, t.dtype.numpy)
            data = np.asarray(data)
            if TensorType.of(data) != t:
                raise ModelError(f"data of parameter %{n} is {TensorType.of(data)}, declared {t}")
            pvals[define(n, t)] = data
    meta: dict[str, Any] = {}
    if lx.peek("meta"):
        lx.next()
        meta = _attr_dict(lx)
    lx.expect("{")
    nodes: list[Node] = []
    while not lx.peek("return"):
        outs: list[tuple[str, TensorType]] = []
        while True:
            lx.expect("%")
            name = lx.name()
            lx.expect(":")
            outs.append((name, _type(lx)))
            if not lx.peek(","):
                break
            lx.next()
        lx.expect("=")
        op = lx.next("word")
        lx.expect("(")
        args = []
        while not lx.peek(")"):
            lx.expect("%")
            name = lx.name()
            if name not in env:
                raise ModelError(f"value %{name} is used before it is defined", op=op)
            args.append(env[name])
            if not lx.peek(")"):
                lx.expect(",")
        lx.expect(")")
        attrs = _attr_dict(lx, params, f"{prefix}{outs[0][0]}.") if lx.peek("{") else {}
        node_name = outs[0][0]
        if lx.peek("@"):
            lx.next()
            node_name = lx.name()
        try:
            attrs, types = get_op(op).type_check([a.type for a in args], attrs)
        except IRCError as e:
            raise e.at(node_name, op) from None
        if tuple(t for _, t in outs) != types:
            got = ", ".join(str(t) for t in types)
            raise ModelError(f"declared output types do not match the inferred ({got})", node=node_name, op=op)
        values = tuple(define(n, t) for n, t in outs)
        nodes.append(Node(op, tuple(args), values, attrs, node_name))
    lx.expect("return")
    outputs = []
    while True:
        lx.expect("%")
        name = lx.name()
        if name not in env:
            raise ModelError(f"returned value %{name} is not defined")
        outputs.append(env[name])
        if not lx.peek(","):
            break
        lx.next()
    lx.expect("}")
    return Graph(gname, inputs, pvals, nodes, outputs, meta)


def _attr_dict(lx: _Lexer, params: dict[str, np.ndarray] | None = None, prefix: str = "") -> dict[str, Any]:
    lx.expect("{")
    out: dict[str, Any] = {}
    while not lx.peek("}"):
        key = lx.next("word")
        lx.expect("=")
        out[key] = _attr_value(lx, params, f"{prefix}{key}/")
        if not lx.peek("}"):
            lx.expect(",")
    lx.expect("}")
    return out
