"""Device table, resource model and tuner: the design never exceeds its budget, more resources
never give a slower design, and the slowest layer of a tuned design cannot be sped up within
what is left."""

from __future__ import annotations

import numpy as np
import pytest

from irc.errors import InputError
from irc.targets.dneuro.devices import DEVICES, M20K_BITS, device_names, get_device
from irc.targets.dneuro.mapping import map_graph
from irc.targets.dneuro.resources import Memory, in_lanes, layer_cost, options
from irc.targets.dneuro.tune import Tuner, budgets, evaluate, minimum, raises, tune

from .support import float_graph

#: The issue's table: (M20K MB, DSP blocks, multipliers) per size.
TABLE = {160: (1.12, 156, 312), 220: (1.37, 191, 382), 270: (1.87, 830, 1660), 320: (2.12, 985, 1970),
         480: (3.5, 1368, 2736), 570: (4.37, 1523, 3046), 660: (5.25, 1688, 3376), 900: (5.87, 1518, 3036),
         1150: (6.62, 1518, 3036)}


def test_device_table_has_the_given_figures():
    for size, (mb, dsp, macs) in TABLE.items():
        for kind in ("gx", "sx") if size < 900 else ("gx",):
            d = get_device(f"arria10-{kind}{size}")
            assert (d.m20k_mb, d.dsp, d.macs_per_cycle) == (mb, dsp, macs)
            assert d.macs_per_cycle == 2 * d.dsp
    assert len(device_names(distinct=True)) == 9 and len(DEVICES) == 16
    assert get_device("Arria10 GX1150").m20k_blocks == 2711  # 6.62 MB in 20 Kbit blocks
    with pytest.raises(InputError, match="unknown device 'stratix10'"):
        get_device("stratix10")


def test_memory_blocks_round_to_the_best_aspect_ratio():
    assert Memory("w", 512, 40).m20k == 1 and Memory("w", 513, 40).m20k == 2
    assert Memory("w", 2048, 10).m20k == 1 and Memory("w", 16384, 1).m20k == 1
    assert Memory("w", 16, 40).m20k == 0  # 640 bits: an MLAB
    assert Memory("w", 4096, 72).m20k == 15  # 15 blocks of 4Kx5 (512x40 would take 16)
    assert M20K_BITS == 20480


def test_conv_cost_follows_the_block():
    lg = map_graph(float_graph("lenet5"))
    conv2 = lg.layers[3]  # 6x14x14 -> 16x10x10, 5x5
    c = layer_cost(conv2, lg, 3, 4)
    assert c.macs == 10 * 10 * 16 * 25 * 6
    assert c.cycles == c.macs // 12 and c.multipliers == 12 and c.dsp == 6 + 2 * 4
    assert [m.what for m in c.memories] == ["weights", "params", "line buffer"]
    assert c.memories[0].depth * c.memories[0].width == 16 * 6 * 25 * 8
    assert options(conv2, lg) == ([1, 2, 3, 6], [1, 2, 4, 8, 16], [1, 2, 5, 10])
    assert raises(lg, conv2.name, 3, 4) == [(6, 4, 1), (3, 8, 1), (6, 8, 1)]
    # Output pixels once PO covers every channel: the weights are shared, the multipliers,
    # requantize lanes and line-buffer copies (one read port each) scale with PP.
    assert raises(lg, conv2.name, 3, 16, 2) == [(6, 16, 2), (3, 16, 5)]
    c5 = layer_cost(conv2, lg, 3, 16, 5)
    assert c5.cycles == c5.macs // (3 * 16 * 5) and c5.multipliers == 240 and c5.dsp == 120 + 2 * 80
    assert [m.what for m in c5.memories].count("line buffer") == 5
    assert c5.memories[0].bits == c.memories[0].bits
    # conv1 reads one channel: PP whole pixels per input beat, so its input stream keeps up.
    conv1 = lg.layers[1]
    assert in_lanes(conv1, lg, 1, 6, 4) == 4 and layer_cost(conv1, lg, 1, 6, 4).cycles == 28 * 7 * 25


def _graphs():
    return {n: map_graph(float_graph(n)) for n in ("lenet5", "small_resnet", "mobilenet_v2", "mixed")}


@pytest.mark.parametrize("device", ["arria10-gx160", "arria10-gx270", "arria10-gx1150"])
def test_tuned_design_stays_within_the_budget(device):
    dev = get_device(device)
    for name, lg in _graphs().items():
        for frac in (0.05, 0.3, 1.0):
            t = tune(lg, dev, max_dsp=frac, max_m20k=frac)
            dsp, m20k = budgets(dev, frac, frac)
            if t.fits:
                assert t.design.dsp <= dsp and t.design.m20k <= m20k, (name, frac)
                assert t.design.dsp <= dev.dsp and t.design.m20k <= dev.m20k_blocks
            else:
                d0 = evaluate(lg, dev, minimum(lg))
                assert d0.dsp > dsp or d0.m20k > m20k


def test_more_resources_never_give_a_slower_design():
    dev = get_device("arria10-gx1150")
    for name, lg in _graphs().items():
        tuner = Tuner(lg, dev)  # one path for every budget (test_monotone checks tune() per budget)
        for what in (0, 1):
            fps = []
            for frac in np.geomspace(0.02, 1.0, 12):
                t = tuner.tune(*((float(frac), 1.0) if what == 0 else (1.0, float(frac))))
                fps.append(t.design.fps if t.fits else 0.0)
            assert all(b >= a for a, b in zip(fps, fps[1:])), (name, what, fps)


def test_tuning_stops_where_the_next_step_of_the_path_exceeds_the_budget():
    """The budget-independent path: each step raises the slowest layer by its cheapest faster
    one-factor raise; a tuning is the path's prefix within the budget."""
    dev = get_device("arria10-gx270")
    for lg in _graphs().values():
        tuner = Tuner(lg, dev)
        for frac in (0.1, 0.5, 1.0):
            t = tuner.tune(frac)
            if not t.fits:
                continue
            d, k = t.design, len(t.steps)
            assert tuner.designs[k] is d
            for a, b, raised in zip(tuner.designs, tuner.designs[1:k + 1], tuner.steps):
                slow = a.slowest
                assert raised == slow.name and b.par[raised] in raises(lg, raised, *a.par[raised])
                assert b.costs[raised].cycles < slow.cycles and b.cycles <= a.cycles
                assert [n for n in a.par if a.par[n] != b.par[n]] == [raised]
            if "budget" in t.stop:
                assert not tuner.designs[k + 1].within(t.dsp_budget, t.m20k_budget)
            else:
                assert tuner.end == t.stop


def test_target_fps_stops_early_and_throughput_is_the_slowest_layer():
    lg = map_graph(float_graph("small_resnet"))
    dev = get_device("arria10-gx1150")
    full = tune(lg, dev)
    part = tune(lg, dev, target_fps=full.design.fps / 4)
    assert full.design.fps / 4 <= part.design.fps < full.design.fps and part.design.dsp < full.design.dsp
    assert "target" in part.stop
    d = part.design
    assert d.cycles == max(c.cycles for c in d.costs.values())
    assert d.fps == pytest.approx(200e6 / d.cycles) and d.latency_cycles > d.cycles
    for bad in ({"max_dsp": 0}, {"max_m20k": 1.5}, {"clock_mhz": -1}, {"target_fps": 0}):
        with pytest.raises(InputError):
            tune(lg, dev, **bad)
    with pytest.raises(InputError, match="is not one of"):
        evaluate(lg, dev, {**minimum(lg), lg.layers[1].name: (5, 5, 1)})
    with pytest.raises(InputError, match="PP > 1 once PO"):
        evaluate(lg, dev, {**minimum(lg), lg.layers[1].name: (1, 1, 2)})


def test_joins_get_fifos_where_paths_buffer_unequally():
    lg = map_graph(float_graph("small_resnet"))
    d = evaluate(lg, get_device("arria10-gx1150"), minimum(lg))
    joins = {name for name, _ in d.fifos}
    assert joins == {ly.name for ly in lg if ly.kind == "eltwise"}
    assert all(f.depth > 0 for f in d.fifos.values())
