"""Every fact about an op is reachable from its OpDef: a reference, a cost, a gradient rule or a
stated reason for having none, typed traits, and ONNX names that lead back to registered ops."""

from __future__ import annotations

import pytest

import irc.frontend.onnx.rules_all  # noqa: F401  (fills onnx_names)
import irc.passes.grads  # noqa: F401  (fills the grad slots)
from irc.frontend.onnx.rules import IMPORT_RULES
from irc.ir.ops import REGISTRY
from irc.ir.ops.registry import Trait


def test_every_op_has_a_reference_and_a_cost():
    missing = sorted(name for name, d in REGISTRY.items() if not callable(d.reference) or not callable(d.cost))
    assert not missing, f"ops without a numpy reference or a cost formula: {', '.join(missing)}"


def test_every_op_has_a_gradient_rule_or_says_why_not():
    missing = sorted(name for name, d in REGISTRY.items()
                     if d.grad is None and Trait.ZERO_GRAD not in d.traits and not d.no_grad)
    assert not missing, f"ops with no gradient rule, no ZERO_GRAD trait and no no_grad reason: {', '.join(missing)}"


def test_no_op_has_both_a_rule_and_a_reason_against_one():
    both = sorted(name for name, d in REGISTRY.items()
                  if d.grad is not None and (Trait.ZERO_GRAD in d.traits or d.no_grad))
    assert not both, f"ops with a gradient rule that also say they have none: {', '.join(both)}"


def test_traits_are_typed():
    for name, d in REGISTRY.items():
        assert isinstance(d.traits, frozenset) and all(isinstance(t, Trait) for t in d.traits), name


def test_every_onnx_name_maps_to_a_registered_op_and_has_an_import_rule():
    seen: dict[str, str] = {}
    for name, d in REGISTRY.items():
        for t in d.onnx_names:
            assert t in IMPORT_RULES, f"{name} lists ONNX {t}, which has no import rule"
            assert t not in seen, f"ONNX {t} is listed by both {seen[t]} and {name}"
            seen[t] = name
    assert seen, "no op lists an ONNX name: the frontend's rule tables did not fill onnx_names"


@pytest.mark.parametrize("onnx_type, op", [("Relu", "relu"), ("Gemm", "gemm"), ("Conv", "conv"),
                                           ("Upsample", "resize"), ("QLinearConv", "qconv")])
def test_onnx_names_are_filled_from_the_import_rules(onnx_type, op):
    assert onnx_type in REGISTRY[op].onnx_names
