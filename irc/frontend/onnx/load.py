"""Reading an ONNX model from a path, bytes or a ModelProto, with clear errors for bad files
and older opsets brought up to the one irc's import rules are written for (opset.py)."""

from __future__ import annotations

import os
from pathlib import Path

import onnx
from google.protobuf.message import DecodeError

from irc.errors import InputError, ModelError, UnsupportedOpError
from irc.frontend.onnx import functions, opset, validate


def load_model(src) -> onnx.ModelProto:
    """A checked ModelProto from ``src`` (path, bytes or ModelProto).

    External weight data is read from files inside the model file's folder only; bytes or a
    ModelProto that still refer to external files are refused (there is no folder to look in,
    and the working directory is not one)."""
    return load_model_info(src)[0]


def load_model_info(src) -> tuple[onnx.ModelProto, bool]:
    """``load_model``, and whether the model kept weights in external files (which a
    fingerprint of the model file alone, irc/targets/cpu/model_cache.py, does not cover)."""
    folder, data = None, None
    if isinstance(src, onnx.ModelProto):
        model, where = src, ""
    elif isinstance(src, (bytes, bytearray, memoryview)):
        data = bytes(src)
        model, where = _parse(data, "the given bytes"), ""
    elif isinstance(src, (str, os.PathLike)):
        path = Path(src)
        if not path.exists():
            raise InputError(f"no such file: {path}")
        if path.is_dir():
            raise InputError(f"{path} is a directory, not an ONNX model")
        try:
            data = path.read_bytes()
        except OSError as e:
            raise InputError(f"cannot read {path}: {e.strerror or e}") from None
        model, where, folder = _parse(data, str(path)), str(path), path.parent
    else:
        raise InputError(f"cannot read a model from a {type(src).__name__}")
    external = _check(model, where, folder, data)
    return functions.expand(opset.upgrade(model)), external


def _parse(data: bytes, where: str) -> onnx.ModelProto:
    if not data:
        raise ModelError(f"{where} is empty, not an ONNX model")
    model = onnx.ModelProto()
    try:
        model.ParseFromString(data)
    except (DecodeError, ValueError, RuntimeError) as e:
        raise ModelError(f"{where} is not an ONNX model (protobuf parse failed: {e})") from None
    return model


def _check(model: onnx.ModelProto, where: str, folder: Path | None, data: bytes | None = None) -> bool:
    """The validation step of the import: irc's own checks (validate.py) around onnx's checker.
    ``data``: the bytes ``model`` was parsed from (onnx's checker reads them rather than
    serialising the model again). Returns whether external data was read into the model."""
    validate.check_text(model, where)
    if not model.HasField("graph") or model.ir_version <= 0:
        raise ModelError(f"{validate.at_file(where)}the protobuf is not an ONNX model (no graph or IR version)")
    if not model.graph.output:
        raise ModelError(f"{validate.at_file(where)}graph '{model.graph.name}' has no outputs")
    validate.check_opsets(model, where)
    external = bool(validate.external_tensors(model))
    validate.load_external(model, folder, where)
    validate.check_order(model.graph, where)
    validate.check_declared_sizes(model.graph, where)
    validate.check_payloads(model, where)
    try:
        onnx.checker.check_model(data if data is not None and not external else model)
    except onnx.checker.ValidationError as e:
        # Unknown ops also fail the checker; naming all of them at once is the more useful error.
        from irc.frontend.onnx.importer import describe_unsupported, unsupported_ops

        bad = unsupported_ops(model)
        if bad:
            raise UnsupportedOpError(describe_unsupported(bad)) from None
        first = str(e).strip().splitlines()[0]
        raise ModelError(f"{validate.at_file(where)}the ONNX model is invalid: {first}") from None
    validate.check_inferred(model, where)
    return external
