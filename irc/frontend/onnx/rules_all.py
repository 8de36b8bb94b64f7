"""Imports every rule module so that the import and export tables are complete."""

from irc.frontend.onnx import rules_elementwise, rules_nn, rules_shape, rules_quant  # noqa: F401
