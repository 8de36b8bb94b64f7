"""Random graphs on every target that runs here: cpu, the CUDA emulation and the HLS flow's g++
emulation equal the interpreter (tolerances: graphs.tolerance); the DNeuro emulator equals the
int8 CPU target bit for bit on random quantized networks. A few seeded examples of each run in
the fast suite; more under the slow marker (the 1,000-graph runs: ``python -m tests.differential``)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings

from tests.differential.compare import run_case, run_dneuro_case
from tests.differential.dneuro_graphs import dneuro_graphs
from tests.differential.graphs import OPS, graphs
from tests.differential.hls_graphs import HLS_OPS, hls_graphs

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


def _needs_gxx():
    from irc.targets.fpga_hls import toolchain

    if toolchain.gxx() is None:
        pytest.skip("needs g++ (the HLS kernels' C simulation compiler)")


def _fpga_matches(case):
    out = run_case(case, "fpga", emulate=True)
    assert out.kind == "match", f"{out.kind}: {out.detail}\n{case.describe()}"


@settings(max_examples=3, **SETTINGS)
@given(case=hls_graphs(max_ops=3))
def test_random_hls_graphs_fpga_emulation_equals_interp(case):
    """Graphs of the ops the HLS flow maps: compared, never refused."""
    _needs_gxx()
    _fpga_matches(case)


@pytest.mark.slow
@settings(max_examples=10, **SETTINGS)
@given(case=hls_graphs(max_ops=6))
def test_more_random_hls_graphs_fpga_emulation_equals_interp(case):
    _needs_gxx()
    _fpga_matches(case)


def test_hls_generator_draws_only_what_the_flow_maps():
    """Every op of the HLS generator has a kernel, or is one the fuse passes turn into one."""
    from irc.targets.fpga_hls.kernels import is_supported

    as_is = set(HLS_OPS) - {"conv", "gemm", "matmul", "conv_batch_norm"}
    assert as_is, "the generator lost its element-wise ops"
    assert all(is_supported(op) for op in as_is), sorted(op for op in as_is if not is_supported(op))
    assert not {"erf", "where", "transpose", "layer_norm"} & set(HLS_OPS)


def _dneuro_matches(case):
    out = run_dneuro_case(case)
    assert out.kind == "match", f"{out.kind}: {out.detail}\n{case.describe()}"


@settings(max_examples=3, **SETTINGS)
@given(case=dneuro_graphs(max_ops=4))
def test_random_int8_networks_dneuro_emulator_equals_int8_cpu(case):
    _dneuro_matches(case)


@pytest.mark.slow
@settings(max_examples=6, **SETTINGS)
@given(case=dneuro_graphs(max_ops=8))
def test_more_random_int8_networks_dneuro_emulator_equals_int8_cpu(case):
    _dneuro_matches(case)


def test_dneuro_comparison_sees_one_code_off(monkeypatch):
    """The dneuro comparison is exact: an emulator one output code off is a mismatch."""
    from hypothesis import find

    from irc.targets.dneuro.emulator import Emulator

    case = find(dneuro_graphs(max_ops=2), lambda c: c.graph.nodes[-1].op != "softmax",
                settings=settings(database=None, derandomize=True))
    assert run_dneuro_case(case).kind == "match"
    real = Emulator.run

    def off_by_one_code(self, x):
        y = real(self, x)
        y.flat[0] += np.float32(self.lg.host["output_scale"])
        return y

    monkeypatch.setattr(Emulator, "run", off_by_one_code)
    out = run_dneuro_case(case)
    assert out.kind == "mismatch" and "1 of" in out.detail, out.detail
