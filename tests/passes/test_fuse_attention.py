"""fuse_attention: each exported form of attention becomes one node computing the same numbers;
near misses are left alone."""

import math

import numpy as np
import pytest

from irc.ir import GraphBuilder, interpret
from irc.passes.pipeline import run_pipeline
from irc.targets import get_target

B, H, S, D = 2, 3, 5, 4
RNG = np.random.default_rng(0)


def _const(b, name, value):
    return b.param(name, np.asarray(value, np.float32))


def _heads(b, name):
    """[B, S, H*D] input split into heads [B, H, S, D]: the Reshape + Transpose of exports."""
    x = b.input(name, (B, S, H * D))
    return b.op("transpose", b.op("reshape", x, shape=(B, S, H, D)), perm=(0, 2, 1, 3))


def _inputs(g):
    return [RNG.standard_normal(v.shape).astype(v.dtype.numpy) for v in g.inputs]


def _fused(g, count=1):
    out = run_pipeline(g, ["fuse_attention"])
    ops = [n.op for n in out.nodes]
    assert ops.count("attention") == count, ops
    assert "softmax" not in ops
    xs = _inputs(g)
    np.testing.assert_allclose(interpret(out, xs)[0], interpret(g, xs)[0], rtol=1e-5, atol=1e-6)
    return out


def _unchanged(g):
    out = run_pipeline(g, ["fuse_attention"])
    assert [n.op for n in out.nodes] == [n.op for n in g.nodes]
    return out


def _tail(b, scores, v, mask=None, axis=-1, softmax="softmax", mask_first=False):
    if mask is not None:
        scores = b.op("add", mask, scores) if mask_first else b.op("add", scores, mask)
    return b.op("matmul", b.op(softmax, scores, axis=axis), v)


def test_zoo_form_mul_after_the_product_and_a_constant_causal_mask():
    b = GraphBuilder("g")
    q, k, v = _heads(b, "q"), _heads(b, "k"), _heads(b, "v")
    s = b.op("matmul", q, b.op("transpose", k, perm=(0, 1, 3, 2)))
    s = b.op("mul", s, _const(b, "scale", 1 / math.sqrt(D)))
    causal = _const(b, "mask", np.triu(np.full((S, S), -1e9), 1))
    out = _fused(b.build(_tail(b, s, v, causal)))
    att = next(n for n in out.nodes if n.op == "attention")
    assert att.attrs["scale"] == pytest.approx(1 / math.sqrt(D))
    # K^T's transpose folded into the head split: one transpose [0, 2, 1, 3] per operand, no other.
    assert sum(n.op == "transpose" for n in out.nodes) == 3


def test_torch_form_div_by_sqrt_d_and_a_bert_padding_mask_input_on_the_left():
    b = GraphBuilder("g")
    q, k, v = _heads(b, "q"), _heads(b, "k"), _heads(b, "v")
    pad = b.input("pad", (B, 1, 1, S))
    s = b.op("div", b.op("matmul", q, b.op("transpose", k, perm=(0, 1, 3, 2))), _const(b, "sqrt_d", math.sqrt(D)))
    out = _fused(b.build(_tail(b, s, v, pad, mask_first=True)))
    att = next(n for n in out.nodes if n.op == "attention")
    assert att.inputs[3].name == "pad" and att.attrs["scale"] == pytest.approx(0.5)


def test_q_and_k_each_scaled_by_the_fourth_root_and_k_transposed_with_the_head_split():
    b = GraphBuilder("g")
    q, v = _heads(b, "q"), _heads(b, "v")
    kx = b.input("k", (B, S, H * D))
    kt = b.op("transpose", b.op("reshape", kx, shape=(B, S, H, D)), perm=(0, 2, 3, 1))  # [B, H, D, S]
    c = _const(b, "quarter", D ** -0.25)
    s = b.op("matmul", b.op("mul", c, q), b.op("mul", kt, c))
    out = _fused(b.build(_tail(b, s, v)))
    att = next(n for n in out.nodes if n.op == "attention")
    assert att.attrs["scale"] == pytest.approx(D ** -0.5) and len(att.inputs) == 3


def test_scale_on_k_before_its_transpose_and_no_scale_after():
    b = GraphBuilder("g")
    q, k, v = _heads(b, "q"), _heads(b, "k"), _heads(b, "v")
    kt = b.op("transpose", b.op("div", k, _const(b, "two", 2.0)), perm=(0, 1, 3, 2))
    out = _fused(b.build(_tail(b, b.op("matmul", q, kt), v)))
    assert next(n for n in out.nodes if n.op == "attention").attrs["scale"] == 0.5


def test_k_transposed_elsewhere_gets_a_transpose_back():
    b = GraphBuilder("g")
    q, v = b.input("q", (H, S, D)), b.input("v", (H, S + 2, 3))
    kt = b.input("kt", (H, D, S + 2))
    s = b.op("mul", b.op("matmul", q, kt), _const(b, "s", 0.3))
    out = _fused(b.build(_tail(b, s, v)))
    att = next(n for n in out.nodes if n.op == "attention")
    assert [n.op for n in out.nodes] == ["transpose", "attention"] and att.inputs[1].shape == (H, S + 2, D)


def test_two_layers_both_fuse():
    b = GraphBuilder("g")
    x = b.input("x", (H, S, D))
    for _ in range(2):
        s = b.op("mul", b.op("matmul", x, b.op("transpose", x, perm=(0, 2, 1))), _const(b, "s", 0.5))
        x = _tail(b, s, x)
    _fused(b.build(x), count=2)


# ---------------------------------------------------------------------------- near misses


def _plain(b, **kw):
    q, k, v = (b.input(n, (H, S, D)) for n in "qkv")
    s = b.op("mul", b.op("matmul", q, b.op("transpose", k, perm=(0, 2, 1))), _const(b, "s", 0.5))
    return s, v


def test_softmax_on_another_axis_is_not_attention():
    b = GraphBuilder("g")
    s, v = _plain(b)
    _unchanged(b.build(_tail(b, s, v, axis=1)))


def test_log_softmax_is_not_attention():
    b = GraphBuilder("g")
    s, v = _plain(b)
    _unchanged(b.build(_tail(b, s, v, softmax="log_softmax")))


def test_scores_used_elsewhere_stay_unfused():
    b = GraphBuilder("g")
    s, v = _plain(b)
    _unchanged(b.build(_tail(b, s, v), s))


def test_probabilities_used_elsewhere_stay_unfused():
    b = GraphBuilder("g")
    s, v = _plain(b)
    p = b.op("softmax", s, axis=-1)
    _unchanged(b.build(b.op("matmul", p, v), p))


def test_a_scale_that_is_not_a_scalar_is_not_absorbed():
    b = GraphBuilder("g")
    q, k, v = (b.input(n, (H, S, D)) for n in "qkv")
    s = b.op("matmul", q, b.op("transpose", k, perm=(0, 2, 1)))
    s = b.op("mul", s, _const(b, "per_key", RNG.random(S) + 0.5))
    _unchanged(b.build(_tail(b, s, v)))


def test_a_mask_that_widens_the_scores_is_not_absorbed():
    b = GraphBuilder("g")
    s, v = _plain(b)
    wide = b.input("m", (2, H, S, S))  # broadcasting would make the scores [2, H, S, S]
    _unchanged(b.build(_tail(b, s, v, wide)))


def test_division_of_a_constant_by_the_scores_is_not_a_scale():
    b = GraphBuilder("g")
    q, k, v = (b.input(n, (H, S, D)) for n in "qkv")
    s = b.op("div", _const(b, "one", 1.0), b.op("matmul", q, b.op("transpose", k, perm=(0, 2, 1))))
    _unchanged(b.build(_tail(b, s, v)))


def test_only_the_cpu_pipeline_runs_the_pass():
    assert "fuse_attention" in [getattr(s, "name", s) for s in get_target("cpu").pipeline({})]
    for t in ("cuda", "fpga"):
        assert "fuse_attention" not in [getattr(s, "name", s) for s in get_target(t).pipeline({})]
