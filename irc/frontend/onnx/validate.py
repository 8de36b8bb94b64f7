"""Validation of an ONNX model before irc imports it, and of the sizes the import binds.

The onnx checker misses what makes numpy, the arena or native code fail later: names that are
not UTF-8, initializer payloads longer than their dims, external data outside the model's
folder, opsets newer than onnx knows, and tensors too large to allocate. Each of those is
refused here with a ModelError naming the tensor or node (an InputError when the size comes
from a shape the user bound).

Size limit: no dimension and no tensor (declared, inferred by onnx or by irc's import) may
exceed ``max_tensor_bytes()`` bytes, 16 GiB unless the environment variable
``IRC_MAX_TENSOR_BYTES`` (a byte count, suffixes K/M/G/T allowed) raises or lowers it.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np
import onnx
from google.protobuf.descriptor import FieldDescriptor
from onnx import TensorProto, helper

from irc.errors import InputError, ModelError
from irc.sizes import format_size

LIMIT_ENV = "IRC_MAX_TENSOR_BYTES"
DEFAULT_MAX_TENSOR_BYTES = 16 << 30
_SUFFIX = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def max_tensor_bytes() -> int:
    """The largest tensor (and dimension) irc accepts, in bytes; see the module docstring."""
    text = os.environ.get(LIMIT_ENV, "").strip().upper().removesuffix("B").removesuffix("I")
    if not text:
        return DEFAULT_MAX_TENSOR_BYTES
    unit = text[-1] if text[-1] in _SUFFIX else ""
    try:
        value = int(text[: len(text) - len(unit)]) * _SUFFIX[unit]
    except ValueError:
        value = 0
    if value <= 0:
        raise InputError(f"{LIMIT_ENV}={os.environ[LIMIT_ENV]!r} is not a positive byte count (e.g. 32G)")
    return value


def check_size(what: str, shape: Iterable[int], itemsize: int | None, *, error: type = ModelError) -> None:
    """Refuse a negative or oversized dimension, or a tensor over the byte limit."""
    shape = [int(d) for d in shape]
    limit = max_tensor_bytes()
    shown = "[" + ",".join(map(str, shape)) + "]"
    for d in shape:
        if d < 0:
            raise error(f"{what} has a negative dimension in shape {shown}")
        if d > limit:
            raise error(f"{what} has dimension {d} in shape {shown}, over the limit of {limit} "
                        f"(set {LIMIT_ENV} to raise it)")
    nbytes = math.prod(shape) * (itemsize or 1)
    if nbytes > limit:
        raise error(f"{what} of shape {shown} needs {format_size(nbytes)}, over the limit of "
                    f"{format_size(limit)} per tensor (set {LIMIT_ENV} to raise it)")


def at_file(where: str) -> str:
    """The prefix naming the model file in a message ("" for a model given in memory)."""
    return f"{where}: " if where else ""


def elem_name(elem_type: int) -> str:
    """FLOAT, INT64... or the number of an element type onnx does not define."""
    return TensorProto.DataType.Name(elem_type) if elem_type in TensorProto.DataType.values() else f"#{elem_type}"


def _itemsize(elem_type: int) -> int | None:
    try:
        return np.dtype(helper.tensor_dtype_to_np_dtype(elem_type)).itemsize
    except (KeyError, ValueError, TypeError):
        return None


# -- the checks before onnx's checker ------------------------------------------------------------

def check_text(model: onnx.ModelProto, where: str) -> None:
    """Every string field (names, op types, domains, string attributes) is valid UTF-8.

    protobuf hands proto2 strings that are not UTF-8 back as bytes; onnx's checker would later
    fail to decode its own error message about them."""
    bad = _first_bad_string(model, "model")
    if bad is not None:
        path, raw = bad
        raise ModelError(f"{at_file(where)}{path} is not valid UTF-8 text ({raw[:40]!r})")


#: the fields of a TensorProto that hold text (its data is never read for the text check)
_TENSOR_TEXT = [f for name, f in TensorProto.DESCRIPTOR.fields_by_name.items()
                if name in ("name", "doc_string", "external_data", "metadata_props")]


def _first_bad_string(msg, path: str) -> tuple[str, bytes] | None:
    if isinstance(msg, TensorProto):
        fields = [(f, getattr(msg, f.name)) for f in _TENSOR_TEXT]
    else:
        fields = msg.ListFields()
    for field, value in fields:
        here = f"{path}.{field.name}"
        items = list(enumerate(value)) if field.is_repeated else [(None, value)]
        for i, item in items:
            at = here if i is None else f"{here}[{i}]"
            if field.type == FieldDescriptor.TYPE_STRING and not _is_text(item):
                return at, item.encode("utf-8", "surrogatepass") if isinstance(item, str) else bytes(item)
            if field.type == FieldDescriptor.TYPE_MESSAGE:
                found = _first_bad_string(item, _label(item, at))
                if found is not None:
                    return found
    return None


def _is_text(v) -> bool:
    if isinstance(v, str):
        try:
            v.encode("utf-8")
        except UnicodeEncodeError:
            return False
        return True
    return False


def _label(item, fallback: str) -> str:
    """'node 'conv1'' rather than 'model.graph.node[3]' where the item has a readable name."""
    name = getattr(item, "name", None) if "name" in item.DESCRIPTOR.fields_by_name else None
    if isinstance(name, str) and name and _is_text(name):
        return f"{fallback} ('{name}')"
    return fallback


def check_opsets(model: onnx.ModelProto, where: str) -> None:
    """Default-domain opsets must be ones the installed onnx defines."""
    newest = onnx.defs.onnx_opset_version()
    for o in model.opset_import:
        if o.domain in ("", "ai.onnx") and not 1 <= o.version <= newest:
            raise ModelError(f"{at_file(where)}the model imports ONNX opset {o.version}; the installed onnx "
                             f"defines opsets 1 to {newest}")


def check_order(graph: onnx.GraphProto, where: str) -> None:
    """Every node input exists before the node, every value is assigned once, outputs exist."""
    known = {t.name for t in graph.initializer} | {v.name for v in graph.input}
    later = {}
    for i, n in enumerate(graph.node):
        for o in n.output:
            if o:
                later.setdefault(o, i)
    for i, n in enumerate(graph.node):
        label = n.name or f"#{i}"
        for name in n.input:
            if not name or name in known:
                continue
            at = f"{at_file(where)}node '{label}' ({n.op_type}): "
            if name in later:
                j = later[name]
                raise ModelError(f"{at}input '{name}' is computed by node '{graph.node[j].name or '#' + str(j)}' "
                                 f"({graph.node[j].op_type}), which does not come before it: the nodes are not "
                                 "in topological order or form a cycle")
            raise ModelError(f"{at}input '{name}' is not a graph input, an initializer or the output of any node")
        for name in n.output:
            if not name:
                continue
            if name in known:
                raise ModelError(f"{at_file(where)}node '{label}' ({n.op_type}): value '{name}' is assigned twice")
            known.add(name)
    for o in graph.output:
        if o.name not in known:
            raise ModelError(f"{at_file(where)}graph output '{o.name}' is not computed by any node, input or initializer")


def check_declared_sizes(graph: onnx.GraphProto, where: str) -> None:
    """Static dims of inputs, outputs, value_info and initializers are within the limits."""
    for kind, infos in (("input", graph.input), ("output", graph.output), ("value", graph.value_info)):
        for vi in infos:
            if not vi.type.HasField("tensor_type"):
                continue
            tt = vi.type.tensor_type
            dims = [d.dim_value for d in tt.shape.dim if d.HasField("dim_value")]
            if len(dims) < len(tt.shape.dim):
                # a partly dynamic shape: each static dim still counts
                check_size(f"{at_file(where)}{kind} '{vi.name}'", dims, 1)
            else:
                check_size(f"{at_file(where)}{kind} '{vi.name}'", dims, _itemsize(tt.elem_type))
    for t in graph.initializer:
        check_size(f"{at_file(where)}initializer '{t.name}'", t.dims, _itemsize(t.data_type))


def check_payloads(model: onnx.ModelProto, where: str) -> None:
    """Each initializer and Constant tensor holds exactly the data its dims and type call for."""
    g = model.graph
    for t in g.initializer:
        check_payload(t, f"{at_file(where)}initializer '{t.name}'")
    for i, n in enumerate(g.node):
        for a in n.attribute:
            tensors = ([a.t] if a.HasField("t") else []) + list(a.tensors)
            for t in tensors:
                check_size(f"{at_file(where)}attribute '{a.name}' of node '{n.name or '#' + str(i)}'", t.dims,
                           _itemsize(t.data_type))
                check_payload(t, f"{at_file(where)}attribute '{a.name}' of node '{n.name or '#' + str(i)}' ({n.op_type})")


_PACKED_4BIT = {getattr(TensorProto, n) for n in ("INT4", "UINT4", "FLOAT4E2M1") if hasattr(TensorProto, n)}
_TYPED_FIELDS = ("float_data", "int32_data", "string_data", "int64_data", "double_data", "uint64_data")


def check_payload(t: onnx.TensorProto, what: str) -> None:
    if t.data_location == TensorProto.EXTERNAL:
        return  # read (and then checked) by load_external
    if t.data_type == TensorProto.UNDEFINED:
        raise ModelError(f"{what} has no element type")
    if any(d < 0 for d in t.dims):
        raise ModelError(f"{what} has a negative dimension in {list(t.dims)}")
    n = math.prod(t.dims)
    filled = [f for f in _TYPED_FIELDS if len(getattr(t, f))]
    packed = t.data_type in _PACKED_4BIT
    if t.HasField("raw_data"):
        if filled:
            raise ModelError(f"{what} holds both raw_data and {filled[0]}")
        size = _itemsize(t.data_type)
        if t.data_type == TensorProto.STRING or (size is None and not packed):
            raise ModelError(f"{what}: raw_data cannot hold {elem_name(t.data_type)} values")
        need = (n + 1) // 2 if packed else n * size
        if len(t.raw_data) != need:
            raise ModelError(f"{what} has {len(t.raw_data)} bytes of raw_data; its dims {list(t.dims)} and type "
                             f"{elem_name(t.data_type)} need {need}")
        return
    try:
        field = helper.tensor_dtype_to_field(t.data_type)
    except (KeyError, ValueError, TypeError):
        raise ModelError(f"{what} has unknown element type {t.data_type}") from None
    stray = [f for f in filled if f != field]
    if stray:
        raise ModelError(f"{what} of type {elem_name(t.data_type)} holds {stray[0]}; "
                         f"its values belong in {field}")
    per = 2 if t.data_type in (TensorProto.COMPLEX64, TensorProto.COMPLEX128) else 1
    need = (n + 1) // 2 if packed else n * per
    have = len(getattr(t, field))
    if have != need:
        raise ModelError(f"{what} has {have} values in {field}; its dims {list(t.dims)} need {need}")


#: ONNX inputs the spec requires to hold one value: (op type, input index) -> what it is.
_SCALAR_INPUTS = {("Clip", 1): "min", ("Clip", 2): "max"}


def check_node_inputs(node: onnx.NodeProto, index: int, env: Mapping) -> None:
    """Inputs the ONNX spec requires to be scalars hold one value (``env``: name -> irc Value)."""
    for i, name in enumerate(node.input):
        what = _SCALAR_INPUTS.get((node.op_type, i))
        v = env.get(name) if what and name else None
        if v is not None and v.type.size != 1:
            raise ModelError(f"input '{name}' ({what}) must be a scalar, not {v.type}",
                             node=node.name or f"#{index}", op=node.op_type)


# -- external data --------------------------------------------------------------------------------

def external_tensors(model: onnx.ModelProto) -> list[onnx.TensorProto]:
    out = [t for t in model.graph.initializer if t.data_location == TensorProto.EXTERNAL]
    for n in model.graph.node:
        for a in n.attribute:
            out += [t for t in ([a.t] if a.HasField("t") else []) + list(a.tensors)
                    if t.data_location == TensorProto.EXTERNAL]
    return out


def load_external(model: onnx.ModelProto, folder: Path | None, where: str) -> None:
    """Read every external tensor's data into the model, from files inside ``folder`` only.

    ``folder`` is the model file's folder; without one (bytes or a ModelProto) external data is
    refused rather than looked up relative to the working directory."""
    for t in external_tensors(model):
        info = {e.key: e.value for e in t.external_data}
        loc = info.get("location", "")
        what = f"{at_file(where)}tensor '{t.name}'"
        if folder is None:
            raise ModelError(f"{what} keeps its data in an external file ('{loc}'); give the model's path so "
                             "that the file can be found next to it")
        if not loc:
            raise ModelError(f"{what} is stored externally but names no file (empty location)")
        rel = Path(loc)
        if (rel.is_absolute() or loc.startswith(("/", "\\")) or ".." in rel.parts or "\0" in loc
                or os.path.normpath(loc) == "."):
            raise ModelError(f"{what} names external file '{loc}'; it must be a file name relative to the "
                             f"model's folder, inside it")
        path = folder / rel
        real_folder, real = os.path.realpath(folder), os.path.realpath(path)
        if os.path.commonpath([real_folder, real]) != real_folder:
            raise ModelError(f"{what}: external file '{loc}' resolves outside the model's folder")
        if not path.is_file():
            raise ModelError(f"{what}: external data file '{loc}' does not exist next to the model (in {folder})")
        try:
            offset = int(info.get("offset", 0))
            length = int(info["length"]) if "length" in info else None
        except ValueError:
            raise ModelError(f"{what}: external data offset/length are not integers") from None
        size = path.stat().st_size
        if offset < 0 or offset > size or (length is not None and (length < 0 or offset + length > size)):
            raise ModelError(f"{what}: offset {offset} and length {length} lie outside '{loc}' ({size} bytes)")
        check_size(what, t.dims, _itemsize(t.data_type))
        try:
            with open(path, "rb") as f:
                f.seek(offset)
                data = f.read(length if length is not None else -1)
        except OSError as e:
            raise ModelError(f"{what}: cannot read external data file '{loc}': {e.strerror or e}") from None
        t.raw_data = data
        del t.external_data[:]
        t.data_location = TensorProto.DEFAULT


# -- after onnx's shape inference ---------------------------------------------------------------

def check_inferred(model: onnx.ModelProto, where: str) -> None:
    """Sizes of the values onnx's shape inference can tell from the model alone."""
    try:
        inferred = onnx.shape_inference.infer_shapes(_without_weights(model), check_type=False,
                                                     strict_mode=False, data_prop=True)
    except (onnx.shape_inference.InferenceError, onnx.checker.ValidationError, RuntimeError, ValueError):
        return  # irc's own shape inference reports the problem, naming the node
    check_declared_sizes(inferred.graph, where)


#: initializers with more values than this reach shape inference without their data (only small
#: ones, shape and index constants, feed its data propagation)
_INFERENCE_DATA_VALUES = 1024


def _without_weights(model: onnx.ModelProto) -> onnx.ModelProto:
    """The model with the data of its large initializers left out: inference copies the whole
    model, which costs more than the inference itself on a network's weights."""
    slim = onnx.ModelProto(ir_version=model.ir_version, opset_import=model.opset_import, functions=model.functions)
    g, src = slim.graph, model.graph
    g.name = src.name
    for field in ("node", "input", "output", "value_info"):
        getattr(g, field).extend(getattr(src, field))
    for t in src.initializer:
        if math.prod(t.dims) > _INFERENCE_DATA_VALUES:
            g.initializer.add(name=t.name, data_type=t.data_type, dims=t.dims)
        else:
            g.initializer.append(t)
    return slim


# -- run time -------------------------------------------------------------------------------------

def check_bound_sizes(values: Iterable[tuple[str, tuple[int, ...], int]], bound: Mapping[str, tuple[int, ...]],
                      error: type) -> None:
    """(name, shape, itemsize) of graph values, refused with ``error`` naming the input binding."""
    binding = ", ".join(f"{k}={'x'.join(map(str, s))}" for k, s in bound.items())
    for name, shape, itemsize in values:
        what = f"tensor '{name}'" + (f" (with input shapes {binding})" if binding and error is InputError else "")
        check_size(what, shape, itemsize, error=error)


def run_inputs(named: Mapping[str, object], declared: Mapping[str, object]) -> dict[str, object]:
    """Inputs by name with Python lists converted (see run_input); ``declared`` maps each input
    to its irc DType or ONNX element type."""
    out = {}
    for name, value in named.items():
        dt = declared.get(name)
        if isinstance(dt, int):
            size = _itemsize(dt)  # None for element types numpy lacks
            dt = helper.tensor_dtype_to_np_dtype(dt) if size is not None else None
        elif dt is not None:
            dt = dt.numpy
        out[name] = run_input(name, value, dt)
    return out


def run_input(name: str, value, dtype: np.dtype | None):
    """A Python list, tuple or scalar given as input ``name`` as an array of the declared ``dtype``.

    Floats are converted to a float dtype when they stay finite there (as a float32 literal in C
    would be), ints to any dtype that holds them exactly, bools only to bool. Numpy arrays are
    returned as they are: the run-time checks own their dtype rules."""
    if isinstance(value, np.ndarray) or not isinstance(value, (list, tuple, int, float, bool, np.generic)):
        return value
    try:
        arr = np.array(value)
    except ValueError:
        raise InputError(f"input '{name}' is a ragged nested list (rows of different lengths); "
                         "give a rectangular list or a numpy array") from None
    if arr.dtype == object:
        raise InputError(f"input '{name}' is a nested list of mixed or non-numeric items; "
                         "give a rectangular list of numbers or a numpy array")
    if dtype is None or arr.dtype == dtype:
        return arr
    dtype = np.dtype(dtype)
    kind = arr.dtype.kind
    if kind == "f" and dtype.kind == "f":
        with np.errstate(over="ignore"):
            out = arr.astype(dtype)
        if np.any(np.isfinite(arr) & ~np.isfinite(out)):
            raise InputError(f"input '{name}' holds values outside the range of {dtype}")
        return out
    if kind in "iu" and dtype.kind in "iuf":
        out = arr.astype(dtype)
        back = out.astype(arr.dtype) if dtype.kind in "iu" else out
        if not np.array_equal(back, arr):
            raise InputError(f"input '{name}' holds integers that {dtype} cannot hold exactly")
        return out
    if kind == "b" and dtype.kind == "b":
        return arr
    return arr  # left to the run-time dtype check, which names the expected type
