"""The PyTorch benchmark peer computes what onnxruntime computes, and calls PyTorch's own GELU
and SiLU where the export spelled them out (what an eager module of the network does)."""

import sys
from pathlib import Path

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from tests.support.oracle import ort_run

torch = pytest.importorskip("torch", reason="PyTorch is not installed (the peer is optional)")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from torch_peer import _call_activations, torch_runner  # noqa: E402

F32, I64 = TensorProto.FLOAT, TensorProto.INT64


def _model():
    """Embedding Gather -> LayerNorm -> Transpose -> GELU (erf form) -> SiLU -> Expand/Concat of
    a Shape -> Reshape with a 0 (copy this dimension)."""
    rng = np.random.default_rng(0)
    inits = {"table": rng.standard_normal((20, 8)).astype(np.float32), "scale": rng.random(8).astype(np.float32),
             "bias": rng.standard_normal(8).astype(np.float32), "sqrt2": np.float32(2 ** 0.5),
             "one": np.float32(1.0), "half": np.float32(0.5), "i0": np.array([0], np.int64),
             "tail": np.array([1, 1, 1], np.int64), "to": np.array([0, -1], np.int64)}
    nodes = [
        helper.make_node("Gather", ["table", "ids"], ["emb"]),
        helper.make_node("LayerNormalization", ["emb", "scale", "bias"], ["ln"], axis=-1, epsilon=1e-5),
        helper.make_node("Transpose", ["ln"], ["t"], perm=[0, 2, 1]),
        helper.make_node("Div", ["t", "sqrt2"], ["d"]), helper.make_node("Erf", ["d"], ["e"]),
        helper.make_node("Add", ["e", "one"], ["a"]), helper.make_node("Mul", ["t", "a"], ["m"]),
        helper.make_node("Mul", ["m", "half"], ["gelu"]),
        helper.make_node("Sigmoid", ["gelu"], ["s"]), helper.make_node("Mul", ["s", "gelu"], ["silu"]),
        helper.make_node("Shape", ["ids"], ["shp"]), helper.make_node("Gather", ["shp", "i0"], ["b"]),
        helper.make_node("Concat", ["b", "tail"], ["full"], axis=0),
        helper.make_node("Unsqueeze", ["silu", "i0"], ["u"]),
        helper.make_node("Expand", ["u", "full"], ["x"]),
        helper.make_node("Reshape", ["x", "to"], ["y"]),
    ]
    g = helper.make_graph(nodes, "peer", [helper.make_tensor_value_info("ids", I64, [2, 3])],
                          [helper.make_tensor_value_info("y", F32, None)],
                          [numpy_helper.from_array(np.asarray(v), k) for k, v in inits.items()])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])


def test_peer_equals_onnxruntime_and_calls_gelu_and_silu():
    model = _model()
    consts = {t.name: torch.from_numpy(numpy_helper.to_array(t).copy()) for t in model.graph.initializer}
    ops = [n.op_type for n in _call_activations(list(model.graph.node), consts)]
    assert ops.count("GELU") == 1 and ops.count("SiLU") == 1
    assert "Erf" not in ops and "Sigmoid" not in ops
    feeds = {"ids": np.array([[1, 5, 19], [0, 7, 3]], np.int64)}
    (got,) = torch_runner(model, 1)(feeds)
    (want,) = ort_run(model, feeds)
    assert got.shape == want.shape == (2, 48)  # Expand repeats the batch of 2
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-5, atol=1e-6)  # erf/sigmoid: libm vs MLAS
