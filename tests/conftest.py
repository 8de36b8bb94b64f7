"""Shared fixtures: the shipped example model, ONNX files in a temporary folder, and an
onnxruntime runner (the independent oracle the zoo and CLI tests compare against)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np
import onnx
import pytest

ROOT = Path(__file__).resolve().parents[1]
LENET = ROOT / "examples" / "models" / "lenet5.onnx"


def ort_run(model: onnx.ModelProto | bytes | str | Path, feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
    """Outputs of ``model`` for ``feeds`` under onnxruntime's CPU provider, graph optimizations
    off so that it computes the graph as written."""
    import onnxruntime as ort

    if isinstance(model, onnx.ModelProto):
        model = model.SerializeToString()
    elif isinstance(model, Path):
        model = str(model)
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    opts.intra_op_num_threads = 1
    sess = ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])
    return sess.run(None, dict(feeds))


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
