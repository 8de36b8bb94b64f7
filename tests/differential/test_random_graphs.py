"""Random graphs on the CPU target equal the interpreter (tolerances: graphs.tolerance). A few
seeded examples run in the fast suite; more under the slow marker."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings

from tests.differential.compare import run_case
from tests.differential.graphs import OPS, graphs

SETTINGS = dict(deadline=None, derandomize=True, suppress_health_check=list(HealthCheck), database=None)


def _check(case):
    out = run_case(case, "cpu", threads=1)
    assert out.kind == "match", f"{out.kind}: {out.detail}\n{case.describe()}"


@settings(max_examples=6, **SETTINGS)
@given(case=graphs(max_ops=6))
def test_random_graphs_cpu_equals_interp(case):
    _check(case)


@pytest.mark.slow
@settings(max_examples=60, **SETTINGS)
@given(case=graphs(max_ops=10))
def test_more_random_graphs_cpu_equals_interp(case):
    _check(case)


def test_generator_covers_its_ops():
    """Every op the generator knows exists in the registry (a renamed op fails here, not silently)."""
    from irc.ir.ops import REGISTRY

    assert set(OPS) <= set(REGISTRY)


@settings(max_examples=4, **SETTINGS)
@given(case=graphs(max_ops=5))
def test_random_graphs_cuda_emulation_equals_interp(case):
    """The CUDA target's kernels, run on the host by its emulator (no GPU needed)."""
    out = run_case(case, "cuda", emulate=True)
    assert out.kind == "match", f"{out.kind}: {out.detail}\n{case.describe()}"


@pytest.mark.slow
@settings(max_examples=15, **SETTINGS)
@given(case=graphs(max_ops=4))
def test_random_graphs_fpga_emulation_equals_interp_or_refuses(case):
    """The HLS flow's kernels compiled with g++ and run on the host (its C simulation library):
    equal to the interpreter, or a clean refusal naming what the flow does not map."""
    from irc.targets.fpga_hls import toolchain

    if toolchain.gxx() is None:
        pytest.skip("needs g++")
    out = run_case(case, "fpga", emulate=True)
    assert out.kind in ("match", "refused"), f"{out.kind}: {out.detail}\n{case.describe()}"
    assert "g++ failed" not in out.detail, out.detail
