"""ONNX node conformance cases with the interpreter as backend (see tests/onnx_cases.py)."""

import pytest

from tests.onnx_cases import excluded, run_case, runnable_cases


@pytest.mark.parametrize("case", runnable_cases(), ids=lambda c: c.name)
def test_onnx_node_case(case):
    why = excluded().get(case.name)
    if why:
        pytest.skip(why)
    run_case(case, "interp")
