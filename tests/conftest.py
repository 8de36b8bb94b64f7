"""Shared fixtures: the shipped example model, ONNX files in a temporary folder, an onnxruntime
runner (the independent oracle the zoo and CLI tests compare against, from tests/support/oracle.py)
and the command line run in process."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import pytest

from tests.support.oracle import LENET, ort_run


def pytest_configure(config) -> None:
    """Compiled code is cached in a folder of this test run, never in the user's cache."""
    import os
    import tempfile

    os.environ["IRC_CACHE_DIR"] = config._irc_cache_dir = tempfile.mkdtemp(prefix="irc-test-cache-")


def pytest_unconfigure(config) -> None:
    import shutil

    shutil.rmtree(getattr(config, "_irc_cache_dir", ""), ignore_errors=True)


@pytest.fixture(name="ort_run")
def _ort_run() -> Callable[..., list[np.ndarray]]:
    return ort_run


@pytest.fixture
def lenet_path() -> Path:
    """The LeNet-5 that ships in examples/models (batch dimension "N")."""
    assert LENET.is_file(), f"{LENET} is missing; python examples/build_models.py lenet5 writes it"
    return LENET


@pytest.fixture
def model_file(tmp_path) -> Callable[..., Path]:
    """``model_file(model_or_bytes, name="model.onnx")`` writes it under tmp_path, returns the path."""

    def write(model: onnx.ModelProto | bytes, name: str = "model.onnx") -> Path:
        path = tmp_path / name
        path.write_bytes(model if isinstance(model, bytes) else model.SerializeToString())
        return path

    return write


@pytest.fixture
def irc_cli(capsys):
    """``irc_cli(*args) -> (status, stdout, stderr)``, running the command line in process."""
    from irc.cli.commands import main

    def call(*args):
        status = main([str(a) for a in args])
        out = capsys.readouterr()
        return status, out.out, out.err

    return call


@pytest.fixture
def irc(irc_cli):
    """irc_cli under the command's own name (for test modules that do not import the package)."""
    return irc_cli
