"""Graph inputs whose values, not only their shapes, the import needs.

irc shapes are static, so an ONNX input that sets a shape, axes, pads, sizes or a count
(Reshape's shape, Slice's starts, Pad's pads, Range's limit, ...) must be known at import.
Exporters write those as initializers or as shape computations that fold, but a model may take
them as graph inputs (ONNX's own conformance cases do). Such a model is imported once per
distinct value of those inputs, each frozen into an initializer; irc.api keys its compiled
specializations on the values.

Which inputs they are is learnt from the import rules themselves rather than from a table kept
beside them: a rule refuses a non-constant input with "input 'NAME' must be a constant known at
import", NAME being the input's name in the op's ONNX schema. The graph inputs that value is
computed from are the ones to freeze.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

import numpy as np
import onnx
from onnx import numpy_helper

from irc.errors import IRCError, UnsupportedOpError

#: The refusal NodeContext.need_const (and rules that check ctx.const themselves) raise.
_REFUSAL = re.compile(r"input '([^']+)' must be a constant known at import")

#: Ops whose output depends on their input's shape only: a value computed through them does not
#: need the input's data (Shape(x) is known at import once x's shape is).
_SHAPE_ONLY = frozenset({"Shape", "Size"})


def refused_input(err: IRCError) -> str | None:
    """The ONNX schema name of the input ``err`` refuses as not constant, or None when ``err``
    is another error."""
    if not isinstance(err, UnsupportedOpError):
        return None
    m = _REFUSAL.search(err.detail)
    return m.group(1) if m else None


def needed_inputs(model: onnx.ModelProto, err: IRCError) -> set[str]:
    """Graph inputs whose values, once frozen, make the input ``err`` refused a constant.

    Every node of the refused node's op type has that input needed the same way, so their
    graph inputs are included too (one import learns them all). Empty when ``err`` is not such
    a refusal or the refused value does not come from graph inputs.
    """
    what = refused_input(err)
    if what is None or err.op is None:
        return set()
    g = model.graph
    index = _schema_index(err.op, what, _opset(model))
    if index is None:
        # Not an input name of the schema: fall back to the refused node's own non-first inputs.
        nodes = [n for n in _walk(g) if _label(n) == err.node]
        names = [x for n in nodes for x in n.input[1:] if x]
    else:
        names = [n.input[index] for n in _walk(g)
                 if n.op_type == err.op and n.domain in ("", "ai.onnx") and index < len(n.input) and n.input[index]]
    return graph_input_ancestors(g, names)


def graph_input_ancestors(g: onnx.GraphProto, names: Iterable[str]) -> set[str]:
    """The (non-initializer) graph inputs the values ``names`` are computed from (through the
    outer values If and Loop subgraphs read, too)."""
    inits = {t.name for t in g.initializer}
    inputs = {vi.name for vi in g.input} - inits
    producer = {o: n for n in _walk(g) for o in n.output if o}
    found: set[str] = set()
    todo, seen = list(names), set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        if name in inputs:
            found.add(name)
        elif name in producer and producer[name].op_type not in _SHAPE_ONLY:
            todo.extend(x for x in _reads(producer[name]) if x)
    return found


def _subgraphs(n: onnx.NodeProto) -> list[onnx.GraphProto]:
    return [s for a in n.attribute for s in ([a.g] if a.HasField("g") else []) + list(a.graphs)]


def _walk(g: onnx.GraphProto):
    """Every node of ``g`` and of its subgraphs (If branches, Loop bodies), at any depth."""
    for n in g.node:
        yield n
        for s in _subgraphs(n):
            yield from _walk(s)


def _reads(n: onnx.NodeProto) -> list[str]:
    """The names ``n`` reads: its inputs and every name its subgraphs read (outer values among them)."""
    return list(n.input) + [x for s in _subgraphs(n) for m in _walk(s) for x in m.input]


def freeze(model: onnx.ModelProto, values: Mapping[str, np.ndarray]) -> onnx.ModelProto:
    """A copy of ``model`` whose graph inputs named in ``values`` are initializers holding them
    (the inputs stay declared, as IR versions before 4 require of every initializer)."""
    if not values:
        return model
    out = onnx.ModelProto()
    out.CopyFrom(model)
    out.graph.initializer.extend(numpy_helper.from_array(np.asarray(a), name) for name, a in values.items())
    return out


def _schema_index(op_type: str, what: str, opset: int) -> int | None:
    try:
        schema = onnx.defs.get_schema(op_type, opset)
    except onnx.defs.SchemaError:
        return None
    names = [p.name for p in schema.inputs]
    return names.index(what) if what in names else None


def _opset(model: onnx.ModelProto) -> int:
    for o in model.opset_import:
        if o.domain in ("", "ai.onnx"):
            return o.version
    return onnx.defs.onnx_opset_version()


def _label(n: onnx.NodeProto) -> str:
    """The name import errors give a node (NodeContext.name)."""
    return n.name or (n.output[0] if n.output else n.op_type)
