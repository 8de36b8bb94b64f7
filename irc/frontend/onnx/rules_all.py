"""Imports every rule module so that the import and export tables are complete."""

from irc.frontend.onnx import rules_elementwise, rules_nn, rules_quant, rules_shape  # noqa: F401
