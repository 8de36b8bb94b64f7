"""The zoo networks of the patterns after ResNet: EfficientNet-B0 (SiLU, squeeze-and-excitation,
3x3 and 5x5 depthwise convs), ConvNeXt-T (7x7 depthwise convs, channels-last LayerNorm, erf
GELU, layer scale) and ViT-B/16 (patch embedding, class token, multi-head attention).

Small configurations run on the interpreter and the CPU target against onnxruntime; the
full-size ones are built, checked and their parameters counted, and compiled only in the slow
suite. Tolerances: rtol 1e-4 with atol 1e-5, as for the other zoo models. The logits are of
order one (asserted), and the engines differ only in the order of float32 sums and in exp and
erf to the last bits; over these depths that stays near 1e-6 absolute, and atol covers the few
logits close to zero, where a relative bound means nothing.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper

import irc
import irc.zoo
from irc.errors import InputError
from tests.support.marks import slow
from tests.support.zoo import zoo_input

#: (model, size arguments) of the cheap configurations: every block kind, a few of each.
SMALL = [
    pytest.param("efficientnet_b0", {"width": 0.25, "depth": 0.5, "image": 64, "classes": 10}, id="efficientnet"),
    pytest.param("convnext_tiny", {"depths": (1, 1, 2, 1), "dims": (16, 32, 64, 128), "image": 64, "classes": 10},
                 id="convnext"),
    pytest.param("vit_b16", {"image": 32, "patch": 8, "hidden": 64, "heads": 4, "layers": 2, "classes": 10}, id="vit"),
]

#: Trainable parameters of the full-size nets, as torchvision counts them (efficientnet_b0,
#: convnext_tiny, vit_b_16); the papers round them to 5.3M, 28.6M and 86.6M.
PUBLISHED = {"efficientnet_b0": 5_288_548, "convnext_tiny": 28_589_128, "vit_b16": 86_567_656}
PAPER = {"efficientnet_b0": 5.3e6, "convnext_tiny": 28.6e6, "vit_b16": 86.6e6}
FULL = [pytest.param("efficientnet_b0", id="efficientnet_b0"),
        pytest.param("convnext_tiny", id="convnext_tiny", marks=slow),  # each takes 5-10 s to draw and check
        pytest.param("vit_b16", id="vit_b16", marks=slow)]


def _parameters(model: onnx.ModelProto) -> int:
    """Float tensors that training would learn: not BatchNorm running statistics, scalar
    constants (GELU's, the attention scale) or int64 shapes and indices."""
    return sum(int(np.prod(t.dims)) for t in model.graph.initializer
               if t.data_type == onnx.TensorProto.FLOAT and len(t.dims) and ".running_" not in t.name)


def _check(got: np.ndarray, want: np.ndarray) -> None:
    assert got.shape == want.shape and got.dtype == np.float32
    assert 0.1 < np.abs(want).max() < 100, "logits of order one, so that atol is small beside them"
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name, kw", SMALL)
def test_small_config_on_interpreter_matches_onnxruntime(name, kw, ort_run):
    model = irc.zoo.build(name, batch=2, **kw)
    x = zoo_input(model, 2)
    _check(irc.compile(model, target="interp")(x), ort_run(model, {"input": x})[0])


@slow  # each compiles for about 10 s
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("name, kw", SMALL)
def test_small_config_on_cpu_matches_onnxruntime(name, kw, threads, ort_run):
    model = irc.zoo.build(name, batch=2, **kw)
    x = zoo_input(model, 2)
    _check(irc.compile(model, target="cpu", threads=threads)(x), ort_run(model, {"input": x})[0])


@pytest.mark.parametrize("name, kw", SMALL)
def test_symbolic_batch_runs_at_any_batch(name, kw, ort_run):
    """The batch stays symbolic ("N"); ViT's class token is broadcast to it at run time."""
    model = irc.zoo.build(name, **kw)
    onnx.checker.check_model(model, full_check=True)
    assert model.opset_import[0].version == 17
    assert model.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "N"
    compiled = irc.compile(model, target="interp")
    for batch in (1, 3):
        x = zoo_input(model, batch, seed=batch)
        _check(compiled(x), ort_run(model, {"input": x})[0])


@pytest.mark.parametrize("name, kw", SMALL)
def test_activations_stay_of_order_one(name, kw, ort_run):
    """The weights keep every activation's root mean square within [0.05, 20], so no block's
    contribution hides under the tolerance (a trained ConvNeXt's layer scale starts at 1e-6)."""
    model = irc.zoo.build(name, batch=2, **kw)
    outs = [o for n in model.graph.node if n.op_type not in ("Shape", "Gather", "Unsqueeze", "Concat")
            for o in n.output]
    del model.graph.output[:]
    model.graph.output.extend(helper.make_empty_tensor_value_info(o) for o in outs)
    for out, y in zip(outs, ort_run(model, {"input": zoo_input(model, 2)})):
        rms = float(np.sqrt(np.mean(np.square(y, dtype=np.float64))))
        assert 0.05 <= rms <= 20, f"{out}: rms {rms:.3g}"


def _attr(node: onnx.NodeProto, name: str):
    return next(helper.get_attribute_value(a) for a in node.attribute if a.name == name)


def _producers(model: onnx.ModelProto) -> dict[str, onnx.NodeProto]:
    return {o: n for n in model.graph.node for o in n.output}


def _efficientnet_b0_layout(model: onnx.ModelProto) -> None:
    """16 MBConv blocks: 7 with 3x3 and 9 with 5x5 depthwise convs, each with squeeze-and-
    excitation; 9 residual adds; every activation SiLU as Mul(x, Sigmoid(x))."""
    nodes, made_by = model.graph.node, _producers(model)
    depthwise = [n for n in nodes if n.op_type == "Conv" and _attr(n, "group") > 1]
    assert sorted(_attr(n, "kernel_shape")[0] for n in depthwise) == [3] * 7 + [5] * 9
    assert sum(n.op_type == "GlobalAveragePool" for n in nodes) == 17  # 16 squeezes and the head
    assert sum(n.op_type == "Add" for n in nodes) == 9
    assert sum(n.op_type == "BatchNormalization" for n in nodes) == 49
    sigmoids = [n for n in nodes if n.op_type == "Sigmoid"]
    silu = [m for m in nodes if m.op_type == "Mul" and m.input[1] in {s.output[0] for s in sigmoids}
            and made_by[m.input[1]].input[0] == m.input[0]]
    gates = [m for m in nodes if m.op_type == "Mul" and m not in silu]
    assert len(silu) == 49 - 16 + 16  # after every BatchNorm but the 16 projections', and inside each SE
    assert len(gates) == 16 and all(made_by[g.input[1]].op_type == "Sigmoid" for g in gates)
    assert len(sigmoids) == len(silu) + len(gates)


def _chain(consumers: dict[str, list[onnx.NodeProto]], node: onnx.NodeProto, count: int) -> list[str]:
    """The op types of the ``count`` nodes after ``node``, each the first consumer of the last."""
    ops = []
    for _ in range(count):
        node = consumers[node.output[0]][0]
        ops.append(node.op_type)
    return ops


def _convnext_tiny_layout(model: onnx.ModelProto) -> None:
    """18 blocks of 7x7 depthwise conv -> NHWC -> LayerNorm -> Linear -> erf GELU -> Linear ->
    layer scale -> NCHW -> residual, in stages of 3, 3, 9 and 3; 2x2 stride-2 downsampling."""
    nodes = model.graph.node
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for n in nodes:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    depthwise = [n for n in nodes if n.op_type == "Conv" and _attr(n, "group") > 1]
    assert len(depthwise) == 18 and all(_attr(n, "kernel_shape") == [7, 7] for n in depthwise)
    assert [_attr(n, "group") for n in depthwise] == [96] * 3 + [192] * 3 + [384] * 9 + [768] * 3
    for n in depthwise:
        assert _chain(consumers, n, 14) == ["Transpose", "LayerNormalization", "MatMul", "Add", "Div", "Erf", "Add",
                                             "Mul", "Mul", "MatMul", "Add", "Mul", "Transpose", "Add"]
    strided = [n for n in nodes if n.op_type == "Conv" and _attr(n, "group") == 1]
    assert [(_attr(n, "kernel_shape"), _attr(n, "strides")) for n in strided] == [([4, 4], [4, 4])] + [
        ([2, 2], [2, 2])] * 3
    norms = [n for n in nodes if n.op_type == "LayerNormalization"]
    assert len(norms) == 18 + 1 + 3 + 1 and all(_attr(n, "axis") == -1 for n in norms)
    perms = [tuple(_attr(n, "perm")) for n in nodes if n.op_type == "Transpose"]
    assert perms.count((0, 2, 3, 1)) == perms.count((0, 3, 1, 2)) == 18 + 1 + 3


def _vit_b16_layout(model: onnx.ModelProto) -> None:
    """A 16x16 stride-16 patch conv, 196 patches and the class token (197 tokens), 12 pre-norm
    blocks of 12-head attention and a GELU MLP, the head on the class token."""
    nodes = model.graph.node
    inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    (conv,) = [n for n in nodes if n.op_type == "Conv"]
    assert _attr(conv, "kernel_shape") == _attr(conv, "strides") == [16, 16]
    assert inits["encoder.pos_embedding"].shape == (1, 197, 768) and inits["class_token"].shape == (1, 1, 768)
    assert sum(n.op_type == "Expand" for n in nodes) == 1
    assert sum(n.op_type == "Softmax" for n in nodes) == sum(n.op_type == "Erf" for n in nodes) == 12
    assert sum(n.op_type == "LayerNormalization" for n in nodes) == 2 * 12 + 1
    heads = {tuple(inits[n.input[1]]) for n in nodes if n.op_type == "Reshape" and n.input[1] in inits}
    assert (0, 197, 12, 64) in heads and (0, 197, 768) in heads
    (head,) = [n for n in nodes if n.op_type == "Gemm"]
    assert model.graph.node[-2].op_type == "Gather" and head.input[0] == model.graph.node[-2].output[0]


LAYOUT = {"efficientnet_b0": _efficientnet_b0_layout, "convnext_tiny": _convnext_tiny_layout,
          "vit_b16": _vit_b16_layout}


@pytest.mark.parametrize("name", FULL)
def test_full_size_model(name):
    """The real net at 224 x 224: its parameter count and its export's layout."""
    model = irc.zoo.build(name, batch=1)  # checked with full_check as it is built
    onnx.checker.check_model(model)
    assert [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim] == [1, 3, 224, 224]
    assert [d.dim_value for d in model.graph.output[0].type.tensor_type.shape.dim] == [1, 1000]
    assert _parameters(model) == PUBLISHED[name]
    assert abs(_parameters(model) / PAPER[name] - 1) < 0.02
    LAYOUT[name](model)


@slow  # minutes: compiles the real nets
@pytest.mark.parametrize("name", ["efficientnet_b0", "convnext_tiny", "vit_b16"])
def test_full_size_on_cpu_matches_onnxruntime(name, ort_run):
    model = irc.zoo.build(name, batch=1)
    x = zoo_input(model, 1)
    _check(irc.compile(model, target="cpu", threads=2)(x), ort_run(model, {"input": x})[0])


def test_registered_and_sized_by_arguments():
    assert {"efficientnet_b0", "convnext_tiny", "vit_b16"} <= set(irc.zoo.MODELS)
    with pytest.raises(InputError, match="vit_b16: image size 30 must be a multiple of the patch size 8"):
        irc.zoo.build("vit_b16", image=30, patch=8)
    with pytest.raises(InputError, match="convnext_tiny: depths .* same length"):
        irc.zoo.build("convnext_tiny", depths=(1, 1), dims=(8,))
