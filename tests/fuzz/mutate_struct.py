"""Structured mutations of a ModelProto: each breaks one rule of a valid model (attribute values
and types, dims, names, order, dtypes, payload sizes, external data, opsets, initializers,
arity, op types). A mutation edits the model in place, may add files that sit next to the
model (external data), and returns what it did, or None when the model offers no target."""

from __future__ import annotations

import math

import numpy as np
import onnx
from onnx import AttributeProto, TensorProto, numpy_helper

INTS = [-(2**40), -2, -1, 0, 1, 2, 3, 7, 1 << 20, 2**31 - 1, 2**31, 2**62]
FLOATS = [math.nan, math.inf, -math.inf, -1.0, 0.0, 1e-45, 1e30]
DIMS = [0, -1, 1, 3, 1 << 20, 2**31, 2**40, 2**62]
ELEM_TYPES = [0, 1, 2, 3, 5, 6, 7, 8, 9, 10, 11, 13, 14, 16, 17, 23, 99]


def _pick(rng, seq):
    return seq[int(rng.integers(len(seq)))] if len(seq) else None


def _pick_value(rng, values):
    return values[int(rng.integers(len(values)))]


def _names(m) -> list[str]:
    g = m.graph
    return [v.name for v in g.input] + [t.name for t in g.initializer] + [o for n in g.node for o in n.output]


def _pick_attribute(m, rng):
    """A node that has attributes and one of them, or None (the same draws for the same rng)."""
    n = _pick(rng, [n for n in m.graph.node if n.attribute])
    return None if n is None else (n, _pick(rng, n.attribute))


def attr_value(m, rng, files):
    picked = _pick_attribute(m, rng)
    if picked is None:
        return None
    n, a = picked
    if a.type == AttributeProto.INT:
        a.i = _pick_value(rng, INTS)
    elif a.type == AttributeProto.INTS:
        if len(a.ints) and rng.random() < 0.7:
            a.ints[int(rng.integers(len(a.ints)))] = _pick_value(rng, INTS)
        elif rng.random() < 0.5:
            del a.ints[:]
        else:
            a.ints.append(_pick_value(rng, INTS))
    elif a.type == AttributeProto.FLOAT:
        a.f = _pick_value(rng, FLOATS)
    elif a.type == AttributeProto.STRING:
        a.s = _pick_value(rng, [b"", b"bogus", b"\xff\xfe", b"NOTSET" * 50])
    elif a.type == AttributeProto.TENSOR:
        a.t.dims.append(2)
    else:
        return None
    return f"attr_value {n.name or n.op_type}.{a.name}"


def attr_type(m, rng, files):
    picked = _pick_attribute(m, rng)
    if picked is None:
        return None
    n, a = picked
    how = int(rng.integers(4))
    if how == 0:
        old = a.name
        n.attribute.remove(a)
        return f"attr_type drop {n.name}.{old}"
    if how == 1:
        n.attribute.add().CopyFrom(onnx.helper.make_attribute("bogus_attr", 3))
        return f"attr_type add unknown to {n.name}"
    if how == 2:
        new = onnx.helper.make_attribute(a.name, "text" if a.type != AttributeProto.STRING else 1.5)
    else:
        new = onnx.helper.make_attribute(a.name, [1.5, 2.5] if a.type != AttributeProto.FLOATS else 3)
    a.CopyFrom(new)
    return f"attr_type {n.name}.{a.name} -> {AttributeProto.AttributeType.Name(a.type)}"


def dim(m, rng, files):
    g = m.graph
    infos = [v for v in list(g.input) + list(g.output) + list(g.value_info) if v.type.HasField("tensor_type")]
    if rng.random() < 0.3 and len(g.initializer):
        t = _pick(rng, g.initializer)
        if len(t.dims):
            t.dims[int(rng.integers(len(t.dims)))] = _pick_value(rng, DIMS)
            return f"dim initializer {t.name}"
    v = _pick(rng, infos)
    if v is None:
        return None
    shape = v.type.tensor_type.shape
    if not len(shape.dim) or rng.random() < 0.15:
        shape.dim.add().dim_value = 2
        return f"dim add to {v.name}"
    d = shape.dim[int(rng.integers(len(shape.dim)))]
    how = rng.random()
    if how < 0.7:
        d.dim_value = _pick_value(rng, DIMS)
    elif how < 0.85:
        d.dim_param = "M"
    else:
        shape.dim.remove(d)
    return f"dim {v.name}"


def dangling(m, rng, files):
    n = _pick(rng, [n for n in m.graph.node if len(n.input)])
    if n is None:
        return None
    n.input[int(rng.integers(len(n.input)))] = "ghost"
    return f"dangling input of {n.name or n.op_type}"


def duplicate_name(m, rng, files):
    n = _pick(rng, list(m.graph.node))
    names = _names(m)
    if n is None or not names:
        return None
    n.output[0] = _pick(rng, names)
    return f"duplicate output name {n.output[0]} at {n.name or n.op_type}"


def cycle(m, rng, files):
    nodes = list(m.graph.node)
    if len(nodes) < 1:
        return None
    i = int(rng.integers(len(nodes)))
    j = int(rng.integers(i, len(nodes)))
    if not len(nodes[i].input):
        return None
    nodes[i].input[0] = nodes[j].output[0]
    return f"cycle {i} <- {j}"


def reorder(m, rng, files):
    nodes = m.graph.node
    if len(nodes) < 2:
        return None
    i, j = sorted(int(x) for x in rng.choice(len(nodes), 2, replace=False))
    a, b = onnx.NodeProto(), onnx.NodeProto()
    a.CopyFrom(nodes[i])
    b.CopyFrom(nodes[j])
    nodes[i].CopyFrom(b)
    nodes[j].CopyFrom(a)
    return f"swap nodes {i} {j}"


def dtype(m, rng, files):
    g = m.graph
    if rng.random() < 0.4 and len(g.initializer):
        t = _pick(rng, g.initializer)
        t.data_type = _pick_value(rng, ELEM_TYPES)
        return f"dtype initializer {t.name} -> {t.data_type}"
    v = _pick(rng, [v for v in list(g.input) + list(g.output) if v.type.HasField("tensor_type")])
    if v is None:
        return None
    v.type.tensor_type.elem_type = _pick_value(rng, ELEM_TYPES)
    return f"dtype {v.name} -> {v.type.tensor_type.elem_type}"


def payload(m, rng, files):
    """raw_data shortened or lengthened, or typed values where raw data was."""
    inits = [t for t in m.graph.initializer if t.HasField("raw_data")]
    t = _pick(rng, inits)
    if t is None:
        return None
    k = int(rng.integers(1, 10))
    how = int(rng.integers(3))
    if how == 0:
        t.raw_data = t.raw_data[:-k] if len(t.raw_data) > k else b""
        return f"payload short {t.name} by {k}"
    if how == 1:
        t.raw_data = t.raw_data + bytes(k)
        return f"payload long {t.name} by {k}"
    t.float_data.extend([1.0] * k)
    return f"payload raw and float_data {t.name}"


def external(m, rng, files):
    """An initializer moved to an external file, valid or not."""
    t = _pick(rng, [t for t in m.graph.initializer if t.HasField("raw_data")])
    if t is None:
        return None
    data = t.raw_data
    t.ClearField("raw_data")
    t.data_location = TensorProto.EXTERNAL
    how = int(rng.integers(8))
    loc, info = "weights.bin", {}
    if how == 0:
        loc = "missing.bin"
    elif how == 1:
        loc = ""
    elif how == 2:
        loc = "."
    elif how == 3:
        loc = "/etc/hostname"
    elif how == 4:
        loc = "../weights.bin"
    elif how == 5:
        files[loc] = data
        info = {"offset": str(len(data) + 5)}
    elif how == 6:
        files[loc] = data[: len(data) // 2]
    else:
        files[loc] = b"pad!" + data
        info = {"offset": "4", "length": str(len(data))}
    for key, value in {"location": loc, **info}.items():
        e = t.external_data.add()
        e.key, e.value = key, value
    return f"external {t.name} location={loc!r} {info}"


def opset(m, rng, files):
    newest = onnx.defs.onnx_opset_version()
    version = _pick_value(rng, [0, -1, 1, 6, 9, 11, 12, 13, newest, newest + 1, 99, 2**40])
    for o in m.opset_import:
        if o.domain in ("", "ai.onnx"):
            o.version = version
    if rng.random() < 0.2:
        m.opset_import.add().domain = "com.example"
    return f"opset {version}"


def ir_version(m, rng, files):
    m.ir_version = _pick_value(rng, [0, -1, 1, 3, 99, 2**40])
    return f"ir_version {m.ir_version}"


def drop_initializer(m, rng, files):
    g = m.graph
    if not len(g.initializer):
        return None
    t = g.initializer[int(rng.integers(len(g.initializer)))]
    name = t.name
    g.initializer.remove(t)
    return f"drop initializer {name}"


def arity(m, rng, files):
    n = _pick(rng, list(m.graph.node))
    if n is None:
        return None
    how = int(rng.integers(4))
    if how == 0 and len(n.input):
        del n.input[-1]
    elif how == 1:
        n.input.append(_pick(rng, _names(m)))
    elif how == 2 and len(n.output):
        del n.output[-1]
    else:
        n.output.append("extra_output")
    return f"arity {how} of {n.name or n.op_type}"


def op_type(m, rng, files):
    n = _pick(rng, list(m.graph.node))
    if n is None:
        return None
    n.op_type = _pick_value(rng, ["Relu", "Add", "MatMul", "Gemm", "Conv", "Reshape", "Concat", "Softmax",
                                  "Transpose", "MaxPool", "Clip", "Flatten", "Gather", "Pad", "Unsqueeze",
                                  "BatchNormalization", "Slice", "Expand", "Tile", "Split", "NonZero"])
    return f"op_type {n.name} -> {n.op_type}"


def init_values(m, rng, files):
    """Values of an initializer: int shape constants made extreme, floats non-finite."""
    t = _pick(rng, list(m.graph.initializer))
    if t is None or t.data_location == TensorProto.EXTERNAL:
        return None
    arr = numpy_helper.to_array(t).copy()
    if arr.size == 0:
        return None
    flat = arr.reshape(-1)
    i = int(rng.integers(flat.size))
    if arr.dtype.kind in "iu":
        flat[i] = _pick_value(rng, [v for v in INTS if np.iinfo(arr.dtype).min <= v <= np.iinfo(arr.dtype).max])
    elif arr.dtype.kind == "f":
        flat[i] = _pick_value(rng, FLOATS)
    else:
        return None
    t.CopyFrom(numpy_helper.from_array(arr, t.name))
    return f"init_values {t.name}[{i}]"


def init_shape(m, rng, files):
    """An initializer reshaped consistently (data and dims agree): a scalar made a vector, etc."""
    t = _pick(rng, list(m.graph.initializer))
    if t is None or t.data_location == TensorProto.EXTERNAL:
        return None
    arr = numpy_helper.to_array(t)
    shape = _pick_value(rng, [(), (1,), (2,), (3, 1), (1, 1, 1, 1), (0,), tuple(reversed(arr.shape))])
    new = np.resize(arr, shape) if arr.size else np.zeros(shape, arr.dtype)
    t.CopyFrom(numpy_helper.from_array(new, t.name))
    return f"init_shape {t.name} -> {shape}"


def graph_io(m, rng, files):
    g = m.graph
    how = int(rng.integers(3))
    if how == 0 and len(g.output):
        g.output.remove(g.output[-1])
        return "drop graph output"
    if how == 1 and len(g.input):
        g.input.remove(g.input[0])
        return "drop graph input"
    src = _pick(rng, _names(m))
    if src is None:
        return None
    g.output.add().CopyFrom(onnx.helper.make_tensor_value_info(src, TensorProto.FLOAT, None))
    return f"extra graph output {src}"


STRUCT_MUTATIONS = {f.__name__: f for f in (
    attr_value, attr_type, dim, dangling, duplicate_name, cycle, reorder, dtype, payload, external, opset,
    ir_version, drop_initializer, arity, op_type, init_values, init_shape, graph_io)}
