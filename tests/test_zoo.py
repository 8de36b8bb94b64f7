"""The example models: valid ONNX, deterministic, the real architectures' sizes, activations of
order one, and the same numbers through irc's interpreter as through onnxruntime."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import helper

import irc
import irc.zoo
from irc.errors import InputError
from tests.support.zoo import CONFIGS, zoo_input


def _trainable(model: onnx.ModelProto) -> int:
    """Weights and biases, as PyTorch counts parameters (BatchNorm running statistics and
    constant inputs such as Clip's bounds are not parameters)."""
    return sum(int(np.prod(t.dims)) for t in model.graph.initializer if t.name.endswith((".weight", ".bias")))


@pytest.mark.parametrize("name, kw", CONFIGS)
def test_interpreter_matches_onnxruntime(name, kw, ort_run):
    model = irc.zoo.build(name, batch=2, **kw)
    x = zoo_input(model, 2)
    got = irc.compile(model, target="interp")(x)
    (want,) = ort_run(model, {"input": x})
    assert got.shape == want.shape and got.dtype == np.float32
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name, kw", CONFIGS)
def test_valid_onnx_with_symbolic_batch(name, kw):
    model = irc.zoo.build(name, **kw)
    onnx.checker.check_model(model, full_check=True)
    assert model.opset_import[0].version == 17
    for vi in (*model.graph.input, *model.graph.output):
        assert vi.type.tensor_type.shape.dim[0].dim_param == "N"
    fixed = irc.zoo.build(name, batch=3, **kw)
    assert fixed.graph.input[0].type.tensor_type.shape.dim[0].dim_value == 3


def test_symbolic_batch_runs_at_any_batch(ort_run):
    model = irc.zoo.build("small_resnet")
    compiled = irc.compile(model, target="interp")
    for batch in (1, 3):
        x = zoo_input(model, batch, seed=batch)
        np.testing.assert_allclose(compiled(x), ort_run(model, {"input": x})[0], rtol=1e-4, atol=1e-5)


def test_weights_are_deterministic():
    a = irc.zoo.build("small_resnet", batch=1).SerializeToString()
    assert a == irc.zoo.build("small_resnet", batch=1).SerializeToString()
    assert a != irc.zoo.build("small_resnet", batch=1, seed=1).SerializeToString()


@pytest.mark.parametrize("name, kw", CONFIGS)
def test_activations_stay_of_order_one(name, kw, ort_run):
    """He-style weights and BatchNorm statistics matched to the data keep every activation's
    root mean square within [0.05, 20] however deep the net."""
    model = irc.zoo.build(name, batch=2, **kw)
    # shape arithmetic is not an activation, and neither is a score with a causal mask added
    outs = [o for n in model.graph.node if n.op_type not in ("Shape", "Gather", "Unsqueeze", "Concat")
            and not any("mask" in i for i in n.input) for o in n.output]
    del model.graph.output[:]
    model.graph.output.extend(helper.make_empty_tensor_value_info(o) for o in outs)
    for out, y in zip(outs, ort_run(model, {"input": zoo_input(model, 2)})):
        rms = float(np.sqrt(np.mean(np.square(y, dtype=np.float64))))
        assert 0.05 <= rms <= 20, f"{out}: rms {rms:.3g}"


def test_batchnorm_statistics_are_not_trivial():
    model = irc.zoo.build("small_resnet", batch=1)
    data = {t.name: onnx.numpy_helper.to_array(t) for t in model.graph.initializer}
    for suffix, trivial in ((".running_mean", 0.0), (".running_var", 1.0), (".weight", 1.0), (".bias", 0.0)):
        arrays = [a for k, a in data.items() if k.endswith(suffix) and "bn" in k]
        assert arrays and all(np.abs(a - trivial).max() > 0.05 for a in arrays), suffix


def test_real_resnet18_and_mobilenet_v2_sizes():
    resnet18 = irc.zoo.build("resnet18", batch=1)
    assert _trainable(resnet18) == 11_689_512  # torchvision's resnet18
    ops = [n.op_type for n in resnet18.graph.node]
    assert ops.count("Conv") == 20 and ops.count("Add") == 8 and ops.count("BatchNormalization") == 20
    mobilenet = irc.zoo.build("mobilenet_v2", batch=1)
    assert _trainable(mobilenet) == 3_504_872  # torchvision's mobilenet_v2
    convs = [n for n in mobilenet.graph.node if n.op_type == "Conv"]
    depthwise = [n for n in convs if helper.get_attribute_value(next(a for a in n.attribute if a.name == "group")) > 1]
    assert len(convs) == 52 and len(depthwise) == 17
    assert sum(n.op_type == "Clip" for n in mobilenet.graph.node) == 35


def test_lenet5_layout():
    model = irc.zoo.build("lenet5")
    assert [n.op_type for n in model.graph.node] == [
        "Conv", "Relu", "MaxPool", "Conv", "Relu", "MaxPool", "Flatten", "Gemm", "Relu", "Gemm", "Relu", "Gemm"]
    assert _trainable(model) == 61_706
    assert [d.dim_param or d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim] == ["N", 1, 28, 28]


def test_shipped_lenet_is_the_zoo_model(lenet_path):
    assert lenet_path.read_bytes() == irc.zoo.build("lenet5").SerializeToString()


def test_resnet18_macs():
    """The cost model agrees with ResNet-18's well-known 1.82 GMACs at 224x224."""
    from irc.frontend.onnx import import_onnx
    from irc.ir.cost import graph_cost

    g = import_onnx(irc.zoo.build("resnet18", batch=1))
    by_op = graph_cost(g).by_op
    contractions = by_op["conv"].cost.macs + by_op["gemm"].cost.macs
    assert contractions == 1_814_073_344  # conv and fc layers, as torchvision counts them
    assert by_op["gemm"].cost.macs == 512 * 1000


def test_unknown_model():
    with pytest.raises(InputError, match="unknown zoo model 'resnet51'.*resnet18"):
        irc.zoo.build("resnet51")
    assert set(irc.zoo.MODELS) >= {"mlp", "lenet5", "resnet", "resnet18", "small_resnet", "mobilenet_v2", "vgg_cifar"}
