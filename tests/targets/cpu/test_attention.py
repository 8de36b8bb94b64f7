"""The CPU attention kernel against the interpreter (the op's reference) on hypothesis-chosen
shapes, masks and thread counts, and the zoo's transformers compiled with it against
onnxruntime.

Tolerance rtol 1e-5, atol 1e-6 for f32: the kernel and the reference both compute in f32 and
differ only in the order of the D-long dot products, the online softmax's per-block rescaling
and the exp (about 1 ulp); inputs in [-1, 1] and scale 1/sqrt(D) keep the scores of order one,
so those few ulps stay under 1e-5 relative after exp, and atol covers outputs near zero, which
are sums of terms of order one that cancel.
"""

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import irc
from irc.errors import TargetError
from irc.ir.types import DType, TensorType
from irc.zoo import bert_encoder, gpt_decoder
from tests.support.zoo import zoo_input
from tests.targets.harness import assert_matches_interp, one_op_graph

TOL = dict(rtol=1e-5, atol=1e-6)


def _uniform(rng, shape, dtype=np.float32):
    return rng.uniform(-1, 1, shape).astype(dtype)


def _mask(kind, rng, batch, sq, sk, dtype=np.float32):
    """None or an additive mask of one of the forms exporters write."""
    if kind == "causal":  # GPT: constant [Sq, Sk], -1e9 above the diagonal
        return np.triu(np.full((sq, sk), -1e9, dtype), k=1)
    if kind == "padding":  # BERT: [b, 1, 1, Sk], -inf on padded keys (all keys of some rows)
        m = np.where(rng.random((*batch[:1], *([1] * max(0, len(batch) - 1)), 1, sk)) < 0.4, -np.inf, 0)
        return m.astype(dtype)
    if kind == "dense":  # a full additive bias, one row masked out entirely with -inf, one with -1e9
        m = rng.standard_normal((*batch, sq, sk)).astype(dtype)
        m[..., 0, :] = -np.inf
        m[..., sq // 2, :] = -1e9
        return m
    return None


def _check(batch, sq, sk, d, dv, mask_kind, threads, seed, dtype=np.float32, tol=TOL):
    rng = np.random.default_rng(seed)
    q, k = _uniform(rng, (*batch, sq, d), dtype), _uniform(rng, (*batch, sk, d), dtype)
    v = _uniform(rng, (*batch, sk, dv), dtype)
    m = _mask(mask_kind, rng, batch, sq, sk, dtype)
    ins = [q, k, v] + ([m] if m is not None else [])
    g = one_op_graph("attention", [TensorType.of(x) for x in ins], {"scale": 1 / math.sqrt(d)})
    assert_matches_interp(g, ins, threads=threads, **tol)


SHAPES = dict(batch=st.sampled_from([(), (1,), (3,), (2, 2), (1, 5)]),
              mask=st.sampled_from([None, "causal", "padding", "dense"]), threads=st.sampled_from([1, 2]),
              seed=st.integers(0, 999))


@pytest.mark.slow
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sq=st.integers(1, 300), sk=st.integers(1, 300), d=st.integers(1, 128), dv=st.integers(1, 128), **SHAPES)
def test_attention_matches_the_reference(batch, sq, sk, d, dv, mask, threads, seed):
    _check(batch, sq, sk, d, dv, mask, threads, seed)


@settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sq=st.integers(1, 40), sk=st.integers(1, 40), d=st.integers(1, 24), dv=st.integers(1, 24), **SHAPES)
def test_attention_matches_the_reference_on_small_shapes(batch, sq, sk, d, dv, mask, threads, seed):
    _check(batch, sq, sk, d, dv, mask, threads, seed)


EDGES = [(1, 1, 1, None, 1), (7, 9, 3, "padding", 2), (13, 257, 64, "causal", 2)]
SLOW_EDGES = [(sq, sk, d, m, t) for sq, sk, d in [(1, 1, 1), (7, 9, 3), (128, 128, 64), (13, 257, 64), (300, 129, 33)]
              for m in (None, "causal", "padding") for t in (1, 2) if (sq, sk, d, m, t) not in EDGES]


@pytest.mark.parametrize("sq, sk, d, mask, threads", EDGES + [pytest.param(*c, marks=pytest.mark.slow) for c in SLOW_EDGES])
def test_attention_shapes_at_the_vector_width_and_key_block_edges(sq, sk, d, mask, threads):
    """Sk past one key block (128) and not a whole number of vectors; Sq not a whole number of
    row groups; one query, one key."""
    _check((2,), sq, sk, d, d, mask, threads, seed=sq + sk + d)


def test_attention_f64():
    _check((2,), 21, 70, 20, 24, "dense", 2, seed=1, dtype=np.float64, tol=dict(rtol=1e-12, atol=1e-13))


def test_batch_axes_broadcast():
    """k and v shared by every head (multi-query attention) and a mask per batch entry."""
    rng = np.random.default_rng(0)
    q = _uniform(rng, (2, 4, 19, 16))
    k, v = _uniform(rng, (2, 1, 40, 16)), _uniform(rng, (1, 40, 8))
    m = np.where(rng.random((2, 1, 19, 40)) < 0.2, -1e9, 0).astype(np.float32)
    g = one_op_graph("attention", [TensorType.of(x) for x in (q, k, v, m)], {"scale": 0.25})
    assert_matches_interp(g, [q, k, v, m], threads=2, **TOL)


def test_large_scores_do_not_overflow():
    """Scores in the hundreds: the running maximum is subtracted before every exp."""
    rng = np.random.default_rng(1)
    q, k, v = _uniform(rng, (2, 24, 32)) * 30, _uniform(rng, (2, 140, 32)) * 30, _uniform(rng, (2, 140, 16))
    g = one_op_graph("attention", [TensorType.of(x) for x in (q, k, v)], {"scale": 1 / math.sqrt(32)})
    got = assert_matches_interp(g, [q, k, v], threads=2, rtol=1e-4, atol=1e-5)[0]
    assert np.isfinite(got).all()


@pytest.mark.slow
@pytest.mark.parametrize("make", [bert_encoder, gpt_decoder], ids=["bert_encoder", "gpt_decoder"])
@pytest.mark.parametrize("threads", [1, 2])
def test_zoo_transformers_run_attention_kernels(make, threads, ort_run):
    layers = 3
    model = make(2, seq=24, hidden=48, heads=4, layers=layers)
    x = zoo_input(model, 2)
    exe = irc.compile(model, "cpu", threads=threads)
    (want,) = ort_run(model, {"input": x})
    np.testing.assert_allclose(exe.run([x])[0], want, rtol=1e-4, atol=1e-5)
    ops = [n.op for n in exe.graph.nodes]
    assert ops.count("attention") == layers and "softmax" not in ops


def test_half_precision_attention_is_refused_by_name():
    g = one_op_graph("attention", [TensorType((4, 8), DType.f16)] * 3, {"scale": 1.0})
    with pytest.raises(TargetError, match=r"attention node .*f32 and f64 only"):
        irc.compile(g, "cpu").run([np.zeros((4, 8), np.float16)] * 3)


def test_sse_vectors():
    """128-bit vectors (4 lanes, panels of 8 keys): the tiling follows the CPU's vector width."""
    rng = np.random.default_rng(2)
    q, k, v = _uniform(rng, (2, 37, 20)), _uniform(rng, (2, 141, 20)), _uniform(rng, (2, 141, 13))
    m = np.where(rng.random((2, 37, 141)) < 0.3, -np.inf, 0).astype(np.float32)
    g = one_op_graph("attention", [TensorType.of(x) for x in (q, k, v, m)], {"scale": 0.3})
    assert_matches_interp(g, [q, k, v, m], threads=2, cpu="x86-64-v2", **TOL)
