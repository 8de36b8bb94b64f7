"""Yosys synthesis of single blocks (synth_intel_alm, the Arria 10 fabric) beside the resource
model: DSP and M20K blocks within 15% of what resources.py says (or one block, for blocks of a
few), and the worst path between registers a few LUT levels deep (the adder trees and the
multi-stage requantize keep one adder or one multiplier per stage)."""

from __future__ import annotations

import functools

import pytest

from irc.targets.dneuro.devices import get_device
from irc.targets.dneuro.mapping import map_graph
from irc.targets.dneuro.synth import available, synthesize_block
from irc.targets.dneuro.tune import evaluate, minimum, tune

from .qgraphs import small_convnet

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not available(), reason="yosys is not installed")]

#: LUT levels a 200 MHz Arria 10 path can hold with margin (about 0.5 ns per LUT and route).
MAX_LUT_LEVELS = 12


@functools.cache
def _design(tuned: bool):
    lg = map_graph(small_convnet(1))
    dev = get_device("arria10-gx1150")
    return tune(lg, dev).design if tuned else evaluate(lg, dev, minimum(lg))


def _close(got: int, model: int) -> bool:
    return abs(got - model) <= max(1, 0.15 * model)


#: A strided conv, a max pool and an element-wise sum at minimum parallelism (seconds each); the
#: tuned conv (PI 3, PO 8, two pixels: 56 DSP blocks) takes a quarter of an hour with Yosys.
@pytest.mark.parametrize("tuned, layer", [(False, "7"), (False, "24"), (False, "18")])
def test_block_synthesis_matches_the_model(tmp_path, tuned, layer):
    d = _design(tuned)
    r = synthesize_block(d, layer, tmp_path)
    assert _close(r.m20k, r.model_m20k), r
    if r.module == "dn_conv":
        assert _close(r.dsp, r.model_dsp), r
    assert 0 < r.logic_depth <= MAX_LUT_LEVELS, r
    assert r.alms > 0
