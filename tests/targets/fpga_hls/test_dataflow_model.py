"""The dataflow model against the code it describes: trip counts, II, PE, SIMD and FIFO depths
read back from the generated C++ (and the library's loop bounds) must be the model's; the
tuner never gives a slower design for a larger budget; FIFO depths follow the branches' read
schedules; the benchmark's figures hold (ResNet-18 and MobileNetV2 fit a U250)."""

from __future__ import annotations

import re

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from irc.errors import InputError, TargetError, UnsupportedOpError
from irc.ir import GraphBuilder
from irc.targets.fpga_hls.boards import RESOURCES, get_board
from irc.targets.fpga_hls.dataflow.fifos import CHAIN_DEPTH, need
from irc.targets.fpga_hls.dataflow.model import DesignModel, macs_per_frame, rom_impl, weight_rom
from irc.targets.fpga_hls.dataflow.plan import MAC_KINDS
from irc.targets.fpga_hls.dataflow.tuner import tune
from irc.targets.fpga_hls.precision import parse_precision
from irc.targets.fpga_hls.slr import slr_share

from .dataflow_support import (
    compile_graph,
    evaluate,
    fifo_depths,
    inverted_residual,
    pipelined_loops,
    residual_block,
    stage_constants,
    stage_templates,
    zoo_dataflow,
)


def _check_code_against_model(exe):
    top = exe.sources.top
    consts = stage_constants(top)
    calls = stage_templates(top)
    assert set(calls) == {s.name for s in exe.stages}
    for s, m in zip(exe.stages, exe.design.stages):
        template, fork_pixels = calls[s.name]
        if template == "fork_stage":
            assert m.trips == fork_pixels and m.ii == 1, s.name
            continue
        c = consts[s.name]
        loops = pipelined_loops(template)
        assert loops, template
        trips = sum(evaluate(n, c) for n, _ in loops)
        assert m.trips == trips, (s.name, m.trips, trips)
        assert {m.ii} == {evaluate(ii, c) for _, ii in loops}, s.name
        assert c.get("PE", 1) == s.pe == m.pe, s.name
        assert c.get("SIMD", 1) == s.simd == m.simd, s.name
        if "NF" in c and "SF" in c:
            assert c["NF"] * c["PE"] * c["SF"] * c["SIMD"] == np.prod([c["CO"], c["SF"] * c["SIMD"]])
    assert fifo_depths(top) == {f.name: f.depth for f in exe.fifos}
    # every weight ROM pinned to the memory the model costs it in
    pinned = {}
    for chunk in top.split("\nstatic void ")[1:]:
        impl = re.search(r"BIND_STORAGE variable=w type=(?:rom_1p|ram_1p) impl=(\w+)", chunk.split("\n}\n")[0])
        if impl:
            pinned[chunk.split("(")[0]] = impl.group(1)
    for s in exe.stages:
        if s.kind in MAC_KINDS:
            assert pinned[s.name] == rom_impl(*weight_rom(exe.network, s, exe.precision), exe.board), s.name


@pytest.mark.parametrize("precision", ["int8", "ap_fixed<16,6>"])
def test_lenet_code_matches_the_model(precision):
    exe = zoo_dataflow("lenet5", precision, board="u250")
    _check_code_against_model(exe)
    kinds = [s.kind for s in exe.stages]
    assert kinds.count("conv" if precision != "int8" else "qconv") == 2 and "pool" in kinds


def test_residual_code_matches_the_model_and_its_bypass_depth():
    """The skip FIFO of a basic block holds the pixels the two convolutions read ahead."""
    exe = compile_graph(residual_block(c=4, hw=6), "int8")
    _check_code_against_model(exe)
    fork = next(s for s in exe.stages if s.kind == "fork")
    depths = sorted(exe.fifos[i].depth for i in fork.outs)
    # two 3x3 pad-1 convs on 6x6, each walking on to the end of its next window while it computes:
    # when the second conv writes output (0, 0) it may have read the first conv's outputs up to
    # (1, 2) (9 pixels); when the first wrote (1, 2) it may have read the input up to (2, 4):
    # 2*6 + 5 = 17 pixels, while the add needs 1 of the skip
    assert depths == [CHAIN_DEPTH, CHAIN_DEPTH + 16]


def test_float_residual_code_matches_the_model():
    """float32: a global average pool whose running sums wait for the adder (II > 1)."""
    exe = compile_graph(residual_block(c=4, hw=6), "float32")
    _check_code_against_model(exe)
    gp = next(m for m in exe.design.stages if m.kind == "global_pool")
    assert gp.ii > 1


@pytest.mark.parametrize("precision", ["int8", "ap_fixed<16,6>"])
def test_depthwise_block_code_matches_the_model(precision):
    exe = compile_graph(inverted_residual(stride=1), precision)
    _check_code_against_model(exe)
    assert any(s.kind in ("conv", "qconv") and s.kernel.params["G"] > 1 for s in exe.stages)


def test_folding_by_hand_is_rounded_to_what_the_layer_accepts():
    """conv1 of LeNet has 6 outputs and 25 taps: (4, 7) rounds down to (3, 5)."""
    exe = zoo_dataflow("lenet5", "int8", folding={"conv1": (4, 7)})
    conv1 = next(s for s in exe.stages if s.label == "conv1" and s.kind == "qconv")
    assert (conv1.pe, conv1.simd) == (3, 5)
    assert all((s.pe, s.simd) == (1, 1) for s in exe.stages if s is not conv1)
    _check_code_against_model(exe)
    with pytest.raises(InputError, match="folding must be"):
        zoo_dataflow("lenet5", "int8", folding=7)


def test_need_of_a_window():
    """Pixels a 3x3, pad 1, stride 2 convolution has read when it writes each output."""
    g = GraphBuilder("c")
    x = g.input("x", (1, 2, 5, 5))
    w = g.param("w", np.ones((2, 2, 3, 3), np.float32))
    exe = compile_graph(g.build(g.op("conv", x, w, pads=(1, 1, 1, 1), strides=(2, 2))), "ap_fixed<16,6>")
    conv = next(s for s in exe.stages if s.kind == "conv")
    got = need(exe.network, conv, 0).reshape(3, 3)
    # output (i, j) ends its window at padded (2i + 2, 2j + 2) = input (2i + 1, 2j + 1): rows above
    # it and its row up to column 2j + 1; in the bottom pad row (i = 2) every input pixel is read
    want = np.array([[(2 * i + 1) * 5 + min(2 * j + 2, 5) if 2 * i + 1 < 5 else 25 for j in range(3)]
                     for i in range(3)])
    np.testing.assert_array_equal(got, want)


def test_macs_per_frame_counts_the_graph():
    exe = zoo_dataflow("lenet5", "int8")
    # conv1 28*28*6*25, conv2 10*10*16*150, fc 400*120 + 120*84 + 84*10
    assert macs_per_frame(exe.network) == 28 * 28 * 6 * 25 + 10 * 10 * 16 * 150 + 400 * 120 + 120 * 84 + 84 * 10


_MONO = settings(max_examples=12, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])


def _interval(fraction, board="vck5000"):
    try:
        models, _ = tune(_residual_exe().network, parse_precision("int8"), get_board(board), fraction, 300.0)
    except TargetError:
        return None  # no design fits this budget
    return DesignModel(models, 300.0).interval


def test_larger_budgets_give_faster_designs():
    """Budgets from a sliver of a VCK5000 to all of it: the interval never grows, and it shrinks."""
    got = [i for i in (_interval(f) for f in (0.01, 0.04, 0.12, 0.4, 1.0)) if i is not None]
    assert len(got) >= 4
    assert all(a >= b for a, b in zip(got, got[1:])) and got[-1] < got[0]


@pytest.mark.slow
@given(f1=st.floats(0.02, 1.0), f2=st.floats(0.02, 1.0), board=st.sampled_from(["vck5000", "u200"]))
@_MONO
def test_a_larger_budget_never_gives_a_slower_design(f1, f2, board):
    small, large = sorted((f1, f2))
    exe = _residual_exe()
    b = get_board(board)
    prec = parse_precision("int8")
    try:
        m_small, slr_small = tune(exe.network, prec, b, small, 300.0)
    except TargetError:
        return  # the smaller budget holds no design: nothing to compare
    d_small = DesignModel(m_small, 300.0)
    m_large, slr_large = tune(exe.network, prec, b, large, 300.0)
    d_large = DesignModel(m_large, 300.0)
    assert d_large.interval <= d_small.interval
    for models, slrs, frac in ((m_small, slr_small, small), (m_large, slr_large, large)):
        share = slr_share(b, frac)
        for slr in set(slrs):
            for r in RESOURCES:
                assert sum(m.cost[r] for m, s in zip(models, slrs) if s == slr) <= share[r] + 1e-6


_CACHE = {}


def _residual_exe():
    if "res" not in _CACHE:
        _CACHE["res"] = compile_graph(residual_block(c=8, hw=8, downsample=True), "int8")
    return _CACHE["res"]


def test_tuner_balances_the_pipeline():
    """With room to spare every convolution gets lanes until the slowest stage is as fast as it
    gets, and the pipeline beats the per-layer design by the issue's 20x."""
    exe = zoo_dataflow("lenet5", "int8", board="u250")
    d = exe.design
    convs = [m for m in d.stages if m.kind == "qconv"]
    assert all(m.pe * m.simd > 1 for m in convs)
    assert d.interval == max(m.cycles for m in d.stages)
    assert d.fps > 20 * 300e6 / sum(e.cycles for e in _layers_estimates("lenet5", "int8"))


def _layers_estimates(name, precision):
    import irc
    import irc.zoo

    from .dataflow_support import calib_for

    m = irc.zoo.build(name, batch=1)
    extra = {"calib": calib_for(m)} if precision == "int8" else {}
    return irc.compile(m, target="fpga", precision=precision, board="u250", **extra).executable.estimates


@pytest.mark.slow
@pytest.mark.parametrize("precision", ["int8", "ap_fixed<16,6>"])
def test_mobilenet_v2_and_resnet18_fit_a_u250(precision):
    for name in ("mobilenet_v2", "resnet18"):
        exe = zoo_dataflow(name, precision, board="u250")
        total = exe.design.total()
        assert all(total[r] <= exe.board.totals[r] * 0.8 for r in RESOURCES), name
        assert exe.design.fps > 100, (name, exe.design.fps)


def test_errors_name_the_layer():
    g = GraphBuilder("ap")
    x = g.input("x", (1, 2, 6, 6))
    with pytest.raises(UnsupportedOpError, match="average pooling over windows") as e:
        compile_graph(g.build(g.op("average_pool", x, kernel_shape=(2, 2), strides=(2, 2))), "ap_fixed<16,6>")
    assert "average_pool" in str(e.value)
    g = GraphBuilder("b2")
    x = g.input("x", (2, 2, 6, 6))
    with pytest.raises(UnsupportedOpError, match="batch 1"):
        compile_graph(g.build(g.op("max_pool", x, kernel_shape=(2, 2), strides=(2, 2))), "float32")
    with pytest.raises(InputError, match="unknown architecture"):
        import irc

        irc.compile(residual_block(), target="fpga", architecture="systolic")
    with pytest.raises(TargetError, match="emulate=True runs the per-layer kernels"):
        compile_graph(residual_block(), "float32", emulate=True)
