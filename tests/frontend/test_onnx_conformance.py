"""ONNX node conformance cases with the interpreter as backend (see tests/onnx_cases.py; all but
FAST_CASES are marked slow)."""

import pytest

from tests.onnx_cases import case_params, check_case


@pytest.mark.parametrize("case", case_params())
def test_onnx_node_case(case):
    check_case(case, "interp")
