"""Winograd convolution on the CPU (conv_winograd, F(2x2,3x3) and F(4x4,3x3)): its error bound
over random shapes and epilogues, its op reference, the rule that picks it, the option that
turns it off, the narrower ISA, and whole models against onnxruntime.

Tolerance of the kernel tests: the bound of irc/targets/cpu/lowering/winograd.py,
|y_hat - y| <= gamma_n * S with S the Winograd magnitude sum (``magnitude_sum``) in place of
sum |w||x|, plus the epilogue's own roundings (u per add on |conv| + |bias| + |residual|, and
the activation's: every activation used here is 1-Lipschitz, tanh and sigmoid approximated to a
few ulp). The reference is irc's numpy conv and epilogue in float64.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import irc
from irc.errors import InputError
from irc.ir import GraphBuilder
from irc.ir.ops.fused import apply_epilogue
from irc.ir.ops.registry import get_op
from irc.targets.cpu.lowering import winograd as W
from irc.targets.cpu.lowering import winograd_rule
from tests.support.oracle import ort_run

U = 2.0**-24
#: activations with Lipschitz constant <= 1 (the bound carries over through them unchanged)
ACTS = {"none": (0.0, 0.0), "relu": (0.0, 0.0), "leaky_relu": (0.1, 0.0), "clip": (-0.5, 0.7),
        "tanh": (0.0, 0.0), "sigmoid": (0.0, 0.0)}


def conv_graph(n, c, h, w, cout, pads, act="none", bias=True, residual=False, seed=0):
    """A conv_fused layer (3x3, stride 1) and its inputs."""
    rng = np.random.default_rng(seed)
    b = GraphBuilder("conv")
    x = b.input("x", (n, c, h, w))
    wt = (rng.standard_normal((cout, c, 3, 3)) / np.sqrt(9 * c)).astype(np.float32)
    ins = [x, b.param("w", wt)]
    bs = rng.standard_normal(cout).astype(np.float32) if bias else None
    if bias:
        ins.append(b.param("bias", bs))
    oh, ow = h + pads[0] + pads[2] - 2, w + pads[1] + pads[3] - 2
    feeds = [rng.standard_normal((n, c, h, w)).astype(np.float32)]
    if residual:
        ins.append(b.input("r", (n, cout, oh, ow)))
        feeds.append(rng.standard_normal((n, cout, oh, ow)).astype(np.float32))
    alpha, beta = ACTS[act]
    g = b.build(b.op("conv_fused", *ins, strides=(1, 1), pads=pads, dilations=(1, 1), group=1, act=act,
                     act_alpha=alpha, act_beta=beta))
    return g, feeds, wt, bs


def assert_within_bound(g, feeds, wt, bias, pads, act, m, **options):
    """Compile with F(m x m, 3 x 3) forced, check conv_winograd ran, and the error bound."""
    exe = irc.compile(g, target="cpu", winograd=f"f{m}", **options)
    assert [nd.attrs["m"] for nd in exe.graph.nodes if nd.op == "conv_winograd"] == [m]
    got = exe.run(feeds)[0].astype(np.float64)
    x = feeds[0].astype(np.float64)
    conv = get_op("conv").reference(x, wt.astype(np.float64), strides=(1, 1), pads=pads, dilations=(1, 1), group=1)
    res = feeds[1].astype(np.float64) if len(feeds) > 1 else None
    b64 = bias.astype(np.float64) if bias is not None else None
    want = apply_epilogue(conv, b64, res, act, *ACTS[act], 1)
    s = W.magnitude_sum(x, wt, pads, m)
    nn = W.rounding_depth(m, x.shape[1])
    scale = np.abs(conv) + (np.abs(b64).reshape(1, -1, 1, 1) if b64 is not None else 0) + (
        np.abs(res) if res is not None else 0)
    tol = nn * U / (1 - nn * U) * s + 3 * U * scale + (4 * U * (1 + np.abs(want)) if act in ("tanh", "sigmoid") else 0)
    err = np.abs(got - want)
    worst = np.unravel_index(np.argmax(err - tol), err.shape)
    assert np.all(err <= tol), f"error {err[worst]:.3g} over the bound {tol[worst]:.3g} at {worst}"
    return err, s


@pytest.mark.slow
@settings(max_examples=25, deadline=None)
@given(m=st.sampled_from([2, 4]), n=st.integers(1, 2), c=st.integers(2, 40), cout=st.integers(8, 30),
       h=st.integers(1, 19), w=st.integers(1, 19), pads=st.tuples(*[st.integers(0, 2)] * 4),
       act=st.sampled_from(sorted(ACTS)), bias=st.booleans(), residual=st.booleans(),
       threads=st.sampled_from([1, 2]), seed=st.integers(0, 2**16))
def test_error_within_the_bound(m, n, c, cout, h, w, pads, act, bias, residual, threads, seed):
    """Channels from 2 and Cout from 8: narrower convolutions stay on the direct kernel (the
    im2col_gemm rule), which Winograd replaces only where im2col would run."""
    assume(h + pads[0] + pads[2] >= 3 and w + pads[1] + pads[3] >= 3)
    g, feeds, wt, bs = conv_graph(n, c, h, w, cout, pads, act, bias or residual, residual, seed)
    assert_within_bound(g, feeds, wt, bs, pads, act, m, threads=threads)


@pytest.mark.parametrize("m", [2, 4])
@pytest.mark.parametrize("cpu", ["host", "x86-64-v2", pytest.param("haswell", marks=pytest.mark.slow)])
def test_every_isa_path(m, cpu):
    """The host (AVX2 + FMA here), plain SSE (x86-64-v2: 4-lane GEMM tiles) and AVX2 named; ragged
    output (13 x 10, not multiples of the tile), channels past one GEMM panel, two threads."""
    pads = (1, 0, 2, 1)
    g, feeds, wt, bs = conv_graph(2, 19, 12, 11, 23, pads, "relu", True, True, seed=m)
    assert_within_bound(g, feeds, wt, bs, pads, "relu", m, threads=2, cpu=cpu)


@pytest.mark.parametrize("m", [2, 4])
def test_one_small_image_shared_by_two_threads(m):
    """Fewer blocks than threads (batch 1, 6 x 6): the threads split each block's input channels,
    points and output channels instead (WinogradShape.phased)."""
    from irc.targets.cpu.kernels.registry import CpuContext
    from irc.targets.cpu.kernels.winograd import WinogradShape

    pads = (1, 1, 1, 1)
    g, feeds, wt, bs = conv_graph(1, 40, 6, 6, 64, pads, "relu", True, True, seed=m)
    exe = irc.compile(g, target="cpu", winograd=f"f{m}", threads=2)
    (node,) = exe.graph.nodes
    assert WinogradShape.of(node, CpuContext(threads=2, vector_bits=256)).phased(2)
    assert_within_bound(g, feeds, wt, bs, pads, "relu", m, threads=2)


def test_bound_is_not_vacuous():
    """The measured error of F(4x4,3x3) is within a few hundred of the bound's scale, and a
    Winograd error at all: a wrong output tile (an error of the size of y) exceeds it by far."""
    pads = (1, 1, 1, 1)
    g, feeds, wt, bs = conv_graph(1, 64, 16, 16, 32, pads, bias=False)
    err, s = assert_within_bound(g, feeds, wt, bs, pads, "none", 4, threads=1)
    nn = W.rounding_depth(4, 64)
    assert err.max() > 0
    assert (nn * U * s).max() < 1e-2 * np.abs(feeds[0]).max() * np.abs(wt).sum(axis=(1, 2, 3)).max()


def test_weight_transform_and_reference():
    """pack_weights recovers to the weights (G has full column rank), and conv_winograd's
    reference is the convolution it replaces."""
    rng = np.random.default_rng(3)
    wt = rng.standard_normal((10, 7, 3, 3)).astype(np.float32)
    x = rng.standard_normal((2, 7, 9, 6)).astype(np.float32)
    bias = rng.standard_normal(10).astype(np.float32)
    for m in W.TILES:
        up = W.pack_weights(wt, m, 6)
        assert up.shape == ((m + 2) ** 2, 2, 7, 6)
        np.testing.assert_allclose(W.recover_weights(up, 10, m), wt, rtol=0, atol=1e-6)
        got = get_op("conv_winograd").reference(x, up, bias, cout=10, pads=(1, 2, 0, 1), m=m, act="relu",
                                                act_alpha=0.0, act_beta=0.0)
        want = get_op("conv_fused").reference(x, wt, bias, strides=(1, 1), pads=(1, 2, 0, 1), dilations=(1, 1),
                                              group=1, act="relu", act_alpha=0.0, act_beta=0.0)
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_amplification_of_the_bound():
    """S / sum |w||x| for inputs of one magnitude, as the module docstring states."""
    assert W.amplification(2) == pytest.approx(64 / 9)
    assert W.amplification(4) == pytest.approx(256)


@pytest.mark.slow
def test_off_gives_the_old_code():
    """winograd=off: each convolution auto gives to conv_winograd is the conv_gemm it was, with
    the same attributes and packed weights as a build that never considers Winograd (a pipeline
    of the target's passes configured directly), and the same bits out."""
    import irc.zoo
    from irc.targets.cpu.lowering.im2col_gemm import Im2colGemm
    from tests.support.zoo import zoo_input

    model = irc.zoo.build("small_resnet", batch=1)
    x = zoo_input(model, 1)
    auto = irc.compile(model, target="cpu", threads=1)
    off = irc.compile(model, target="cpu", threads=1, winograd="off")
    assert "conv_winograd" in [nd.op for nd in auto.graph.nodes]
    assert [nd.op for nd in off.graph.nodes] == [nd.op.replace("conv_winograd", "conv_gemm") for nd in auto.graph.nodes]
    from irc.targets.cpu import CpuTarget
    from irc.targets.cpu.llvm_env import cpu_spec

    steps = [s if getattr(s, "name", None) != "im2col_gemm" else Im2colGemm(vector_bits=cpu_spec().vector_bits,
                                                                               winograd="off")
             for s in CpuTarget().pipeline({})]
    assert any(isinstance(s, Im2colGemm) for s in steps)
    plain = irc.compile(model, target="cpu", threads=1, passes=steps)
    for a, b in zip(off.graph.nodes, plain.graph.nodes, strict=True):
        assert (a.op, a.attrs) == (b.op, b.attrs)
        for va, vb in zip(a.inputs, b.inputs, strict=True):
            ca, cb = off.graph.params.get(va), plain.graph.params.get(vb)
            assert (ca is None) == (cb is None) and (ca is None or np.array_equal(ca, cb))
    np.testing.assert_array_equal(off(x), plain(x))


def test_rule_picks_winograd_where_it_wins():
    """The cost rule on layers of ResNet-18 and VGG-CIFAR (AVX2 tiles): F(4x4) on the large
    maps, F(2x2) on 7x7 and 8x8 (a 4x4 tile would pad 4 tiles to a 16-column panel), im2col
    for the 3-channel stem; 5x5 kernels, strides, groups and dilations never."""

    def pick(c, hw, cout, mode="auto", **attrs):
        a = dict(strides=(1, 1), dilations=(1, 1), group=1) | attrs
        k = 5 if a.pop("k5", False) else 3
        b = GraphBuilder("r")
        x = b.input("x", (1, c, hw, hw))
        wt = np.zeros((cout, c // a["group"], k, k), np.float32)
        p = k // 2
        g = b.build(b.op("conv_fused", x, b.param("w", wt), pads=(p,) * 4, act="none", act_alpha=0.0, act_beta=0.0,
                         **a))
        return winograd_rule.choose(g.nodes[0], mode, True, 256)

    assert pick(64, 56, 64) == 4
    assert pick(256, 14, 256) == 4
    assert pick(512, 7, 512) == 2
    assert pick(128, 8, 128) == 2
    assert pick(3, 32, 32) is None
    assert pick(3, 32, 32, "on") in (2, 4)
    assert pick(64, 56, 64, "off") is None
    assert pick(64, 56, 64, k5=True) is None
    assert pick(64, 56, 64, strides=(2, 2)) is None
    assert pick(64, 56, 64, group=2) is None
    assert pick(64, 56, 64, dilations=(2, 2)) is None


def test_unknown_mode_is_an_input_error():
    g, _, _, _ = conv_graph(1, 8, 8, 8, 8, (1, 1, 1, 1))
    with pytest.raises(InputError, match="winograd must be one of auto, on, off"):
        irc.compile(g, target="cpu", winograd="sometimes")


def test_cli_option_passes_through():
    from irc.cli.args import parse_options

    assert parse_options("cpu", ["winograd=off"]) == {"winograd": "off"}
    assert parse_options("cpu", ["winograd=on", "threads=2"]) == {"winograd": "on", "threads": 2}


@pytest.mark.slow
@pytest.mark.parametrize("threads", [1, 2])
def test_resnet18_with_winograd_matches_onnxruntime(threads):
    """The real ResNet-18 (224 x 224: F(4x4) on its first three stages, F(2x2) on 7x7) against
    onnxruntime with the model tests' tolerance."""
    import irc.zoo
    from tests.support.zoo import zoo_input

    model = irc.zoo.build("resnet18", batch=2)
    x = zoo_input(model, 2)
    m = irc.compile(model, target="cpu", threads=threads, winograd="on")
    assert sorted({nd.attrs["m"] for nd in m.graph.nodes if nd.op == "conv_winograd"}) == [2, 4]
    (want,) = ort_run(model, {"input": x})
    np.testing.assert_allclose(m(x), want, rtol=1e-4, atol=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize("name, kw", [("small_resnet", {}), ("vgg_cifar", {"width": 0.25})])
def test_small_models_with_winograd_match_onnxruntime(name, kw):
    import irc.zoo
    from tests.support.zoo import zoo_input

    model = irc.zoo.build(name, batch=2, **kw)
    x = zoo_input(model, 2)
    m = irc.compile(model, target="cpu", threads=2, winograd="f4")
    assert any(nd.op == "conv_winograd" for nd in m.graph.nodes)
    (want,) = ort_run(model, {"input": x})
    np.testing.assert_allclose(m(x), want, rtol=1e-4, atol=1e-5)


def test_avx512_code_is_generated(tmp_path):
    """AVX-512 (16 lanes, 6 x 64 GEMM tiles) cannot run on every host; its code is built and
    written as a library here (the kernels' IR passes LLVM's verifier and codegen)."""
    g, _, _, _ = conv_graph(1, 32, 14, 14, 64, (1, 1, 1, 1), "relu", True, True)
    m = irc.compile(g, target="cpu", cpu="skylake-avx512", winograd="f4", threads=2)
    assert [nd.op for nd in m.graph.nodes] == ["conv_winograd"]
    m.executable.save(tmp_path / "w.so")
    assert (tmp_path / "w.so").stat().st_size > 0
