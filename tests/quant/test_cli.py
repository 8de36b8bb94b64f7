"""The int8 flags on the command line: irc info prints per-layer scales and expected error,
compile and run quantize for the CPU, mistakes are one-line errors."""

from __future__ import annotations

import numpy as np
import pytest

from irc.zoo import lenet5
from tests.support.cli import assert_user_error


@pytest.fixture
def files(tmp_path):
    model = tmp_path / "lenet.onnx"
    model.write_bytes(lenet5(None).SerializeToString())
    calib = tmp_path / "calib.npz"
    np.savez(calib, input=np.random.default_rng(0).standard_normal((8, 1, 28, 28)).astype(np.float32))
    return model, calib


def test_info_shows_scales_and_expected_error(irc, files):
    model, calib = files
    status, out, err = irc("info", model, "--shape", "input=2x1x28x28", "--quantize", "int8", "--calib", calib,
                           "--calib-method", "entropy")
    assert status == 0, err
    assert "quantization int8: weights i8 per output channel, activations u8 per tensor (asym), ranges by entropy" in out
    report = out[out.index("quantization int8"):]
    rows = [line.split() for line in report.splitlines() if line.strip().startswith(("conv", "fc"))]
    assert [r[0] for r in rows] == ["conv1", "conv2", "fc1", "fc2", "fc3"]
    assert all(float(r[2]) > 0 and float(r[3]) > 0 and float(r[6]) > 30 for r in rows)  # scales, SQNR dB
    assert "expected error of output output" in out and "relative RMS" in out


def test_compile_and_run_quantized_for_cpu(irc, files, tmp_path):
    model, calib = files
    status, out, err = irc("compile", model, "--shape", "input=2x1x28x28", "-t", "cpu", "--quantize", "int8",
                           "--calib", calib, "--activation-scheme", "sym", "--emit", "ir")
    assert status == 0, err
    assert "qconv_gemm(" in out and "y_dtype=i8" in out and " = conv_gemm(" not in out
    res = tmp_path / "out.npz"
    status, out, err = irc("run", model, "--shape", "input=2x1x28x28", "-t", "cpu", "--quantize", "int8",
                           "--calib", calib, "--random-inputs", "-o", res)
    assert status == 0, err
    assert np.load(res)["output"].shape == (2, 10)


def test_quantization_mistakes_are_one_line_errors(irc, files, tmp_path):
    model, calib = files
    assert_user_error(irc("compile", model, "-t", "cpu", "--quantize", "int8"), "needs calibration data")
    assert_user_error(irc("compile", model, "-t", "cpu", "--calib-method", "entropy"), "need --quantize int8")
    assert_user_error(irc("run", model, "-t", "cpu", "--quantize", "int8", "--calib", tmp_path / "none.npz",
                          "--random-inputs"), "does not exist")
    bad = tmp_path / "bad.npz"
    np.savez(bad, input=np.zeros((8, 3, 28, 28), np.float32))
    assert_user_error(irc("info", model, "--quantize", "int8", "--calib", bad), "calibration array for input 'input'")
    assert_user_error(irc("info", model, "--calib", calib), "need --quantize int8")
