"""The block library and generated tops lint clean with ``verilator --lint-only -Wall`` at the
parallelism the tuner picks (several output pixels, whole pixels per beat, adder trees of
several depths) and at minimum parallelism."""

from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest

from irc.targets.dneuro.devices import get_device
from irc.targets.dneuro.export import write_design
from irc.targets.dneuro.mapping import map_graph
from irc.targets.dneuro.render import top_name
from irc.targets.dneuro.tune import evaluate, minimum, tune
from tests.support.marks import params

from .qgraphs import lenet, small_convnet
from .support import quantized_graph

pytestmark = pytest.mark.skipif(shutil.which("verilator") is None, reason="verilator is not installed")

GRAPHS = {"small_convnet": lambda: small_convnet(1), "mixed": lambda: quantized_graph("mixed"),
          "inception": lambda: quantized_graph("inception"), "lenet": lambda: lenet(1, image=16)}


@pytest.mark.parametrize("name, tuned", params([("small_convnet", True), ("small_convnet", False), ("mixed", True),
                                                ("inception", True), ("lenet", True)],
                                               fast={"small_convnet-True"}))
def test_verilator_lint_wall_is_clean(tmp_path, name, tuned):
    lg = map_graph(GRAPHS[name]())
    dev = get_device("arria10-gx1150")
    d = tune(lg, dev).design if tuned else evaluate(lg, dev, minimum(lg))
    codes = np.zeros((1, lg.input.shape.c, lg.input.shape.h, lg.input.shape.w), np.int64)
    write_design(tmp_path / "x", d, codes)
    rtl = sorted(p.name for p in (tmp_path / "x" / "rtl").glob("*.v"))
    r = subprocess.run(["verilator", "--lint-only", "-Wall", "--top-module", top_name(lg), *rtl],
                       cwd=tmp_path / "x" / "rtl", capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and "%Warning" not in r.stderr, r.stderr[-3000:]
    if tuned and name == "small_convnet":
        assert any(p[2] > 1 for p in d.par.values())  # output-pixel parallelism is linted too
