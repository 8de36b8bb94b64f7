"""A transformer MLP block ([..., K] rows through two linear layers, GELU or SiLU between, a
residual after) recognised and fused by the shared passes runs on every target that takes fused GEMMs: the
cuda kernels (host emulation) and the fpga HLS kernels (C++ emulation), against the interpreter."""

import math

import numpy as np
import pytest

import irc
from irc.ir import GraphBuilder, interpret
from tests.targets.fpga_hls.support import needs_gxx

RNG = np.random.default_rng(0)


def _mlp_block(act: str):
    """x + fc2(act(fc1(x) + b1)) + b2 on [2, 5, 24], the activation as an exporter writes it."""
    b = GraphBuilder("mlp")
    x = b.input("x", (2, 5, 24))

    def w(shape, name):
        return b.param(name, (RNG.standard_normal(shape) * 0.3).astype(np.float32))

    def c(v):
        return b.const(np.array(v, np.float32))

    h = b.op("add", b.op("matmul", x, w((24, 40), "w1")), w((40,), "b1"))
    if act == "gelu":
        h = b.op("mul", b.op("mul", h, b.op("add", b.op("erf", b.op("div", h, c(math.sqrt(2)))), c(1.0))), c(0.5))
    else:
        h = b.op("mul", h, b.op("sigmoid", h))
    y = b.op("add", b.op("add", b.op("matmul", h, w((40, 24), "w2")), w((24,), "b2")), x)
    return b.build(y)


def _check(target: str, act: str, **options):
    g = _mlp_block(act)
    seen = {}
    m = irc.compile(g, target, on_pass=lambda name, graph: seen.__setitem__(name, graph), **options)
    x = RNG.standard_normal((2, 5, 24)).astype(np.float32)
    np.testing.assert_allclose(m(x), interpret(g, [x])[0], rtol=1e-4, atol=1e-5)
    fused = seen["fuse"].op_histogram()
    assert fused.get("gemm_fused") == 2 and "matmul" not in fused and "add" not in fused
    return seen


@pytest.mark.parametrize("act", ["gelu", "silu"])
def test_cuda_runs_the_fused_block(act):
    seen = _check("cuda", act, arch="sm_80", emulate=True)
    acts = [n.attrs["act"] for n in seen["fuse"].nodes if n.op == "gemm_fused"]
    assert acts == [act, "none"]  # recognised, then made the first GEMM's epilogue


@needs_gxx
@pytest.mark.parametrize("act", ["gelu", "silu"])
def test_fpga_runs_the_fused_block(act):
    seen = _check("fpga", act, emulate=True)
    assert [n.attrs["act"] for n in seen["fuse"].nodes if n.op == "gemm_fused"] == [act, "none"]
