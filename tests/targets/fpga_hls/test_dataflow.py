"""The dataflow architecture run as C simulation: the whole top (every stage a thread, FIFOs of
the generated depths) on two frames, int8 bit-exact with the interpreter, ap_fixed within the
stated bound (and equal to the per-layer kernels, whose arithmetic it repeats), float32 within
rtol 1e-4; no FIFO deadlocks or keeps data; a FIFO shallower than its computed depth deadlocks
and the simulation says which. And the project and command line of the dataflow design."""

from __future__ import annotations

import numpy as np
import pytest

import irc.zoo
from irc.cli.commands import main
from irc.errors import TargetError
from irc.targets.fpga_hls.dataflow.fifos import CHAIN_DEPTH
from irc.targets.fpga_hls.dataflow.plan import to_stream

from .dataflow_support import compile_graph, inverted_residual, residual_block, zoo_dataflow
from .support import FIXED, needs_ap, needs_gxx


def _check_fifos(exe, res):
    """Every FIFO drained, written once per pixel per frame, never above its depth."""
    assert set(res.fifos) == {f.name for f in exe.fifos}
    for f in exe.fifos:
        got = res.fifos[f.name]
        assert got["left"] == 0 and got["depth"] == f.depth, (f.name, got)
        assert got["writes"] == exe.frames * f.pixels, (f.name, got)
        assert 1 <= got["peak"] <= f.depth, (f.name, got)


def _want(exe, name):
    v = next(v for v in exe.graph.outputs if v.name == name)
    return np.concatenate([to_stream(exe.frame_values(f)[v]).astype(np.float64) for f in range(exe.frames)])


@needs_gxx
def test_lenet_int8_whole_top_bit_exact_over_two_frames():
    exe = zoo_dataflow("lenet5", "int8", csim=True)
    res = exe.csim_result
    assert res.passed and "0 outside tolerance, worst error 0, fifos ok" in res.message
    assert exe.tolerance() == (0.0, 0.0) and exe.frames == 2
    _check_fifos(exe, res)
    for name, got in res.outputs.items():
        want = _want(exe, name)
        np.testing.assert_array_equal(got, want)
        assert not np.array_equal(got[:10], got[10:]), "the two frames differ"


@pytest.mark.slow
@needs_gxx
def test_residual_int8_bypass_depth_is_needed():
    """A basic block's skip FIFO at its computed depth runs; at the chain depth it deadlocks."""
    exe = compile_graph(residual_block(c=4, hw=6), "int8", csim=True)
    assert {"fork", "qadd"} <= {s.kind for s in exe.stages}
    _check_fifos(exe, exe.csim_result)
    fork = next(s for s in exe.stages if s.kind == "fork")
    skip = max((exe.fifos[i] for i in fork.outs), key=lambda f: f.depth)
    assert skip.depth > CHAIN_DEPTH
    skip.depth = CHAIN_DEPTH
    del exe.__dict__["sources"]  # render again with the shallow FIFO
    with pytest.raises(TargetError, match="DEADLOCK"):
        exe.csim()
    assert f"a write to the full FIFO {skip.name} (depth {CHAIN_DEPTH})" in exe.csim_result.log


@pytest.mark.slow
@needs_gxx
@needs_ap
def test_lenet_fixed_within_bound_and_equal_to_the_layer_kernels():
    exe = zoo_dataflow("lenet5", FIXED, csim=True)
    atol, rtol = exe.tolerance()
    assert atol > 0 and rtol == 0  # accuracy.py's worst-case bound, propagated layer by layer
    _check_fifos(exe, exe.csim_result)
    # the per-layer design computes the same fixed-point arithmetic (exact sums, one rounding per layer)
    m = irc.zoo.build("lenet5", batch=1)
    layers = irc.compile(m, target="fpga", precision=FIXED, emulate=True)
    for name, got in exe.csim_result.outputs.items():
        frames = []
        for f in range(exe.frames):
            out = layers.run([exe.frame_values(f)[exe.graph.inputs[0]]])
            frames.append(to_stream(np.asarray(out[0] if isinstance(out, (list, tuple)) else out)))
        np.testing.assert_array_equal(got, np.concatenate(frames).astype(np.float64))
        assert np.max(np.abs(got - _want(exe, name))) <= atol


@pytest.mark.slow
@needs_gxx
@needs_ap
@pytest.mark.parametrize("precision", [FIXED, "float32", "int8"])
def test_downsampling_residual_block(precision):
    """Stride-2 conv on the long branch, 1x1 stride-2 conv on the skip: both branches sized."""
    exe = compile_graph(residual_block(c=4, hw=8, downsample=True), precision, csim=True)
    _check_fifos(exe, exe.csim_result)
    if precision == "int8":
        for name, got in exe.csim_result.outputs.items():
            np.testing.assert_array_equal(got, _want(exe, name))


def test_cli_saves_one_top_kernel(tmp_path, model_file):
    path = model_file(irc.zoo.build("lenet5", batch=1))
    out = tmp_path / "df"
    assert main(["compile", str(path), "--target", "fpga", "--flow", "hls", "--board", "u250",
                 "--opt", "architecture=dataflow", "-o", str(out)]) == 0
    make = (out / "Makefile").read_text()
    assert "KERNELS := lenet5_top" in make
    cfg = (out / "connectivity.cfg").read_text()
    assert [ln for ln in cfg.splitlines() if ln.startswith("nk=")] == ["nk=lenet5_top:1:lenet5_top_1"]
    assert "sp=lenet5_top_1.in_input:" in cfg and "sp=lenet5_top_1.out_output:" in cfg
    top = (out / "kernels" / "lenet5_top.cpp").read_text()
    assert top.count("#pragma HLS DATAFLOW") == 1 and 'extern "C" void lenet5_top(' in top
    assert (out / "tests" / "lenet5_top_tb.cpp").is_file() and (out / "vectors" / "dataflow").is_dir()
    assert "frames/s" in (out / "report.txt").read_text()


@pytest.mark.slow
@needs_gxx
def test_a_wrong_trip_count_fails_the_schedule_check():
    """TICKS one longer than the walk's schedule: the last iteration does nothing, and csim says so."""
    exe = zoo_dataflow("lenet5", "int8")
    stage = next(s for s in exe.stages if s.kind == "qconv")
    ticks = exe.design.stages[stage.index].trips
    src = exe.sources
    head, tail = src.top.split(f"struct {stage.name}_cfg", 1)
    assert f"TICKS = {ticks}" in tail
    src.top = head + f"struct {stage.name}_cfg" + tail.replace(f"TICKS = {ticks}", f"TICKS = {ticks + 1}", 1)
    with pytest.raises(TargetError, match="LEFT DATA|fifos"):
        exe.csim()
    assert "schedule: 2 stage frames" in exe.csim_result.log


@pytest.mark.slow
@needs_gxx
@needs_ap
@pytest.mark.parametrize("precision,stride", [("int8", 1), (FIXED, 1), ("int8", 2)])
def test_inverted_residual_block(precision, stride):
    """Depthwise convolutions (stride 1 with the skip add, stride 2 without) through csim."""
    exe = compile_graph(inverted_residual(stride=stride), precision, csim=True)
    _check_fifos(exe, exe.csim_result)
    if precision == "int8":
        for name, got in exe.csim_result.outputs.items():
            np.testing.assert_array_equal(got, _want(exe, name))


@pytest.mark.slow
@needs_gxx
def test_weights_loaded_into_uram(monkeypatch):
    """Weights too large for a BRAM ROM go to URAM, which has no initial contents: the top loads
    them from device memory (load_weights), then runs bit-exact."""
    from irc.targets.fpga_hls.dataflow import model

    monkeypatch.setattr(model, "URAM_BRAMS", 0)  # every block ROM of LeNet becomes a loaded URAM
    exe = zoo_dataflow("lenet5", "int8", board="u250", csim=True)
    loaded = [s for s in exe.stages if s.rom == "uram"]
    assert loaded and all(s.kind in ("qconv", "qdense") for s in loaded)
    top = exe.sources.top
    assert "int load_weights, int frames)" in top and top.count("load_w:") == len(loaded)
    assert all(f"const int8_t* w_{s.name}" in top for s in loaded)
    assert all(exe.design.stages[s.index].cost["URAM"] > 0 for s in loaded)
    for name, got in exe.csim_result.outputs.items():
        np.testing.assert_array_equal(got, _want(exe, name))
