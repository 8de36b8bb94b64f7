"""EfficientNet-B0: MBConv blocks (1x1 expansion, 3x3 or 5x5 depthwise conv, squeeze-and-
excitation, linear 1x1 projection) with SiLU activations, laid out as torchvision's."""

from __future__ import annotations

import math

import onnx

from irc.zoo.layers import ModernBuilder
from irc.zoo.mobilenet import _divisible

#: (expansion, kernel, first stride, input channels, output channels, repeats) of B0's stages.
SETTINGS = ((1, 3, 1, 32, 16, 1), (6, 3, 2, 16, 24, 2), (6, 5, 2, 24, 40, 2), (6, 3, 2, 40, 80, 3),
            (6, 5, 1, 80, 112, 3), (6, 5, 2, 112, 192, 4), (6, 3, 1, 192, 320, 1))


def efficientnet_b0(batch: int | None = None, *, width: float = 1.0, depth: float = 1.0, image: int = 224,
                    classes: int = 1000, seed: int = 0) -> onnx.ModelProto:
    """EfficientNet (dropout and stochastic depth omitted: inference). Channels are scaled by
    ``width`` and repeats by ``depth`` as torchvision scales B0 into B1-B7; the defaults give
    B0 itself (5,288,548 trainable parameters). BatchNorm stays a node of its own."""
    b = ModernBuilder("efficientnet_b0", seed=seed, batch=batch)
    x = b.input("input", (3, image, image))
    x = _conv_bn_silu(b, x, _divisible(SETTINGS[0][3] * width), 3, stride=2, name="features.0")
    for stage, (expand, k, stride, cin, cout, repeats) in enumerate(SETTINGS, start=1):
        cin, cout = _divisible(cin * width), _divisible(cout * width)
        for i in range(math.ceil(repeats * depth)):
            x = _mbconv(b, x, expand, k, stride if i == 0 else 1, cin if i == 0 else cout, cout,
                        f"features.{stage}.{i}")
    x = _conv_bn_silu(b, x, 4 * b.shape(x)[0], 1, name=f"features.{len(SETTINGS) + 1}")
    x = b.flatten(b.global_avgpool(x))
    return b.model(b.linear(x, classes, gain=1.0, name="classifier.1"),
                   doc=f"EfficientNet-B0 layout, width={width} depth={depth}")


def _conv_bn_silu(b: ModernBuilder, x: str, cout: int, k: int, *, name: str, **conv) -> str:
    """torchvision's Conv2dNormActivation with SiLU: conv (no bias), BatchNorm, SiLU."""
    return b.silu(b.bn(b.conv(x, cout, k, pad=(k - 1) // 2, name=f"{name}.0", **conv), name=f"{name}.1"))


def _mbconv(b: ModernBuilder, x: str, expand: int, k: int, stride: int, cin: int, cout: int, name: str) -> str:
    hidden = _divisible(cin * expand)
    y, j = x, 0
    if hidden != cin:
        y = _conv_bn_silu(b, y, hidden, 1, name=f"{name}.block.{j}")
        j += 1
    y = _conv_bn_silu(b, y, hidden, k, stride=stride, group=hidden, name=f"{name}.block.{j}")
    y = b.squeeze_excite(y, max(1, cin // 4), name=f"{name}.block.{j + 1}")
    # The projection is linear; He gain 1 keeps its output at the scale of a linear layer.
    y = b.bn(b.conv(y, cout, 1, pad=0, gain=1.0, name=f"{name}.block.{j + 2}.0"), name=f"{name}.block.{j + 2}.1")
    return b.add(x, y) if stride == 1 and cin == cout else y
