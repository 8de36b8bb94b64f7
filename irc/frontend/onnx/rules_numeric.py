"""ONNX <-> irc rules for IsNaN, IsInf and Mod (irc/ir/ops/numeric.py)."""

from __future__ import annotations

from irc.frontend.onnx.rules import simple

simple("IsNaN", "isnan")
simple("IsInf", "isinf", {"detect_negative": "detect_negative", "detect_positive": "detect_positive"})
simple("Mod", "mod", {"fmod": "fmod"})
