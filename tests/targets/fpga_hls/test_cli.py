"""The fpga flags of `irc compile` and `irc run`."""

from __future__ import annotations

import numpy as np
import pytest

import irc.zoo
from irc.cli.commands import main

from .support import needs_gxx


@pytest.fixture
def mlp_file(model_file):
    return model_file(irc.zoo.build("mlp", batch=2, sizes=(16, 24, 10)))


@needs_gxx
def test_compile_writes_the_project_and_prints_the_report(mlp_file, tmp_path, capsys):
    out = tmp_path / "build"
    assert main(["compile", str(mlp_file), "--target", "fpga", "--flow", "hls", "--board", "u280",
                 "--parallelism", "auto", "--csim", "-o", str(out)]) == 0
    captured = capsys.readouterr()
    assert "Alveo U280" in captured.out and "C simulation: 3 of 3 kernels pass" in captured.out
    assert f"wrote {out}" in captured.err
    assert (out / "Makefile").is_file() and "C simulation: 3 of 3" in (out / "csim.log").read_text()
    assert "HBM[" in (out / "connectivity.cfg").read_text()


@needs_gxx
def test_run_emulates(mlp_file, tmp_path, capsys):
    res = tmp_path / "out.npz"
    assert main(["run", str(mlp_file), "--target", "fpga", "--emulate", "--random-inputs", "-o", str(res)]) == 0
    assert main(["run", str(mlp_file), "--target", "interp", "--random-inputs", "-o", str(tmp_path / "ref.npz")]) == 0
    got, want = np.load(res), np.load(tmp_path / "ref.npz")
    for k in want.files:
        np.testing.assert_allclose(got[k], want[k], rtol=1e-4, atol=1e-6)


def test_flag_errors(mlp_file, capsys):
    assert main(["compile", str(mlp_file), "--target", "cpu", "--board", "u200"]) == 2
    assert "--board: an option of the fpga target" in capsys.readouterr().err
    assert main(["compile", str(mlp_file), "--target", "fpga", "--parallelism", "lots"]) == 2
    assert "parallelism must be 'auto' or a positive integer" in capsys.readouterr().err
    assert main(["compile", str(mlp_file), "--target", "fpga", "--board", "vck5000", "--parallelism", "64",
                 "--fraction", "0.01"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "does not fit 1% of the VCK5000" in err and "kernel 'k" in err
