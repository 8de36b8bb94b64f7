"""The packed GEMM engine (gemm_packed, conv_gemm) against the interpreter: odd sizes that
exercise every edge tile, every epilogue, grouped and strided convolutions, 1 and 2 threads."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from irc.ir import GraphBuilder
from irc.ir.ops.activation import ACTIVATIONS
from irc.targets.cpu.lowering.ops import pack_panels
from tests.targets.harness import assert_matches_interp

RNG = np.random.default_rng(7)


def _f32(*shape, scale=1.0):
    return (RNG.standard_normal(shape) * scale).astype(np.float32)


@pytest.mark.slow
@settings(max_examples=12, deadline=None)
@given(m=st.integers(1, 40), k=st.integers(1, 300), n=st.integers(1, 150), nr=st.sampled_from([16, 32, 64]),
       act=st.sampled_from(sorted(ACTIVATIONS)), extras=st.integers(0, 2), threads=st.sampled_from([1, 2]))
def test_gemm_packed(m, k, n, nr, act, extras, threads):
    b = GraphBuilder("d")
    x = b.input("x", (m, k))
    w = _f32(k, n, scale=1 / np.sqrt(k))
    ins = [x, b.param("bp", pack_panels(np.ascontiguousarray(w.T), nr))]
    if extras >= 1:
        ins.append(b.param("bias", _f32(n)))
    feeds = [_f32(m, k)]
    if extras == 2:
        ins.append(b.input("r", (m, n)))
        feeds.append(_f32(m, n))
    g = b.build(b.op("gemm_packed", *ins, n=n, act=act, act_alpha=0.1 if act != "clip" else -0.5, act_beta=0.6))
    assert_matches_interp(g, feeds, threads=threads)


def test_gemm_packed_large_k_spans_several_slices():
    b = GraphBuilder("d")
    x = b.input("x", (13, 700))
    w = _f32(700, 90, scale=0.04)
    g = b.build(b.op("gemm_packed", x, b.param("bp", pack_panels(np.ascontiguousarray(w.T), 64)),
                     b.param("bias", _f32(90)), n=90, act="relu"))
    assert_matches_interp(g, [_f32(13, 700)], threads=2)


CONVS = [
    # batch, cin, h, w, cout, kernel, stride, pad, dilation, group
    (2, 3, 11, 9, 10, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 1),
    (1, 8, 14, 14, 16, (3, 3), (2, 2), (1, 1, 1, 1), (1, 1), 2),
    (3, 16, 7, 7, 12, (1, 1), (1, 1), (0, 0, 0, 0), (1, 1), 1),
    (1, 4, 10, 12, 9, (5, 3), (1, 2), (2, 0, 1, 2), (1, 1), 1),
    (1, 6, 12, 12, 8, (3, 3), (1, 1), (2, 2, 2, 2), (2, 2), 1),
    (2, 5, 6, 6, 7, (1, 1), (2, 2), (0, 0, 0, 0), (1, 1), 1),
    # batch-parallel at two threads (whole images per thread): grouped, and an uneven batch
    (4, 8, 16, 16, 12, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 2),
    (9, 16, 7, 7, 12, (1, 1), (1, 1), (0, 0, 0, 0), (1, 1), 1),
]


@pytest.mark.parametrize("case", CONVS)
@pytest.mark.parametrize("threads", [pytest.param(1, marks=pytest.mark.slow), 2])  # two threads take both paths
def test_conv_gemm(case, threads):
    n, c, h, w, co, ks, st_, pads, dil, group = case
    b = GraphBuilder("c")
    x = b.input("x", (n, c, h, w))
    wt = _f32(co, c // group, *ks, scale=0.3)
    mr = 6
    wp = np.stack([pack_panels(wt[g * (co // group):(g + 1) * (co // group)].reshape(co // group, -1), mr)
                   for g in range(group)])
    oh = (h + pads[0] + pads[2] - dil[0] * (ks[0] - 1) - 1) // st_[0] + 1
    ow = (w + pads[1] + pads[3] - dil[1] * (ks[1] - 1) - 1) // st_[1] + 1
    r = b.input("r", (n, co, oh, ow))
    g = b.build(b.op("conv_gemm", x, b.param("wp", wp), b.param("bias", _f32(co)), r, kernel_shape=ks, cout=co,
                     strides=st_, pads=pads, dilations=dil, group=group, act="relu"))
    assert_matches_interp(g, [_f32(n, c, h, w), _f32(n, co, oh, ow)], threads=threads)
