"""The example models compiled for the CPU target against onnxruntime (fp32, rtol 1e-4,
atol 1e-5), at one and two threads, and the ONNX node conformance cases with the CPU target as
backend: the same cases pass as on the interpreter."""

from __future__ import annotations

import numpy as np
import pytest

import irc
import irc.zoo
from tests.onnx_cases import case_params, check_case
from tests.support.marks import slow_except
from tests.support.zoo import CONFIGS, zoo_input

#: every example at one thread; the parallel kernels at two threads on all but the largest model;
#: the MLP at one thread and LeNet-5 at two run without the slow marker
CASES = slow_except({"mlp-1t", "lenet5-2t"}, [pytest.param(*c.values, 1, id=f"{c.id}-1t") for c in CONFIGS] + [
    pytest.param(*c.values, 2, id=f"{c.id}-2t") for c in CONFIGS if c.id != "resnet18_224"])


@pytest.mark.parametrize("name, kw, threads", CASES)
def test_example_model_matches_onnxruntime(name, kw, threads, ort_run):
    model = irc.zoo.build(name, batch=2, **kw)
    x = zoo_input(model, 2)
    got = irc.compile(model, target="cpu", threads=threads)(x)
    (want,) = ort_run(model, {"input": x})
    assert got.shape == want.shape and got.dtype == np.float32
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("case", case_params())
def test_onnx_node_case_on_cpu(case):
    check_case(case, "cpu")
