"""ONNX frontend: import a model as an irc Graph, export a Graph back to ONNX."""

from irc.frontend.onnx.exporter import export_onnx, save_onnx  # noqa: F401
from irc.frontend.onnx.importer import import_onnx, input_specs, unsupported_ops  # noqa: F401
from irc.frontend.onnx.load import load_model  # noqa: F401
