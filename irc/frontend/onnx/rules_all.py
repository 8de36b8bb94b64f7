"""Imports every rule module so that the import and export tables are complete."""

from irc.frontend.onnx import (  # noqa: F401
    rules_control,
    rules_einsum,
    rules_elementwise,
    rules_nn,
    rules_norms,
    rules_numeric,
    rules_position,
    rules_quant,
    rules_recurrent,
    rules_scatter,
    rules_shape,
)
