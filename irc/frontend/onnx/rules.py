"""The tables that translate between ONNX operators and irc ops, and the contexts rules use.

An import rule ``fn(ctx: NodeContext) -> Value | sequence of Values`` turns one ONNX node into
irc nodes; an export rule ``fn(ctx: ExportContext, node: Node)`` writes ONNX nodes for one irc
node. ONNX inputs that carry attributes (Reshape's shape, Slice's starts, Clip's bounds...) must
be constants at import time and become irc attributes, since irc shapes are static.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import onnx
from onnx import helper, numpy_helper

from irc.errors import IRCError, ModelError, UnsupportedOpError
from irc.ir.builder import GraphBuilder
from irc.ir.graph import Node, Value
from irc.ir.interp import run_node
from irc.ir.ops import get_op
from irc.ir.types import DType, TensorType

ImportRule = Callable[["NodeContext"], Any]
ExportRule = Callable[["ExportContext", Node], None]

IMPORT_RULES: dict[str, ImportRule] = {}
EXPORT_RULES: dict[str, ExportRule] = {}


def import_rule(*op_types: str, op: str | None = None):
    """Decorator: ``fn`` imports ONNX nodes of ``op_types``. ``op``: the irc op they import to,
    whose OpDef then lists them in ``onnx_names`` (None for a rule that composes several ops)."""

    def wrap(fn: ImportRule) -> ImportRule:
        _add(IMPORT_RULES, op_types, fn, "import")
        if op is not None:
            d = get_op(op)
            d.onnx_names = d.onnx_names + tuple(t for t in op_types if t not in d.onnx_names)
        return fn

    return wrap


def export_rule(*ops: str):
    def wrap(fn: ExportRule) -> ExportRule:
        _add(EXPORT_RULES, ops, fn, "export")
        return fn

    return wrap


def _add(table: dict, keys, fn, what: str) -> None:
    for k in keys:
        assert k not in table, f"{what} rule for {k} defined twice"
        table[k] = fn


def dtype_from_onnx(elem_type: int, where: str = "") -> DType:
    try:
        return DType.from_numpy(helper.tensor_dtype_to_np_dtype(elem_type))
    except (KeyError, ValueError, TypeError, IRCError):
        name = onnx.TensorProto.DataType.Name(elem_type) if elem_type in onnx.TensorProto.DataType.values() else elem_type
        raise UnsupportedOpError(f"element type {name} is not supported{where}") from None


def dtype_to_onnx(dt: DType) -> int:
    return helper.np_dtype_to_tensor_dtype(dt.numpy)


def simple(onnx_type: str, irc_op: str, attrs: dict[str, str] | None = None, *, since: int = 1) -> None:
    """Register both directions for an op whose inputs map one to one and whose attributes
    only change names (``attrs`` maps ONNX attribute name -> irc attribute name)."""
    attrs = attrs or {}

    @import_rule(onnx_type, op=irc_op)
    def _import(ctx: NodeContext):
        kw = {irc: ctx.attr(ox) for ox, irc in attrs.items() if ctx.has_attr(ox)}
        return ctx.op(irc_op, *ctx.inputs(), **kw)

    simple_export(irc_op, onnx_type, attrs)


def simple_export(irc_op: str, onnx_type: str, attrs: dict[str, str] | None = None) -> None:
    """Register the export of an op whose inputs map one to one onto ``onnx_type``'s and whose
    attributes only change names (``attrs`` maps ONNX attribute name -> irc attribute name)."""
    attrs = attrs or {}

    @export_rule(irc_op)
    def _export(ctx: ExportContext, n: Node):
        kw = {ox: n.attrs[irc] for ox, irc in attrs.items() if n.attrs.get(irc) is not None}
        ctx.emit(onnx_type, n.inputs, n.outputs, **kw)


def shape_input_export(irc_op: str, onnx_type: str, attr: str) -> None:
    """Register the export of an op whose attribute ``attr`` is, in ONNX, an int64 second input."""

    @export_rule(irc_op)
    def _export(ctx: ExportContext, n: Node):
        ctx.emit(onnx_type, [n.inputs[0], ctx.const(np.array(n.attrs[attr], np.int64), attr)], n.outputs)


class NodeContext:
    """What an import rule sees of one ONNX node, and how it emits irc nodes."""

    def __init__(self, importer, node: onnx.NodeProto):
        self._imp = importer
        self.node = node
        self.op_type = node.op_type
        self.name = node.name or (node.output[0] if node.output else node.op_type)
        self._attrs = {a.name: a for a in node.attribute}

    @property
    def opset(self) -> int:
        return self._imp.opset

    @property
    def builder(self) -> GraphBuilder:
        return self._imp.builder

    # -- attributes
    def has_attr(self, name: str) -> bool:
        return name in self._attrs

    def attr(self, name: str, default: Any = None) -> Any:
        a = self._attrs.get(name)
        if a is None:
            return default
        v = helper.get_attribute_value(a)
        if isinstance(v, bytes):
            return _text(name, v)
        if isinstance(v, onnx.TensorProto):
            return numpy_helper.to_array(v)
        if isinstance(v, list):
            return [_text(name, x) if isinstance(x, bytes) else x for x in v]
        return v

    # -- inputs
    @property
    def num_inputs(self) -> int:
        n = len(self.node.input)
        while n and not self.node.input[n - 1]:
            n -= 1
        return n

    def has_input(self, i: int) -> bool:
        return i < len(self.node.input) and self.node.input[i] != ""

    def input(self, i: int) -> Value:
        if not self.has_input(i):
            raise ModelError(f"input {i} is missing")
        return self._imp.lookup(self.node.input[i], self.name, self.op_type)

    def inputs(self) -> list[Value]:
        """All present inputs (optional inputs omitted in the middle are an error)."""
        out = []
        for i in range(self.num_inputs):
            if not self.has_input(i):
                raise UnsupportedOpError(f"an omitted optional input {i} followed by a later one is not supported")
            out.append(self.input(i))
        return out

    def type(self, i: int) -> TensorType:
        return self.input(i).type

    def const(self, i: int) -> np.ndarray | None:
        """The value of input ``i`` if it is known at import (an initializer or folded constant)."""
        if not self.has_input(i):
            return None
        return self._imp.builder.params.get(self.input(i))

    def need_const(self, i: int, what: str) -> np.ndarray:
        c = self.const(i)
        if c is None:
            if not self.has_input(i):
                raise ModelError(f"input '{what}' is required")
            raise UnsupportedOpError(f"input '{what}' must be a constant known at import (irc shapes are static)")
        return c

    # -- emitting
    def op(self, op: str, *inputs: Value, **attrs) -> Value:
        outs = self.ops(op, inputs, attrs)
        if len(outs) != 1:
            raise AssertionError(f"{op} gives {len(outs)} outputs")
        return outs[0]

    def ops(self, op: str, inputs: Sequence[Value], attrs: dict[str, Any] | None = None, n_names: int = 0):
        """Emit an irc node, or fold it to constants when every input is known."""
        b = self._imp.builder
        opdef = get_op(op)
        if opdef.foldable and all(v in b.params for v in inputs):
            attrs, types = opdef.type_check([v.type for v in inputs], attrs or {})
            tmp = Node(op, tuple(inputs), tuple(Value("_", t) for t in types), attrs, self.name)
            arrays = run_node(tmp, [b.params[v] for v in inputs])
            return tuple(b.param("const", a) for a in arrays)
        return b.add_node(op, inputs, attrs, node_name=self.name)

    def constant(self, data, dtype: DType | None = None) -> Value:
        return self._imp.builder.const(data, dtype)


class ExportContext:
    """What an export rule uses to write ONNX nodes for one irc node."""

    def __init__(self, exporter):
        self._exp = exporter

    def name(self, v: Value | str) -> str:
        return v if isinstance(v, str) else v.name

    def tmp(self, hint: str) -> str:
        return self._exp.fresh(hint)

    def const(self, data, hint: str = "const", dtype=None) -> str:
        """Name of a new initializer holding ``data``."""
        arr = np.asarray(data, dtype=dtype)
        name = self._exp.fresh(hint)
        self._exp.initializers.append(numpy_helper.from_array(arr, name))
        return name

    def emit(self, op_type: str, inputs: Sequence[Value | str], outputs: Sequence[Value | str], *,
             domain: str = "", **attrs) -> list[str]:
        ins = [self.name(v) if v is not None else "" for v in inputs]
        outs = [self.name(v) for v in outputs]
        attrs = {k: (dtype_to_onnx(v) if isinstance(v, DType) else v) for k, v in attrs.items() if v is not None}
        self._exp.nodes.append(helper.make_node(op_type, ins, outs, name=self._exp.fresh(op_type), domain=domain, **attrs))
        return outs


def _text(name: str, raw: bytes) -> str:
    """A string attribute's bytes as text (ONNX strings are UTF-8)."""
    try:
        return raw.decode()
    except UnicodeDecodeError:
        raise ModelError(f"attribute '{name}' is not UTF-8 text: {raw[:20]!r}") from None
