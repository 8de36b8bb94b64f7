"""ConvNeXt: a patchify stem, stages of 7x7 depthwise convs followed by a channels-last
LayerNorm and GELU MLP with layer scale, and LayerNorm + 2x2 stride-2 conv between stages, as
torchvision and the reference implementation lay it out and torch exports it (the permutes to
and from NHWC are Transposes, the Linears on 4-D tensors MatMul + Add)."""

from __future__ import annotations

from collections.abc import Sequence

import onnx

from irc.errors import InputError
from irc.zoo.layers import ModernBuilder

NHWC, NCHW = (0, 2, 3, 1), (0, 3, 1, 2)


def convnext_tiny(batch: int | None = None, *, depths: Sequence[int] = (3, 3, 9, 3),
                  dims: Sequence[int] = (96, 192, 384, 768), image: int = 224, classes: int = 1000,
                  seed: int = 0) -> onnx.ModelProto:
    """ConvNeXt (stochastic depth omitted: inference). The defaults give ConvNeXt-T
    (28,589,128 trainable parameters); fewer blocks and channels make it cheap."""
    if len(depths) != len(dims):
        raise InputError(f"convnext_tiny: depths {list(depths)} and dims {list(dims)} must have the same length "
                         "(one of each per stage)")
    b = ModernBuilder("convnext_tiny", seed=seed, batch=batch)
    x = b.input("input", (3, image, image))
    x = _layer_norm_2d(b, b.conv(x, dims[0], 4, stride=4, pad=0, bias=True, gain=1.0, name="features.0.0"),
                       "features.0.1")
    for stage, (n, dim) in enumerate(zip(depths, dims)):
        if stage:
            name = f"features.{2 * stage}"
            x = b.conv(_layer_norm_2d(b, x, f"{name}.0"), dim, 2, stride=2, pad=0, bias=True, gain=1.0,
                       name=f"{name}.1")
        for i in range(n):
            x = _block(b, x, f"features.{2 * stage + 1}.{i}")
    x = b.layer_norm(b.flatten(b.global_avgpool(x)), name="classifier.0")
    return b.model(b.linear(x, classes, gain=1.0, name="classifier.2"),
                   doc=f"ConvNeXt depths={list(depths)} dims={list(dims)}")


def _layer_norm_2d(b: ModernBuilder, x: str, name: str) -> str:
    """LayerNorm over the channels of an NCHW tensor, as torchvision's LayerNorm2d exports."""
    return b.transpose(b.layer_norm(b.transpose(x, NHWC), name=name), NCHW)


def _block(b: ModernBuilder, x: str, name: str) -> str:
    dim = b.shape(x)[0]
    y = b.conv(x, dim, 7, pad=3, group=dim, bias=True, gain=1.0, name=f"{name}.block.0")
    y = b.layer_norm(b.transpose(y, NHWC), name=f"{name}.block.2")
    y = b.gelu(b.linear_last(y, 4 * dim, name=f"{name}.block.3"))
    y = b.layer_scale(b.linear_last(y, dim, gain=2.0, name=f"{name}.block.5"), name=f"{name}.layer_scale")
    return b.add(x, b.transpose(y, NCHW))
