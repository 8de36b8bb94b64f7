"""The repository's paths the tests read, and onnxruntime as the independent oracle the zoo, CLI,
training and quantization tests compare against."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import onnx

ROOT = Path(__file__).resolve().parents[2]
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
