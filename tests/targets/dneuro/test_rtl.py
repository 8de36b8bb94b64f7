"""The generated top and the block library, simulated (Icarus Verilog or Verilator) on the
exported test vectors: the output streams equal the emulator's bit for bit, with and without
random gaps on the handshakes, and the measured frame period and latency match the cycle model."""

from __future__ import annotations

import functools

import numpy as np
import pytest

from irc.targets.dneuro.devices import get_device
from irc.targets.dneuro.emulator import Emulator
from irc.targets.dneuro.export import write_design
from irc.targets.dneuro.mapping import map_graph
from irc.targets.dneuro.sim import available, simulate
from irc.targets.dneuro.tune import evaluate, minimum, tune
from irc.targets.dneuro.vectors import beats_to_frames, output_words
from tests.support.marks import params

from .qgraphs import lenet, small_convnet
from .support import SIMULATOR, calib_data, float_graph, needs_sim, quantized_graph

pytestmark = needs_sim

GRAPHS = {
    "lenet": lambda: lenet(1, image=16),  # LeNet-5 on 16x16 frames: the same layers, a shorter simulation
    "lenet28": lambda: lenet(1),  # the real LeNet-5 (goal: 100k frames/s)
    "small_convnet": lambda: small_convnet(1),
    "mixed": lambda: quantized_graph("mixed"),
    "inception": lambda: quantized_graph("inception"),
    "lenet5_zoo_sym": lambda: quantized_graph("lenet5", "sym"),
}


@functools.cache
def _design(name: str, tuned: bool):
    g = GRAPHS[name]()
    lg = map_graph(g)
    dev = get_device("arria10-gx1150")
    return g, lg, (tune(lg, dev).design if tuned else evaluate(lg, dev, minimum(lg)))


@pytest.fixture(scope="session")
def run(tmp_path_factory):
    """run(name, tuned, stall, frames, simulator) -> (design, codes, SimResult); each export is
    written and compiled once per session."""

    @functools.cache
    def go(name: str, tuned: bool, stall: bool = False, frames: int = 2, simulator: str | None = SIMULATOR):
        g, lg, d = _design(name, tuned)
        x = np.random.default_rng(7).standard_normal((frames, *g.inputs[0].shape[1:])).astype(np.float32) * 2
        if name in ("mixed", "inception"):
            x = calib_data(float_graph(name), frames, 9)["x"]
        codes = Emulator(lg).quantize_input(x)
        out = tmp_path_factory.mktemp(f"{name}_{'tuned' if tuned else 'min'}")
        write_design(out, d, codes)
        return d, codes, simulate(out, simulator, stall=stall)

    return go


def _expected(d, codes):
    return [int(w, 16) for w in output_words(d, Emulator(d.lg).run_codes(codes)[d.lg.output.name])]


#: (each design is simulated once per session; the fast subset simulates small_convnet, tuned)
@pytest.mark.parametrize("name, tuned", params([("lenet", True), ("lenet", False), ("small_convnet", True),
                                                ("small_convnet", False), ("mixed", True), ("inception", True),
                                                ("inception", False), ("lenet5_zoo_sym", True)],
                                               fast={"small_convnet-True"}))
def test_rtl_equals_emulator(run, name, tuned):
    d, codes, res = run(name, tuned)
    assert res.words == _expected(d, codes)


@pytest.mark.parametrize("name", params(["lenet", "small_convnet", "mixed", "inception"], fast={"small_convnet"}))
def test_rtl_equals_emulator_with_random_handshake_gaps(run, name):
    d, codes, res = run(name, True, True)
    assert res.words == _expected(d, codes)


@pytest.mark.parametrize("name, tuned", params([("lenet", True), ("lenet", False), ("small_convnet", True),
                                                ("mixed", True), ("inception", True)], fast={"small_convnet-True"}))
def test_measured_period_and_latency_match_the_model(run, name, tuned):
    d, _, res = run(name, tuned)
    period = res.frame_cycles[-1]
    assert 0.95 * d.cycles <= period <= 1.1 * d.cycles, (period, d.cycles)
    assert 0.8 * d.latency_cycles <= res.latency <= 1.2 * d.latency_cycles, (res.latency, d.latency_cycles)


def test_every_intermediate_stream_is_in_the_vectors(run, tmp_path):
    """The per-layer expected codes exported for debugging are the emulator's, in stream order."""
    d, codes, _ = run("small_convnet", True)
    out = tmp_path / "x"
    write_design(out, d, codes)
    env = Emulator(d.lg).run_codes(codes, keep_all=True)
    for k, ly in enumerate(d.lg):
        vals = np.array((out / "vectors" / f"l{k}.codes.txt").read_text().split(), np.int64)
        np.testing.assert_array_equal(vals, env[ly.name].transpose(0, 2, 3, 1).reshape(-1))
    words = _expected(d, codes)
    last = d.lg.output
    frames = beats_to_frames(words, d.par[last.name][1], (last.shape.c, last.shape.h, last.shape.w), last.signed)
    np.testing.assert_array_equal(frames, env[last.name])


@pytest.mark.slow
@pytest.mark.skipif(available("verilator") is None or SIMULATOR == "verilator",
                    reason="verilator is not installed (or is already the default simulator)")
def test_verilator_agrees(run):
    d, codes, res = run("small_convnet", True, False, 2, "verilator")
    assert res.words == _expected(d, codes)


@pytest.mark.slow
@pytest.mark.skipif(available("verilator") is None, reason="verilator is not installed")
def test_lenet5_runs_at_100k_frames_per_second_in_simulation(run):
    """The tuned LeNet-5 (first conv: 28 output pixels at once) on a GX 1150: Verilator's frame
    period at 200 MHz, and the output equal to the emulator's."""
    d, codes, res = run("lenet28", True, False, 3, "verilator")
    assert res.words == _expected(d, codes)
    assert any(p[2] > 1 for p in d.par.values())
    assert 200e6 / res.frame_cycles[-1] >= 100_000 and res.frame_cycles[-1] <= 1.05 * d.cycles, res.frame_cycles
