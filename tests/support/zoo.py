"""The zoo configurations the model tests run (interpreter, CPU target) and their input data."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

#: (model, size arguments): small configurations of every zoo model, plus the real ResNet-18 (slow).
CONFIGS = [
    pytest.param("mlp", {}, id="mlp"),
    pytest.param("lenet5", {}, id="lenet5"),
    pytest.param("small_resnet", {}, id="small_resnet"),
    pytest.param("resnet", {"image": 64, "width": 8, "blocks": (1, 1, 1, 1), "classes": 20}, id="resnet_imagenet_stem"),
    pytest.param("mobilenet_v2", {"width": 0.35, "image": 32, "classes": 10}, id="mobilenet_v2_0.35"),
    pytest.param("vgg_cifar", {"width": 0.25}, id="vgg_cifar_0.25"),
    pytest.param("vgg_cifar", {"width": 0.25, "flatten": "view"}, id="vgg_cifar_view_flatten"),
    pytest.param("bert_encoder", {}, id="bert_encoder"),
    pytest.param("gpt_decoder", {}, id="gpt_decoder"),
    pytest.param("resnet18", {}, id="resnet18_224", marks=pytest.mark.slow),
]


def zoo_input(model: onnx.ModelProto, batch: int, seed: int = 0) -> np.ndarray:
    """Standard normal data of the model's input shape, its symbolic batch set to ``batch``;
    for a model that takes token ids (int64), ids drawn uniformly from its vocabulary."""
    tt = model.graph.input[0].type.tensor_type
    dims = [d.dim_value or batch for d in tt.shape.dim]
    rng = np.random.default_rng(seed)
    if tt.elem_type == onnx.TensorProto.INT64:
        vocab = int({p.key: p.value for p in model.metadata_props}["irc.vocab"])
        return rng.integers(0, vocab, dims).astype(np.int64)
    return rng.standard_normal(dims).astype(np.float32)
