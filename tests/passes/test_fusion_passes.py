"""fold_batchnorm, fuse and im2col_gemm: expected IR and equal numbers before and after."""

import numpy as np
import pytest

from irc.ir import GraphBuilder, interpret, print_graph
from irc.passes.pipeline import run_pipeline

RNG = np.random.default_rng(0)
CONV = dict(strides=(1, 1), pads=(1, 1, 1, 1), dilations=(1, 1), group=1)


def _p(b, shape, scale=0.3):
    return b.param("w", (RNG.standard_normal(shape) * scale).astype(np.float32))


def _bn(b, v, c):
    var = b.param("var", (RNG.random(c) + 0.5).astype(np.float32))
    return b.op("batch_norm", v, _p(b, (c,)), _p(b, (c,)), _p(b, (c,)), var)


def _run(g, passes):
    out = run_pipeline(g, passes, options={"vector_bits": 512})
    x = RNG.standard_normal(g.inputs[0].shape).astype(np.float32)
    np.testing.assert_allclose(interpret(out, [x])[0], interpret(g, [x])[0], rtol=1e-4, atol=1e-5)
    return out


def _ops(g):
    return [n.op for n in g.nodes]


def test_batchnorm_folds_into_conv():
    b = GraphBuilder("g")
    x = b.input("x", (2, 3, 8, 8))
    g = b.build(_bn(b, b.op("conv", x, _p(b, (4, 3, 3, 3)), **CONV), 4))
    out = _run(g, ["fold_batchnorm"])
    assert _ops(out) == ["conv"] and len(out.nodes[0].inputs) == 3


def test_batchnorm_alone_becomes_scale_and_shift():
    b = GraphBuilder("g")
    x = b.input("x", (2, 3, 4, 4))
    out = _run(b.build(_bn(b, x, 3)), ["fold_batchnorm"])
    assert _ops(out) == ["mul", "add"]
    assert out.nodes[0].inputs[1].shape == (3, 1, 1)


def test_batchnorm_after_shared_conv_is_not_folded():
    b = GraphBuilder("g")
    x = b.input("x", (1, 3, 4, 4))
    c = b.op("conv", x, _p(b, (3, 3, 3, 3)), **CONV)
    g = b.build(b.op("add", _bn(b, c, 3), c))
    out = _run(g, ["fold_batchnorm"])
    assert _ops(out) == ["conv", "mul", "add", "add"]


def test_resnet_block_fuses_into_two_kernels():
    b = GraphBuilder("block")
    x = b.input("x", (2, 8, 8, 8))
    h = b.op("relu", _bn(b, b.op("conv", x, _p(b, (8, 8, 3, 3), 0.2), **CONV), 8))
    h = _bn(b, b.op("conv", h, _p(b, (8, 8, 3, 3), 0.2), **CONV), 8)
    g = b.build(b.op("relu", b.op("add", h, x)))
    out = _run(g, ["fold_batchnorm", "fuse"])
    assert _ops(out) == ["conv_fused", "conv_fused"]
    first, second = out.nodes
    assert first.attrs["act"] == "relu" and len(first.inputs) == 3
    assert second.attrs["act"] == "relu" and second.inputs[3] is x
    text = print_graph(out)
    assert 'conv_fused(%x, %w_bn, %b_bn) {strides=[1, 1], pads=[1, 1, 1, 1], dilations=[1, 1], group=1, act="relu"' in text


def test_relu_applied_before_residual_is_kept_apart():
    b = GraphBuilder("g")
    x = b.input("x", (1, 4, 5, 5))
    h = b.op("relu", b.op("conv", x, _p(b, (4, 4, 3, 3)), **CONV))
    out = _run(b.build(b.op("add", h, x)), ["fuse"])
    assert _ops(out) == ["conv_fused", "add"]


def test_gemm_with_transposed_weights_and_bias_fuses():
    b = GraphBuilder("mlp")
    x = b.input("x", (5, 12))
    y = b.op("gemm", x, _p(b, (7, 12)), _p(b, (7,)), trans_b=1, alpha=0.5, beta=2.0)
    out = _run(b.build(b.op("leaky_relu", y, alpha=0.2)), ["fuse"])
    assert _ops(out) == ["gemm_fused"]
    assert out.nodes[0].attrs["act"] == "leaky_relu" and out.nodes[0].attrs["act_alpha"] == 0.2


def test_matmul_plus_bias_then_lowering_packs_weights():
    b = GraphBuilder("g")
    x = b.input("x", (3, 20))
    y = b.op("add", b.op("matmul", x, _p(b, (20, 70))), _p(b, (70,)))
    out = _run(b.build(b.op("relu", y)), ["fuse", "im2col_gemm"])
    assert _ops(out) == ["gemm_packed"]
    bp = out.nodes[0].inputs[1]
    assert bp.shape[1] == 20 and bp.shape[0] * bp.shape[2] >= 70


@pytest.mark.parametrize("group, cin, cout, expect", [(1, 3, 16, "conv_gemm"), (2, 8, 16, "conv_gemm"), (4, 8, 16, "conv_fused"),
                                                       (8, 8, 8, "conv_fused"), (1, 1, 4, "conv_fused")])
def test_cost_rule_picks_gemm_or_direct(group, cin, cout, expect):
    b = GraphBuilder("g")
    x = b.input("x", (1, cin, 9, 9))
    c = b.op("conv", x, _p(b, (cout, cin // group, 3, 3)), **{**CONV, "group": group})
    out = _run(b.build(b.op("relu", c)), ["fuse", "im2col_gemm"])
    assert _ops(out) == [expect]


def test_graph_output_names_survive_fusion():
    b = GraphBuilder("g")
    x = b.input("x", (1, 2, 4, 4))
    y = b.op("relu", b.op("conv", x, _p(b, (2, 2, 1, 1)), **{**CONV, "pads": (0, 0, 0, 0)}), name="probs")
    out = _run(b.build(y), ["fuse"])
    assert [v.name for v in out.outputs] == ["probs"]
