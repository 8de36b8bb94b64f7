"""Linear layers of transformers on the cpu target: [..., K] @ constant [K, N] runs as the
pre-packed GEMM with the bias, residual and GELU/SiLU in its epilogue; the self-gated activations
run alone too; BERT from the zoo still matches onnxruntime once fused."""

import collections
import math

import numpy as np
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

import irc
from irc.frontend.onnx.exporter import export_onnx
from irc.frontend.onnx.importer import import_onnx
from irc.frontend.onnx.rules import IMPORT_RULES
from irc.ir import GraphBuilder, interpret
from irc.ir.types import DType, TensorType
from irc.passes.pipeline import run_pipeline
from irc.zoo.transformer import bert_encoder
from tests.support.zoo import zoo_input
from tests.targets.harness import assert_matches_interp, one_op_graph

RNG = np.random.default_rng(0)
ACTS = ["gelu", "gelu_tanh", "silu"]


def _w(b, shape, name="w"):
    return b.param(name, (RNG.standard_normal(shape) * 0.3).astype(np.float32))


def _ops(g):
    return collections.Counter(n.op for n in g.nodes)


def _fused(g):
    return run_pipeline(g, ["recognise_activations", "fuse"])


def _compiled_graph(model, **options):
    graphs = {}
    cm = irc.compile(model, "cpu", on_pass=lambda name, g: graphs.__setitem__(name, g), **options)
    return cm, graphs


@pytest.mark.parametrize("act", ACTS)
def test_standalone_activation_matches_interp(act):
    x = (RNG.standard_normal((3, 37)) * 4).astype(np.float32)
    assert_matches_interp(one_op_graph(act, [TensorType((3, 37), DType.f32)]), [x], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("act", ACTS)
def test_linear_layer_bias_and_activation_are_one_gemm(act):
    b = GraphBuilder("g")
    x = b.input("x", (2, 5, 24))
    y = b.op("add", _w(b, (40,), "bias"), b.op("matmul", x, _w(b, (24, 40))))  # bias on the left, as torch
    g = b.build(b.op(act, y))
    out = _fused(g)
    assert _ops(out) == {"reshape": 2, "gemm_fused": 1}
    gemm = next(n for n in out.nodes if n.op == "gemm_fused")
    assert gemm.attrs["act"] == act and len(gemm.inputs) == 3
    xv = RNG.standard_normal((2, 5, 24)).astype(np.float32)
    np.testing.assert_allclose(interpret(out, [xv])[0], interpret(g, [xv])[0], rtol=1e-5, atol=1e-6)
    cm, graphs = _compiled_graph(g)
    np.testing.assert_allclose(cm(xv), interpret(g, [xv])[0], rtol=1e-5, atol=1e-6)
    assert _ops(graphs["im2col_gemm"]) == {"reshape": 2, "gemm_packed": 1}


def test_gelu_as_exported_joins_the_epilogue():
    b = GraphBuilder("g")
    x = b.input("x", (1, 8, 16))
    h = b.op("add", b.op("matmul", x, _w(b, (16, 32))), _w(b, (1, 1, 32), "bias"))  # a [1, 1, N] bias
    half, one, sqrt2 = (b.const(np.array(v, np.float32)) for v in (0.5, 1.0, math.sqrt(2)))
    gate = b.op("add", b.op("erf", b.op("div", h, sqrt2)), one)
    g = b.build(b.op("mul", b.op("mul", h, gate), half))
    cm, graphs = _compiled_graph(g)
    xv = RNG.standard_normal((1, 8, 16)).astype(np.float32)
    np.testing.assert_allclose(cm(xv), interpret(g, [xv])[0], rtol=1e-5, atol=1e-6)
    lowered = graphs["im2col_gemm"]
    assert "elementwise_chain" not in _ops(lowered) and "erf" not in _ops(lowered)
    assert [n.attrs["act"] for n in lowered.nodes if n.op == "gemm_packed"] == ["gelu"]


def test_residual_of_the_same_shape_joins_the_epilogue():
    b = GraphBuilder("g")
    x = b.input("x", (2, 6, 16))
    y = b.op("add", b.op("add", b.op("matmul", x, _w(b, (16, 16))), _w(b, (16,), "bias")), x)
    g = b.build(b.op("relu", y))
    out = _fused(g)
    (gemm,) = [n for n in out.nodes if n.op == "gemm_fused"]
    assert len(gemm.inputs) == 4 and gemm.attrs["act"] == "relu" and "add" not in _ops(out)
    assert_matches_interp(g, [RNG.standard_normal((2, 6, 16)).astype(np.float32)], rtol=1e-5, atol=1e-6)


def test_stacked_linear_layers_chain_no_reshapes():
    b = GraphBuilder("g")
    x = b.input("x", (1, 4, 8))
    h = b.op("silu", b.op("matmul", x, _w(b, (8, 32))))
    g = b.build(b.op("matmul", h, _w(b, (32, 8))))
    out = _fused(g)
    assert _ops(out) == {"reshape": 2, "gemm_fused": 2}
    assert_matches_interp(g, [RNG.standard_normal((1, 4, 8)).astype(np.float32)], rtol=1e-5, atol=1e-6)


def test_a_value_read_elsewhere_or_a_runtime_weight_is_left_alone():
    b = GraphBuilder("g")
    x, w = b.input("x", (2, 3, 8)), b.input("w", (8, 4))
    g = b.build(b.op("matmul", x, w))  # run-time B: not a linear layer
    assert _ops(_fused(g)) == {"matmul": 1}
    b = GraphBuilder("g")
    x = b.input("x", (2, 3, 8))
    y = b.op("matmul", x, _w(b, (8, 4)))
    g = b.build(b.op("gelu", y), y)  # the product is an output too: the activation stays apart
    out = _fused(g)
    assert _ops(out)["gelu"] == 1 and [n.attrs["act"] for n in out.nodes if n.op == "gemm_fused"] == ["none"]
    assert_matches_interp(g, [RNG.standard_normal((2, 3, 8)).astype(np.float32)], rtol=1e-5, atol=1e-6)


def _gelu_model(approximate="none"):
    g = helper.make_graph([helper.make_node("Gelu", ["x"], ["y"], approximate=approximate)], "m",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [3, 5])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [3, 5])])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 20)])


@pytest.mark.parametrize("approximate, op", [("none", "gelu"), ("tanh", "gelu_tanh")])
def test_onnx_gelu_imports_as_one_op_and_exports_as_its_expansion(approximate, op):
    model = _gelu_model(approximate)
    g = import_onnx(model)
    assert [n.op for n in g.nodes] == [op]
    x = np.linspace(-4, 4, 15, dtype=np.float32).reshape(3, 5)
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    want = sess.run(None, {"x": x})[0]
    np.testing.assert_allclose(irc.compile(model, "cpu")(x), want, rtol=1e-5, atol=1e-6)
    back = export_onnx(g, opset=17)
    assert "Gelu" not in [n.op_type for n in back.graph.node]
    again = ort.InferenceSession(back.SerializeToString(), providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(again.run(None, {g.inputs[0].name: x})[0], want, rtol=1e-5, atol=1e-6)
    assert [n.op for n in recognise(import_onnx(back)).nodes] == [op]  # and is recognised again


def recognise(g):
    return run_pipeline(g, ["recognise_activations"])


def test_onnx_gelu_function_body_is_recognised(monkeypatch):
    monkeypatch.delitem(IMPORT_RULES, "Gelu")
    g = import_onnx(_gelu_model())
    assert "erf" in _ops(g) and [n.op for n in recognise(g).nodes] == ["gelu"]


def test_silu_exports_as_mul_of_sigmoid():
    g = one_op_graph("silu", [TensorType((3, 5), DType.f32)])
    back = export_onnx(g)
    assert sorted(n.op_type for n in back.graph.node) == ["Mul", "Sigmoid"]
    x = np.linspace(-6, 6, 15, dtype=np.float32).reshape(3, 5)
    sess = ort.InferenceSession(back.SerializeToString(), providers=["CPUExecutionProvider"])
    # onnxruntime's float32 sigmoid is a few ulps off (4e-6 relative seen at x = -4.3)
    np.testing.assert_allclose(sess.run(None, {g.inputs[0].name: x})[0], interpret(g, [x])[0], rtol=1e-5, atol=1e-6)
    assert [n.op for n in recognise(import_onnx(back)).nodes] == ["silu"]


@pytest.mark.slow
def test_bert_encoder_fuses_and_matches_onnxruntime():
    model = bert_encoder(2)
    cm, graphs = _compiled_graph(model)
    ids = zoo_input(model, 2)
    got = cm(ids)
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    want = sess.run(None, {model.graph.input[0].name: ids})[0]
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    fused, lowered = graphs["fuse"], graphs["im2col_gemm"]
    const_b = [n for n in fused.nodes if n.op == "matmul" and n.inputs[1] in fused.params and n.inputs[1].type.rank == 2]
    assert const_b == []
    ops = _ops(lowered)
    assert ops["elementwise_chain"] == 0 and ops["erf"] == 0 and ops["matmul"] == 0
    layers = sum(1 for n in model.graph.node if n.op_type == "Erf")
    acts = collections.Counter(n.attrs["act"] for n in lowered.nodes if n.op == "gemm_packed")
    assert acts["gelu"] == layers == 2 and ops["gemm_packed"] == 6 * layers
    # every bias and every residual add went into a GEMM epilogue
    assert all(len(n.inputs) >= 3 for n in lowered.nodes if n.op == "gemm_packed")
    assert sum(len(n.inputs) == 4 for n in lowered.nodes if n.op == "gemm_packed") == 2 * layers
