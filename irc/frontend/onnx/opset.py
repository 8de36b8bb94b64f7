"""The ONNX opsets irc imports, and older models brought up to them.

The import rules are written for the operator definitions of opset MIN_OPSET and later (a rule
reads ``ctx.opset`` where a definition changed after it), up to the newest the installed onnx
knows. A model with an older opset whose ops all kept their definitions since (Add, Relu, Conv,
...) only has its opset number raised; one that uses an op whose definition changed (Clip's
bounds, Slice's starts, Pad's pads, Softmax's axis, Upsample...) is rewritten by onnx's version
converter, and a conversion that fails is a ModelError naming those ops.
"""

from __future__ import annotations

from collections.abc import Iterator

import onnx

from irc.errors import ModelError

#: Import rules follow the operator definitions from this opset on; older models are converted.
MIN_OPSET = 13

_DEFAULT = ("", "ai.onnx")


def default_opset(model: onnx.ModelProto) -> int:
    for o in model.opset_import:
        if o.domain in _DEFAULT:
            return o.version
    return 1


def changed_ops(model: onnx.ModelProto, target: int = MIN_OPSET) -> list[str]:
    """Default-domain op types of ``model`` (subgraphs included) whose definition at the model's
    opset is not the one in force at ``target``."""
    version = default_opset(model)
    changed = set()
    for n in _nodes(model.graph):
        if n.domain not in _DEFAULT or n.op_type in changed:
            continue
        try:
            old = onnx.defs.get_schema(n.op_type, version).since_version
            new = onnx.defs.get_schema(n.op_type, target)
        except onnx.defs.SchemaError:
            continue  # not an op of this opset: the checker and the import refuse it by name
        if old != new.since_version or new.deprecated:
            changed.add(n.op_type)
    return sorted(changed)


def upgrade(model: onnx.ModelProto) -> onnx.ModelProto:
    """``model`` at opset MIN_OPSET or later: returned as is, relabelled when none of its ops
    changed definition, else converted (a failed conversion is a ModelError)."""
    version = default_opset(model)
    if version >= MIN_OPSET:
        return model
    changed = changed_ops(model)
    if not changed:
        out = onnx.ModelProto()
        out.CopyFrom(model)
        for o in out.opset_import:
            if o.domain in _DEFAULT:
                o.version = MIN_OPSET
        return out
    from onnx import version_converter

    try:
        return version_converter.convert_version(model, MIN_OPSET)
    except Exception as e:  # the converter raises bare RuntimeErrors (and others) from C++
        text = str(e).strip()
        # keep the converter's reason, not the C++ source location and assertion in front of it
        msg = text.splitlines()[-1].split(" failed: ")[-1] if text else type(e).__name__
        raise ModelError(f"cannot convert the model from opset {version} to {MIN_OPSET}, which irc imports "
                         f"(ops whose definition changed: {', '.join(changed)}): {msg}") from None


def _nodes(g: onnx.GraphProto) -> Iterator[onnx.NodeProto]:
    for n in g.node:
        yield n
        for a in n.attribute:
            if a.type == onnx.AttributeProto.GRAPH:
                yield from _nodes(a.g)
            elif a.type == onnx.AttributeProto.GRAPHS:
                for sub in a.graphs:
                    yield from _nodes(sub)
