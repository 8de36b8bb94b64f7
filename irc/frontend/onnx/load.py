"""Reading an ONNX model from a path, bytes or a ModelProto, with clear errors for bad files
and older opsets brought up to the one irc's import rules are written for."""

from __future__ import annotations

import os
from pathlib import Path

import onnx
from google.protobuf.message import DecodeError

from irc.errors import InputError, ModelError, UnsupportedOpError

#: Import rules follow the operator semantics from this opset on; older models are converted.
MIN_OPSET = 13


def load_model(src) -> onnx.ModelProto:
    """A checked ModelProto from ``src`` (path, bytes or ModelProto)."""
    if isinstance(src, onnx.ModelProto):
        model = src
    elif isinstance(src, (bytes, bytearray, memoryview)):
        model = _parse(bytes(src), "the given bytes")
    elif isinstance(src, (str, os.PathLike)):
        path = Path(src)
        if not path.exists():
            raise InputError(f"no such file: {path}")
        if path.is_dir():
            raise InputError(f"{path} is a directory, not an ONNX model")
        model = _parse(path.read_bytes(), str(path))
        if any(t.data_location == onnx.TensorProto.EXTERNAL for t in model.graph.initializer):
            try:
                onnx.load_external_data_for_model(model, str(path.parent))
            except (OSError, ValueError) as e:
                raise ModelError(f"{path}: cannot read external weight data: {e}") from None
    else:
        raise InputError(f"cannot read a model from a {type(src).__name__}")
    _check(model)
    return upgrade(model)


def _parse(data: bytes, where: str) -> onnx.ModelProto:
    if not data:
        raise ModelError(f"{where} is empty, not an ONNX model")
    model = onnx.ModelProto()
    try:
        model.ParseFromString(data)
    except (DecodeError, ValueError, RuntimeError) as e:
        raise ModelError(f"{where} is not an ONNX model (protobuf parse failed: {e})") from None
    return model


def _check(model: onnx.ModelProto) -> None:
    if not model.HasField("graph") or model.ir_version <= 0:
        raise ModelError("the protobuf is not an ONNX model (no graph or IR version)")
    if not model.graph.output:
        raise ModelError(f"graph '{model.graph.name}' has no outputs")
    try:
        onnx.checker.check_model(model)
    except onnx.checker.ValidationError as e:
        # Unknown ops also fail the checker; naming all of them at once is the more useful error.
        from irc.frontend.onnx.importer import describe_unsupported, unsupported_ops

        bad = unsupported_ops(model)
        if bad:
            raise UnsupportedOpError(describe_unsupported(bad)) from None
        first = str(e).strip().splitlines()[0]
        raise ModelError(f"the ONNX model is invalid: {first}") from None


def default_opset(model: onnx.ModelProto) -> int:
    for o in model.opset_import:
        if o.domain in ("", "ai.onnx"):
            return o.version
    return 1


def upgrade(model: onnx.ModelProto) -> onnx.ModelProto:
    """Models older than MIN_OPSET converted with onnx's version converter."""
    if default_opset(model) >= MIN_OPSET:
        return model
    from onnx import version_converter

    try:
        return version_converter.convert_version(model, MIN_OPSET)
    except Exception as e:  # the converter raises bare RuntimeErrors from C++
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ModelError(f"cannot convert opset {default_opset(model)} to {MIN_OPSET}: {msg}") from None
