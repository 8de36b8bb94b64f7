"""`irc compile --target fpga --flow dneuro`, `irc dneuro devices|fit|curve`, and their errors."""

from __future__ import annotations

import csv
import json
import re

import click
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import irc.zoo
from irc.cli.commands import cli, main

from .support import SIMULATOR


@pytest.fixture
def lenet_file(model_file):
    return model_file(irc.zoo.build("lenet5", batch=1), "lenet5.onnx")


@pytest.fixture
def calib_file(tmp_path):
    p = tmp_path / "calib.npz"
    np.savez(p, input=np.random.default_rng(0).standard_normal((4, 1, 28, 28)).astype(np.float32))
    return p


def test_compile_writes_the_accelerator(lenet_file, calib_file, tmp_path, capsys):
    out = tmp_path / "build"
    argv = ["compile", str(lenet_file), "--target", "fpga", "--flow", "dneuro", "--device", "arria10-gx1150",
            "--calib", str(calib_file), "--clock-mhz", "250", "--max-dsp", "0.5", "--frames", "2", "-o", str(out)]
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert "bit for bit" in captured.out and "frames/s" in captured.out
    assert len(re.findall(r"^\*conv\d ", captured.out, re.M)) == 1  # the slowest block is marked
    assert f"wrote {out}" in captured.err
    layers = json.loads((out / "layers.json").read_text())
    assert [ly["kind"] for ly in layers["layers"]] == ["input", "conv", "maxpool", "conv", "maxpool", "conv", "conv",
                                                         "conv"]
    assert "parallelism" in layers["layers"][1] and layers["host"]["input_scale"] > 0
    top = (out / "rtl" / "lenet5_top.v").read_text()
    assert top.count("dn_conv #(") == 5 and top.count("dn_maxpool #(") == 2 and "module lenet5_top" in top
    assert (out / "mem" / "l1.weights.mif").read_text().startswith("WIDTH=")
    par = layers["layers"][0]["parallelism"]
    lanes = par["po"] * par["pp"]
    assert len((out / "vectors" / "input.hex").read_text().split()) == 2 * 28 * 28 // lanes
    assert "250 MHz" in (out / "report.txt").read_text()


@pytest.mark.skipif(SIMULATOR is None, reason="no RTL simulator (apt-get install verilator iverilog)")
@pytest.mark.slow
def test_compile_can_simulate_before_writing(tmp_path, model_file):
    small = model_file(irc.zoo.build("lenet5", batch=1), "l.onnx")
    np.savez(tmp_path / "c.npz", input=np.random.default_rng(1).standard_normal((2, 1, 28, 28)).astype(np.float32))
    out = tmp_path / "sim"
    assert main(["compile", str(small), "--target", "fpga", "--flow", "dneuro", "--calib", str(tmp_path / "c.npz"),
                 "--simulate", SIMULATOR, "-o", str(out)]) == 0
    log = (out / "simulation.txt").read_text()
    assert f"simulator      {SIMULATOR}" in log and "equal to the emulator's" in log


def test_unsupported_layers_are_one_line_naming_each(model_file, calib_file, capsys):
    x = helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 1, 28, 28])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2, 28, 28])
    w = numpy_helper.from_array(np.ones((2, 1, 1, 1), np.float32), "w")
    nodes = [helper.make_node("Conv", ["input", "w"], ["a"], name="c1"),
             helper.make_node("LRN", ["a"], ["b"], name="lrn1", size=3),
             helper.make_node("Tanh", ["b"], ["y"], name="tanh1")]
    g = helper.make_graph(nodes, "bad", [x], [y], [w])
    path = model_file(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]))
    assert main(["compile", str(path), "--target", "fpga", "--flow", "dneuro", "--calib", str(calib_file)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "'lrn1' (LRN) -> BatchNormalization" in err and "'tanh1' (Tanh) -> a clipped ReLU" in err
    assert main(["dneuro", "fit", str(path)]) == 2
    assert "2 layer(s) have no DNeuro block" in capsys.readouterr().err


def test_flag_errors(lenet_file, calib_file, capsys):
    assert main(["compile", str(lenet_file), "--target", "cpu", "--max-dsp", "0.5"]) == 2
    assert "--max-dsp: an option of the fpga target (--flow dneuro)" in capsys.readouterr().err
    assert main(["compile", str(lenet_file), "--target", "fpga", "--flow", "dneuro", "--calib", str(calib_file),
                 "--device", "cyclone5"]) == 2
    assert "unknown device 'cyclone5'" in capsys.readouterr().err
    assert main(["compile", str(lenet_file), "--target", "fpga", "--flow", "dneuro"]) == 2
    assert "the fpga dneuro flow builds an int8 accelerator and needs calibration inputs" in capsys.readouterr().err
    assert main(["compile", str(lenet_file), "--target", "fpga", "--flow", "dneuro", "--calib", str(calib_file),
                 "--board", "u250"]) == 2
    assert "--board is for the fpga flow hls, and this command builds the dneuro flow" in capsys.readouterr().err


def test_fit_table(tmp_path, model_file, capsys):
    lenet = model_file(irc.zoo.build("lenet5", batch=1), "lenet5.onnx")
    mnv1 = model_file(irc.zoo.build("mobilenet_v1", batch=None, width=0.25), "mobilenet_v1_0.25.onnx")
    assert main(["dneuro", "fit", str(lenet), str(mnv1), "--csv", str(tmp_path / "fit.csv")]) == 0
    out = capsys.readouterr().out
    head, *rows = out.splitlines()
    assert head.split()[1:] == ["gx160", "gx220", "gx270", "gx320", "gx480", "gx570", "gx660", "gx900", "gx1150"]
    assert rows[0].split() == ["lenet5"] + ["fits"] * 9
    assert "mobilenet_v1_0.25 on arria10-gx160: fits with weights from external memory" in out
    assert "    streamed: " in out  # the layers whose weights stream are named
    assert "mobilenet_v1_0.25 on arria10-gx1150: fits at minimum parallelism" in out
    cells = list(csv.DictReader(open(tmp_path / "fit.csv")))
    assert len(cells) == 18 and {c["status"] for c in cells} >= {"fits at minimum parallelism"}


def test_curve_writes_csv_and_says_about_the_png(tmp_path, model_file, capsys):
    lenet = model_file(irc.zoo.build("lenet5", batch=1), "lenet5.onnx")
    prefix = tmp_path / "curve"
    assert main(["dneuro", "curve", str(lenet), "--device", "arria10-gx270", "--points", "6", "-o", str(prefix)]) == 0
    rows = list(csv.DictReader(open(f"{prefix}.csv")))
    fps = [float(r["fps"]) for r in rows]
    assert len(rows) == 6 and fps == sorted(fps) and fps[-1] > fps[0]
    err = capsys.readouterr().err
    try:
        import matplotlib  # noqa: F401

        assert (tmp_path / "curve.png").read_bytes()[:4] == b"\x89PNG"
    except ImportError:
        assert "matplotlib is not installed" in err and not (tmp_path / "curve.png").exists()


def test_devices_and_no_duplicate_flags(capsys):
    assert main(["dneuro", "devices"]) == 0
    out = capsys.readouterr().out
    assert "arria10-gx1150" in out and "1518" in out and "6.62" in out
    for name in ("compile", "run"):
        cmd = cli.commands[name]
        flags = [o for p in cmd.params if isinstance(p, click.Option) for o in p.opts]
        assert len(flags) == len(set(flags)), f"irc {name} declares a flag twice"
    assert onnx  # used to build models above
