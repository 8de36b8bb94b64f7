"""MobileNetV2: inverted residual blocks with depthwise convs, ReLU6, width multiplier."""

from __future__ import annotations

import onnx

from irc.zoo.builder import OnnxBuilder

#: (expansion t, channels c, repeats n, first stride s), as in the paper and torchvision.
SETTINGS = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))


def _divisible(v: float, d: int = 8) -> int:
    """torchvision's _make_divisible: round to a multiple of d, never below 90% of v."""
    n = max(d, int(v + d / 2) // d * d)
    return n + d if n < 0.9 * v else n


def mobilenet_v2(batch: int | None = None, *, width: float = 1.0, image: int = 224, classes: int = 1000,
                 seed: int = 0) -> onnx.ModelProto:
    """MobileNetV2 (dropout omitted: inference). ``width=1.0, image=224`` is the standard net
    (3,504,872 trainable parameters); smaller widths and images make it cheap."""
    b = OnnxBuilder("mobilenet_v2", seed=seed, batch=batch)
    x = b.input("input", (3, image, image))
    cin = _divisible(32 * width)
    x = b.conv_bn(x, cin, 3, stride=2, relu="relu6", name="features.0")
    layer = 1
    for t, c, n, s in SETTINGS:
        cout = _divisible(c * width)
        for i in range(n):
            x = _inverted_residual(b, x, cout, s if i == 0 else 1, t, f"features.{layer}")
            layer += 1
    last = _divisible(1280 * max(1.0, width))
    x = b.conv_bn(x, last, 1, pad=0, relu="relu6", name=f"features.{layer}")
    x = b.flatten(b.global_avgpool(x))
    return b.model(b.linear(x, classes, gain=1.0, name="classifier.1"), doc=f"MobileNetV2 width={width}")


def _inverted_residual(b: OnnxBuilder, x: str, cout: int, stride: int, expand: int, name: str) -> str:
    cin = b.shape(x)[0]
    hidden = round(cin * expand)
    y, j = x, 0
    if expand != 1:
        y = b.conv_bn(y, hidden, 1, pad=0, relu="relu6", name=f"{name}.conv.{j}")
        j += 1
    y = b.conv_bn(y, hidden, 3, stride=stride, group=hidden, relu="relu6", name=f"{name}.conv.{j}")
    # The projection is linear; He gain 1 keeps its output at the scale of a linear layer.
    y = b.conv_bn(y, cout, 1, pad=0, relu=None, gain=1.0, name=f"{name}.conv.{j + 1}")
    return b.add(x, y) if stride == 1 and cin == cout else y
