"""QDQ ONNX interop: models quantized by onnxruntime.quantization.quantize_static import and
match onnxruntime within one quantization step; irc-quantized graphs export as QDQ ONNX that
onnxruntime runs, and come back through import + fold_qdq as the same integer graph."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import irc.zoo
from irc.frontend.onnx import import_onnx
from irc.frontend.onnx.exporter import export_onnx
from irc.ir.interp import interpret
from irc.passes.pipeline import run_pipeline
from tests.support.oracle import ort_run

pytest.importorskip("onnxruntime.quantization")


def _input(model):
    vi = model.graph.input[0]
    return vi.name, [d.dim_value for d in vi.type.tensor_type.shape.dim]


def _ort_quantized(model, tmp_path, calib: np.ndarray, batch: int) -> onnx.ModelProto:
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    name, _ = _input(model)

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.it = iter({name: calib[i:i + batch]} for i in range(0, len(calib), batch))

        def get_next(self):
            return next(self.it, None)

    onnx.save(model, tmp_path / "f.onnx")
    quantize_static(str(tmp_path / "f.onnx"), str(tmp_path / "q.onnx"), Reader(), quant_format=QuantFormat.QDQ,
                    per_channel=True, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
    return onnx.load(tmp_path / "q.onnx")


def _last_step(model: onnx.ModelProto) -> float:
    """Scale of the DequantizeLinear that produces the graph's output (one quantization step)."""
    inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    producer = {o: n for n in model.graph.node for o in n.output}
    n = producer[model.graph.output[0].name]
    while n.op_type != "DequantizeLinear":
        n = producer[n.input[0]]
    return float(inits[n.input[1]])


@pytest.mark.parametrize("name", ["lenet5", "small_resnet", "mlp"])
def test_import_of_onnxruntime_quantized_model(name, tmp_path):
    batch = 4
    model = irc.zoo.build(name, batch=batch)
    inp, shape = _input(model)
    rng = np.random.default_rng(0)
    qmodel = _ort_quantized(model, tmp_path, rng.standard_normal([16] + shape[1:]).astype(np.float32), batch)
    x = rng.standard_normal(shape).astype(np.float32)
    want = ort_run(qmodel, {inp: x})[0]
    g = import_onnx(qmodel)
    folded = run_pipeline(g, ["fold_constants", "fold_qdq"])
    assert {"qconv", "qgemm"} & set(folded.op_histogram())
    assert "conv" not in folded.op_histogram() and "gemm" not in folded.op_histogram()
    step = _last_step(qmodel)
    for graph in (g, folded):
        got = interpret(graph, [x])[0]
        assert np.abs(got - want).max() <= step * 1.0001


def test_qlinear_conv_with_asymmetric_weights_falls_back_to_float():
    rng = np.random.default_rng(2)
    x = rng.integers(0, 256, (1, 2, 5, 5)).astype(np.uint8)
    w = rng.integers(0, 256, (3, 2, 3, 3)).astype(np.uint8)  # zero point 128 -> [-128, 127]: fits int8
    inits = {"xs": np.float32(0.02), "xz": np.uint8(100), "w": w, "ws": np.float32(0.01), "ys": np.float32(0.05),
             "yz": np.uint8(10)}

    def model(wz):
        init = [numpy_helper.from_array(np.asarray(v), k) for k, v in {**inits, "wz": np.uint8(wz)}.items()]
        node = helper.make_node("QLinearConv", ["x", "xs", "xz", "w", "ws", "wz", "ys", "yz"], ["y"], pads=[1, 1, 1, 1])
        g = helper.make_graph([node], "t", [helper.make_tensor_value_info("x", TensorProto.UINT8, [1, 2, 5, 5])],
                              [helper.make_tensor_value_info("y", TensorProto.UINT8, [1, 3, 5, 5])], initializer=init)
        return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])

    for wz, ops in ((128, {"qconv"}), (20, {"dequantize_linear", "conv", "quantize_linear"})):
        m = model(wz)
        g = import_onnx(m)
        assert set(g.op_histogram()) == ops
        got, want = interpret(g, [x])[0], ort_run(m, {"x": x})[0]
        assert np.abs(got.astype(int) - want).max() <= 1


@pytest.mark.parametrize("name", ["lenet5", "small_resnet", "mlp"])
def test_export_qdq_runs_in_onnxruntime_and_round_trips(name):
    g = import_onnx(irc.zoo.build(name, batch=2))
    x = g.inputs[0]
    rng = np.random.default_rng(1)
    calib = {x.name: rng.standard_normal((16, *x.shape[1:])).astype(np.float32)}
    f = run_pipeline(g, ["fold_constants", "fold_batchnorm"])
    q = run_pipeline(f, ["calibrate", "quantize"], options={"calib": calib})
    model = export_onnx(q)
    ops = {n.op_type for n in model.graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops and not any(o.startswith("QLinear") for o in ops)
    read = {i for n in model.graph.node for i in n.input}
    assert all(t.name in read for t in model.graph.initializer)
    test = rng.standard_normal(x.shape).astype(np.float32)
    got = interpret(q, [test])[0]
    want = ort_run(model, {x.name: test})[0]
    assert np.abs(got - want).max() <= _last_step(model) * 1.0001
    back = run_pipeline(import_onnx(model), ["fold_constants", "fold_qdq"])
    assert back.op_histogram() == q.op_histogram()
    assert np.array_equal(interpret(back, [test])[0], got)
