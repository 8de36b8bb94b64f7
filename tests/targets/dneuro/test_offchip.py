"""Weights from external memory: the bandwidth figure, a streamed block's cost, the frame period
bound by the memory, which layers the tuner streams, the big networks' fit cells against the
original table (issue 21), the generated table document, and the RTL (dn_wstream with the
memory model, under random waitrequest and latency) equal to the emulator bit for bit."""

from __future__ import annotations

import dataclasses
import importlib.util
import math
import shutil
import subprocess

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from irc.errors import InputError
from irc.targets.dneuro.devices import DDR4_2400_GBPS, DDR_EFFICIENCY, device_names, get_device
from irc.targets.dneuro.emulator import Emulator
from irc.targets.dneuro.export import write_design
from irc.targets.dneuro.fit import DDR, FITS, fit_cell
from irc.targets.dneuro.fit_doc import ORIGINAL_FROM, original_fits
from irc.targets.dneuro.mapping import map_graph
from irc.targets.dneuro.offchip import ON_CHIP_SHARE, stream_order
from irc.targets.dneuro.render import top_name
from irc.targets.dneuro.resources import WSTREAM_FIFO, layer_cost
from irc.targets.dneuro.sim import simulate
from irc.targets.dneuro.tune import Tuner, evaluate, minimum, tune
from irc.targets.dneuro.vectors import output_words
from tests.support.marks import params

from .qgraphs import lenet
from .support import SIMULATOR, needs_sim
from .test_monotone import EXAMPLES, layer_graph
from .test_quartus import tiny

DEVICES = [get_device(d) for d in device_names(distinct=True)]


def test_bandwidth_is_one_ddr4_2400_interface_at_80_percent():
    dev = get_device("arria10-gx1150")
    assert DDR4_2400_GBPS == 2400e6 * 8 / 1e9 and DDR_EFFICIENCY == 0.8
    assert dev.ddr_bytes_per_cycle(200.0) == pytest.approx(2400e6 * 8 * 0.8 / 200e6)  # 76.8 bytes per cycle
    two = dataclasses.replace(dev, ddr_interfaces=2)
    assert two.ddr_bytes_per_cycle(200.0) == pytest.approx(2 * dev.ddr_bytes_per_cycle(200.0))


@pytest.mark.parametrize("pp", [1, 2, 4])
def test_a_streamed_conv_has_a_fifo_instead_of_its_rom_and_rereads_it_per_pixel_group(pp):
    lg = map_graph(lenet(1, image=16))
    conv = next(ly for ly in lg if ly.kind == "conv")
    on = layer_cost(conv, lg, 1, 6, pp)
    off = layer_cost(conv, lg, 1, 6, pp, ddr_bpc=0.5)
    rom = on.memories[0]
    assert rom.what == "weights" and off.memories[0].what == "weight fifo"
    assert off.memories[0].depth == WSTREAM_FIFO and off.memories[0].width == rom.width
    assert off.memories[1:] == on.memories[1:] and off.dsp == on.dsp
    assert off.ddr_bytes == rom.depth * rom.width // 8 * conv.shape.h * conv.shape.w // pp
    assert off.cycles == max(on.cycles, math.ceil(off.ddr_bytes / 0.5)) > on.cycles
    assert layer_cost(conv, lg, 1, 6, pp, ddr_bpc=1e9).cycles == on.cycles


def test_the_frame_period_is_bound_by_all_streamed_bytes_together():
    lg = map_graph(lenet(1, image=16))
    slow = dataclasses.replace(get_device("arria10-gx1150"), ddr_gbps=0.05)
    convs = frozenset(ly.name for ly in lg if ly.kind == "conv")
    d = evaluate(lg, slow, minimum(lg), streamed=convs)
    bpc = slow.ddr_bytes_per_cycle(200.0)
    total = sum(d.costs[n].ddr_bytes for n in convs)
    assert d.ddr_bytes == total and d.cycles == math.ceil(total / bpc) > max(c.cycles for c in d.costs.values())
    on = evaluate(lg, slow, minimum(lg))
    assert on.ddr_bytes == 0 and on.cycles == on.slowest.cycles and d.m20k < on.m20k


def test_once_the_memory_sets_the_period_the_tuner_only_cuts_streamed_bytes():
    lg = map_graph(lenet(1, image=16))
    slow = dataclasses.replace(get_device("arria10-gx1150"), ddr_gbps=0.05)
    convs = frozenset(ly.name for ly in lg if ly.kind == "conv")
    t = tune(lg, slow, streamed=convs)
    d = t.design
    assert "the external memory sets the frame rate" in t.stop
    assert d.cycles == d.ddr_cycles >= d.slowest.cycles and d.fps == pytest.approx(200e6 / d.ddr_cycles)
    d0 = evaluate(lg, slow, minimum(lg), streamed=convs)
    assert d.ddr_bytes < d0.ddr_bytes  # output pixels computed at once share each weight read
    assert t.steps and {n for n, _, _ in t.steps} <= convs
    assert [s[2] for s in t.steps] == sorted(s[2] for s in t.steps)  # frames/s never drop
    free = tune(lg, get_device("arria10-gx1150"), streamed=convs).design
    assert free.dsp > d.dsp and free.fps > d.fps


def test_only_conv_layers_can_stream():
    lg = map_graph(lenet(1, image=16))
    with pytest.raises(InputError, match="only conv layers can stream their weights; 'input' is not one"):
        evaluate(lg, get_device("arria10-gx1150"), minimum(lg), streamed=frozenset(["input"]))


def test_the_tuner_streams_the_fewest_pixel_layers_first_and_only_what_it_must():
    lg = layer_graph("mobilenet_v1_0.25")
    d0 = evaluate(lg, get_device("arria10-gx160"), minimum(lg))
    order = stream_order(d0)
    assert lg[order[0]].shape.h * lg[order[0]].shape.w == 1  # the classifier first
    small = Tuner(lg, get_device("arria10-gx160"))
    assert small.designs[0].streamed == frozenset(order[:len(small.designs[0].streamed)]) != frozenset()
    assert small.designs[0].m20k <= ON_CHIP_SHARE * get_device("arria10-gx160").m20k_blocks
    assert Tuner(lg, get_device("arria10-gx270")).designs[0].streamed == frozenset()


@pytest.mark.parametrize("name", params(list(ORIGINAL_FROM), fast={"resnet18", "googlenet"}))
def test_the_big_networks_fit_wherever_the_original_fits_them(name):
    lg = layer_graph(name)
    orig = original_fits(name, DEVICES)
    for dev in DEVICES:
        if orig[dev.name.removeprefix("arria10-")]:
            c = fit_cell(name, lg, dev)
            assert c.fitting and c.status in (FITS, DDR), (name, dev.name, c.status, c.reason)
            if c.status == DDR:
                assert c.streamed and c.fps > 0


@pytest.mark.parametrize("device", ["arria10-gx480", "arria10-gx1150"])
@settings(max_examples=25, deadline=None, derandomize=True)
@given(a=st.tuples(st.floats(0.01, 1.0), st.floats(0.01, 1.0)), b=st.tuples(st.floats(0.01, 1.0), st.floats(0.01, 1.0)))
def test_streaming_keeps_the_tuner_monotone(device, a, b):
    tuner = _tuner("resnet18", device)
    assert tuner.designs[0].streamed  # ResNet-18 streams on both
    lo, hi = (min(a[0], b[0]), min(a[1], b[1])), (max(a[0], b[0]), max(a[1], b[1]))
    fps = [t.design.fps if t.fits else 0.0 for t in (tuner.tune(*lo), tuner.tune(*hi))]
    assert fps[1] >= fps[0]


_TUNERS: dict = {}


def _tuner(name, device):
    key = (name, device)
    if key not in _TUNERS:
        _TUNERS[key] = Tuner(layer_graph(name), get_device(device))
    return _TUNERS[key]


@pytest.mark.slow
def test_the_fit_document_is_up_to_date():
    spec = importlib.util.spec_from_file_location("dneuro_fit_doc", EXAMPLES / "dneuro_fit_doc.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    graphs = {name: layer_graph(name) for name in _standard()}
    assert mod.DOC.read_text() == mod.document(graphs), "run python examples/dneuro_fit_doc.py"


def _standard():
    from .test_monotone import STANDARD

    return STANDARD


def _streamed_lenet(stream: list[int]):
    lg = map_graph(lenet(1, image=16))
    convs = [ly.name for ly in lg if ly.kind == "conv"]
    d = tune(lg, get_device("arria10-gx1150"), streamed=frozenset(convs[k] for k in stream)).design
    return lg, d


@pytest.mark.slow
@needs_sim
def test_rtl_with_streamed_weights_equals_the_emulator(tmp_path):
    """LeNet-5 (16x16) tuned for a GX 1150 with its first conv (16 output pixels at once, its
    weights re-read per pixel group) and its classifier streamed: with random waitrequest, read
    latency and handshake gaps, and without them, the output beats equal the emulator's; without
    them the frame period is the model's (within 10%: the model's bound, the streamed bytes of a
    frame over 76.8 bytes per cycle, is far below these layers' compute cycles, and the memory
    model gives the one weight word per compute cycle they need, less one cycle per burst)."""
    lg, d = _streamed_lenet([0, -1])
    assert len(d.streamed) == 2 and d.par[next(iter(sorted(d.streamed, key=lambda n: lg[n].shape.w)))][2] >= 1
    x = np.random.default_rng(7).standard_normal((2, 1, 16, 16)).astype(np.float32) * 2
    codes = Emulator(lg).quantize_input(x)
    write_design(tmp_path / "x", d, codes)
    assert (tmp_path / "x" / "mem" / "ddr.mem").exists() and (tmp_path / "x" / "tb" / "dn_ddr_model.v").exists()
    want = [int(w, 16) for w in output_words(d, Emulator(lg).run_codes(codes)[lg.output.name])]
    assert simulate(tmp_path / "x", SIMULATOR, stall=True).words == want
    res = simulate(tmp_path / "x", SIMULATOR)
    assert res.words == want
    assert d.ddr_cycles < d.cycles <= res.frame_cycles[-1] <= 1.1 * d.cycles, (res.frame_cycles, d.cycles)


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("verilator") is None, reason="verilator is not installed")
def test_streamed_top_and_wrapper_lint_clean(tmp_path):
    lg, d = _streamed_lenet([0, -1])
    codes = np.zeros((1, 1, 16, 16), np.int64)
    write_design(tmp_path / "x", d, codes)
    rtl = sorted(p.name for p in (tmp_path / "x" / "rtl").glob("*.v"))
    for top in (top_name(lg), f"{top_name(lg)}_avalon"):
        r = subprocess.run(["verilator", "--lint-only", "-Wall", "--top-module", top, *rtl],
                           cwd=tmp_path / "x" / "rtl", capture_output=True, text=True, timeout=300)
        assert r.returncode == 0 and "%Warning" not in r.stderr, r.stderr[-3000:]


@pytest.mark.skipif(shutil.which("iverilog") is None, reason="Icarus Verilog (iverilog, vvp) is not installed")
def test_the_avalon_wrapper_passes_the_masters_through_and_a_soft_reset_drains_pending_reads(tmp_path):
    """The wrapper's testbench (random gaps and memory stalls) soft-resets the accelerator in the
    middle of a frame, with weight bursts in flight: the next frame still comes out whole and
    right (dn_wstream drops the words of reads asked for before the reset)."""
    from .test_quartus import _simulate, export

    lg = map_graph(tiny())
    convs = [ly.name for ly in lg if ly.kind == "conv"]
    d, out = export(tmp_path, "tiny", streamed=frozenset([convs[0], convs[-1]]))
    assert len(d.streamed) == 2
    words, csr, framing = _simulate(out, True)
    assert words == (out / "vectors" / "output.hex").read_text().split() and framing == []
    ob = len(words) // 3
    assert (out / "sim_avalon_restart.hex").read_text().lower().split() == words[:ob]
