"""Example networks as ONNX models with deterministic weights: the models the examples,
tests and benchmarks share.

    model = irc.zoo.build("resnet18", batch=1)          # onnx.ModelProto, opset 17
    model = irc.zoo.build("small_resnet", batch=None)   # symbolic batch dimension "N"

Each builder takes ``batch`` (an int, or None for a symbolic "N" batch dimension), ``seed``,
and its own size parameters (image size, width...).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import onnx

from irc.errors import InputError
from irc.zoo.convnext import convnext_tiny
from irc.zoo.efficientnet import efficientnet_b0
from irc.zoo.imagenet import alexnet, googlenet, mobilenet_v1, resnet34, resnet50, squeezenet, vgg16
from irc.zoo.lenet import lenet5
from irc.zoo.mlp import mlp
from irc.zoo.mobilenet import mobilenet_v2
from irc.zoo.resnet import resnet, resnet18, small_resnet
from irc.zoo.transformer import bert_encoder, gpt_decoder
from irc.zoo.vgg import vgg_cifar
from irc.zoo.vit import vit_b16

#: Model name -> builder ``fn(batch=..., seed=..., **size parameters) -> onnx.ModelProto``.
MODELS: dict[str, Callable[..., onnx.ModelProto]] = {
    "mlp": mlp,
    "lenet5": lenet5,
    "resnet": resnet,
    "resnet18": resnet18,
    "small_resnet": small_resnet,
    "mobilenet_v2": mobilenet_v2,
    "vgg_cifar": vgg_cifar,
    "mobilenet_v1": mobilenet_v1,
    "squeezenet": squeezenet,
    "alexnet": alexnet,
    "vgg16": vgg16,
    "googlenet": googlenet,
    "resnet34": resnet34,
    "resnet50": resnet50,
    "bert_encoder": bert_encoder,
    "gpt_decoder": gpt_decoder,
    "efficientnet_b0": efficientnet_b0,
    "convnext_tiny": convnext_tiny,
    "vit_b16": vit_b16,
    # the real sizes: BERT-base's encoder at sequence 128 and GPT-2 small's decoder at 128 tokens
    "bert_base": partial(bert_encoder, seq=128, hidden=768, heads=12, layers=12, vocab=30522),
    "gpt2_small": partial(gpt_decoder, seq=128, hidden=768, heads=12, layers=12, vocab=50257),
}


def build(name: str, batch: int | None = None, **kw) -> onnx.ModelProto:
    """The ONNX model ``name`` (see MODELS) for ``batch`` (None: symbolic "N")."""
    try:
        fn = MODELS[name]
    except KeyError:
        raise InputError(f"unknown zoo model '{name}' (known: {', '.join(MODELS)})") from None
    return fn(batch=batch, **kw)


__all__ = ["MODELS", "build", "lenet5", "mlp", "mobilenet_v2", "resnet", "resnet18", "small_resnet", "vgg_cifar",
           "alexnet", "googlenet", "mobilenet_v1", "resnet34", "resnet50", "squeezenet", "vgg16", "bert_encoder",
           "gpt_decoder", "efficientnet_b0", "convnext_tiny", "vit_b16"]
