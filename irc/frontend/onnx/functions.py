"""ONNX ops that irc has no import rule for, expanded into the ops their definition is made of.

Many ONNX ops are defined as functions of other ops (Attention, NegativeLogLikelihoodLoss,
SoftmaxCrossEntropyLoss, Celu, Mish, RotaryEmbedding, CenterCropPad, ...): the schema carries a
body, fixed or built for the node's attributes and input types. A node whose op has no import
rule is replaced by that body (through onnx's inliner, which also converts a body written for
another opset), so it imports when the ops of the body do. Ops with an import rule keep it:
a rule is the faster form. A node whose body cannot be built or inlined stays as it is, and the
import names it as unsupported.
"""

from __future__ import annotations

import onnx
from onnx import helper, inliner, shape_inference

from irc.frontend.onnx.opset import default_opset

_DEFAULT = ("", "ai.onnx")
#: the domain expanded nodes are moved to while onnx's inliner replaces them
_LOCAL = "irc.expand"
#: a body may use other function ops: expand at most this many levels deep
_MAX_DEPTH = 4


def expand(model: onnx.ModelProto) -> onnx.ModelProto:
    """``model`` with every top-level node whose op has no import rule and is an ONNX function
    replaced by the function's body; ``model`` itself when there is none."""
    for _ in range(_MAX_DEPTH):
        nodes = _expandable(model)
        if not nodes:
            return model
        out = _inline(model, nodes)
        if out is None:  # some body does not inline: expand node by node, keeping those that do
            out = model
            for i in nodes:
                out = _inline(out, [i]) or out
            if out is model:
                return model
        model = out
    return model


def _expandable(model: onnx.ModelProto) -> list[int]:
    from irc.frontend.onnx import rules_all  # noqa: F401  (fills the rule table)
    from irc.frontend.onnx.rules import IMPORT_RULES

    opset = default_opset(model)
    out = []
    for i, n in enumerate(model.graph.node):
        if n.domain in _DEFAULT and n.op_type not in IMPORT_RULES:
            s = _schema(n.op_type, opset)
            if s is not None and (s.has_function or s.has_context_dependent_function):
                out.append(i)
    return out


def _inline(model: onnx.ModelProto, indices: list[int]) -> onnx.ModelProto | None:
    """``model`` with the nodes at ``indices`` inlined, or None when a body cannot be built or inlined."""
    opset = default_opset(model)
    types = _types(model)
    m = onnx.ModelProto()
    m.CopyFrom(model)
    convert = False
    for i in indices:
        n = m.graph.node[i]
        schema = _schema(n.op_type, opset)
        _add_defaults(n, schema)
        body = _body(n, schema, opset, types)
        if body is None:
            return None
        body.domain, body.name = _LOCAL, f"{n.op_type}_{i}"
        convert |= not _relabel(body, opset)
        n.domain, n.op_type = body.domain, body.name
        m.functions.append(body)
    m.opset_import.append(helper.make_opsetid(_LOCAL, 1))
    try:
        out = inliner.inline_local_functions(m, convert)
    except Exception:  # the inliner and its version converter raise bare C++ errors
        return None
    del out.functions[:]
    keep = [o for o in out.opset_import if o.domain != _LOCAL]
    del out.opset_import[:]
    out.opset_import.extend(keep)
    return out


def _body(node: onnx.NodeProto, schema, opset: int, types: dict) -> onnx.FunctionProto | None:
    """The function body of ``node`` at the newest function version not after ``opset``."""
    try:
        if schema.has_function:
            v = max((v for v in schema.function_opset_versions if v <= opset), default=None)
            if v is None:
                return None
            body = schema.get_function_with_opset_version(v)
        else:
            v = max((v for v in schema.context_dependent_function_opset_versions if v <= opset), default=None)
            if v is None:
                return None
            arg_types = [types.get(x, onnx.TypeProto()).SerializeToString() for x in node.input]
            body = schema.get_context_dependent_function_with_opset_version(v, node.SerializeToString(), arg_types)
    except Exception:  # a builder that refuses these attributes or types: the node stays
        return None
    if isinstance(body, bytes):
        body = onnx.FunctionProto.FromString(body)
    out = onnx.FunctionProto()
    out.CopyFrom(body)
    return out


def _relabel(body: onnx.FunctionProto, opset: int) -> bool:
    """Give ``body`` the model's opset when none of its ops changed definition between the two
    (the inliner's converter needs types a body lacks); False when it must be converted."""
    for o in body.opset_import:
        if o.domain not in _DEFAULT or o.version == opset:
            continue
        for n in body.node:
            if n.domain in _DEFAULT:
                old, new = _schema(n.op_type, o.version), _schema(n.op_type, opset)
                if old is None or new is None or old.since_version != new.since_version:
                    return False
        o.version = opset
    return True


def _add_defaults(node: onnx.NodeProto, schema) -> None:
    """Attributes the node leaves at their default written out: a body refers to them by name."""
    given = {a.name for a in node.attribute}
    for name, a in schema.attributes.items():
        if name not in given and a.default_value.name:
            node.attribute.append(a.default_value)


def _types(model: onnx.ModelProto) -> dict[str, onnx.TypeProto]:
    """Types of the model's values, as far as onnx's shape inference knows them."""
    try:
        g = shape_inference.infer_shapes(model).graph
    except Exception:  # a model inference cannot follow still has its declared types
        g = model.graph
    types = {v.name: v.type for v in (*g.input, *g.value_info, *g.output)}
    for t in g.initializer:
        types[t.name] = helper.make_tensor_type_proto(t.data_type, list(t.dims))
    return types


def _schema(op_type: str, opset: int):
    try:
        return onnx.defs.get_schema(op_type, opset)
    except onnx.defs.SchemaError:
        return None
