"""The standard ImageNet classifiers, for 3 x 224 x 224 inputs, as their reference definitions
lay them out (random weights): MobileNet v1, SqueezeNet 1.0 / 1.1, AlexNet, VGG-16, GoogLeNet,
ResNet-34 and ResNet-50 (ResNet-18 and MobileNet v2 have their own modules).

These are the topologies the FPGA flows are sized against (``irc dneuro fit``). Each ends, as a
classifier is deployed, with a Softmax over the logits (``softmax=False`` leaves the logits);
AlexNet, VGG-16, SqueezeNet and GoogLeNet keep their Dropout layers, as some exporters do.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import onnx

from irc.zoo.builder import OnnxBuilder
from irc.zoo.mobilenet import _divisible
from irc.zoo.resnet import resnet


class ImageNetBuilder(OnnxBuilder):
    """OnnxBuilder with the few layers these nets add: Concat, ceil-mode MaxPool, Dropout."""

    def concat(self, xs: Sequence[str]) -> str:
        c = sum(self.shape(x)[0] for x in xs)
        _, h, w = self.shape(xs[0])
        stats = tuple(np.concatenate([self.stats(x)[k] for x in xs]) for k in (0, 1))
        return self._node("Concat", list(xs), (c, h, w), stats, axis=1)

    def maxpool_ceil(self, x: str, k: int, stride: int, pad: int = 0) -> str:
        """MaxPool with ceil_mode=1 (a last, partial window where the size does not divide)."""
        c, h, w = self.shape(x)
        ho = -(-(h + 2 * pad - k) // stride) + 1
        wo = -(-(w + 2 * pad - k) // stride) + 1
        if (ho - 1) * stride >= h + pad:
            ho -= 1
        if (wo - 1) * stride >= w + pad:
            wo -= 1
        mean, var = self.stats(x)
        return self._node("MaxPool", [x], (c, ho, wo), (mean + 1.485 * np.sqrt(var), 0.357 * var),
                          kernel_shape=[k, k], strides=[stride, stride], pads=[pad] * 4, ceil_mode=1)

    def dropout(self, x: str) -> str:
        return self._node("Dropout", [x], self.shape(x), self.stats(x))

    def conv_relu(self, x: str, cout: int, k: int, **kw) -> str:
        """conv (with bias) -> ReLU, the layer of the nets without BatchNorm."""
        return self.relu(self.conv(x, cout, k, bias=True, **kw))

    def head(self, x: str, classes: int, softmax: bool, name: str = "fc") -> onnx.ModelProto:
        y = self.linear(x, classes, gain=1.0, name=name)
        return self.model(self.softmax(y) if softmax else y, doc=self.name)


def mobilenet_v1(batch: int | None = None, *, width: float = 1.0, image: int = 224, classes: int = 1000,
                 softmax: bool = True, seed: int = 0) -> onnx.ModelProto:
    """MobileNet v1: conv3x3/2 then 13 depthwise-separable blocks (3x3 depthwise + 1x1), each
    conv followed by BatchNorm and ReLU; channels scaled by ``width`` (0.25, 0.5, 0.75, 1.0)."""
    b = ImageNetBuilder(f"mobilenet_v1_{width:g}", seed=seed, batch=batch)
    x = b.input("input", (3, image, image))
    x = b.conv_bn(x, _divisible(32 * width), 3, stride=2, name="features.0")
    blocks = ((64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2), *((512, 1),) * 5, (1024, 2), (1024, 1))
    for i, (c, s) in enumerate(blocks, start=1):
        cin = b.shape(x)[0]
        x = b.conv_bn(x, cin, 3, stride=s, group=cin, name=f"features.{i}.dw")
        x = b.conv_bn(x, _divisible(c * width), 1, pad=0, name=f"features.{i}.pw")
    return b.head(b.flatten(b.global_avgpool(x)), classes, softmax)


def _fire(b: ImageNetBuilder, x: str, squeeze: int, e1: int, e3: int, name: str) -> str:
    s = b.conv_relu(x, squeeze, 1, pad=0, name=f"{name}.squeeze")
    return b.concat([b.conv_relu(s, e1, 1, pad=0, name=f"{name}.expand1x1"),
                     b.conv_relu(s, e3, 3, pad=1, name=f"{name}.expand3x3")])


def squeezenet(batch: int | None = None, *, version: str = "1.0", image: int = 224, classes: int = 1000,
               softmax: bool = True, seed: int = 0) -> onnx.ModelProto:
    """SqueezeNet 1.0 or 1.1: fire modules (1x1 squeeze, then 1x1 and 3x3 expands concatenated),
    ceil-mode max pools, and a 1x1 conv classifier averaged over the frame."""
    b = ImageNetBuilder(f"squeezenet_{version}", seed=seed, batch=batch)
    x = b.input("input", (3, image, image))
    if version == "1.0":
        x = b.maxpool_ceil(b.conv_relu(x, 96, 7, stride=2, pad=0, name="features.0"), 3, 2)
        plan = ((16, 64), (16, 64), (32, 128), "M", (32, 128), (48, 192), (48, 192), (64, 256), "M", (64, 256))
    elif version == "1.1":
        x = b.maxpool_ceil(b.conv_relu(x, 64, 3, stride=2, pad=0, name="features.0"), 3, 2)
        plan = ((16, 64), (16, 64), "M", (32, 128), (32, 128), "M", (48, 192), (48, 192), (64, 256), (64, 256))
    else:
        raise ValueError(f"version must be '1.0' or '1.1', got {version!r}")
    for i, p in enumerate(plan):
        x = b.maxpool_ceil(x, 3, 2) if p == "M" else _fire(b, x, p[0], p[1], p[1], f"features.{i + 3}")
    x = b.conv_relu(b.dropout(x), classes, 1, pad=0, gain=1.0, name="classifier.1")
    y = b.flatten(b.global_avgpool(x))
    return b.model(b.softmax(y) if softmax else y, doc=b.name)


def alexnet(batch: int | None = None, *, image: int = 224, classes: int = 1000, softmax: bool = True,
            seed: int = 0) -> onnx.ModelProto:
    """AlexNet (the single-tower layout): five convs with ReLU and three max pools, then
    dropout-fc4096-ReLU twice and the classifier (its 6x6 adaptive pool is the identity at 224)."""
    b = ImageNetBuilder("alexnet", seed=seed, batch=batch)
    x = b.input("input", (3, image, image))
    x = b.maxpool(b.conv_relu(x, 64, 11, stride=4, pad=2, name="features.0"), 3, 2)
    x = b.maxpool(b.conv_relu(x, 192, 5, pad=2, name="features.3"), 3, 2)
    x = b.conv_relu(x, 384, 3, name="features.6")
    x = b.conv_relu(x, 256, 3, name="features.8")
    x = b.maxpool(b.conv_relu(x, 256, 3, name="features.10"), 3, 2)
    x = b.flatten(x)
    x = b.relu(b.linear(b.dropout(x), 4096, name="classifier.1"))
    x = b.relu(b.linear(b.dropout(x), 4096, name="classifier.4"))
    return b.head(x, classes, softmax, name="classifier.6")


VGG16 = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")


def vgg16(batch: int | None = None, *, image: int = 224, classes: int = 1000, softmax: bool = True,
          seed: int = 0) -> onnx.ModelProto:
    """VGG-16 (configuration D, no BatchNorm): 13 conv3x3-ReLU, five max pools, then
    fc4096-ReLU-dropout twice and the classifier (138 million parameters)."""
    b = ImageNetBuilder("vgg16", seed=seed, batch=batch)
    x = b.input("input", (3, image, image))
    for i, c in enumerate(VGG16):
        x = b.maxpool(x, 2) if c == "M" else b.conv_relu(x, int(c), 3, name=f"features.{i}")
    x = b.flatten(x)
    x = b.dropout(b.relu(b.linear(x, 4096, name="classifier.0")))
    x = b.dropout(b.relu(b.linear(x, 4096, name="classifier.3")))
    return b.head(x, classes, softmax, name="classifier.6")


#: Inception modules: (1x1, 3x3 reduce, 3x3, 5x5 reduce, 5x5, pool projection).
_INCEPTION = {"3a": (64, 96, 128, 16, 32, 32), "3b": (128, 128, 192, 32, 96, 64), "4a": (192, 96, 208, 16, 48, 64),
              "4b": (160, 112, 224, 24, 64, 64), "4c": (128, 128, 256, 24, 64, 64), "4d": (112, 144, 288, 32, 64, 64),
              "4e": (256, 160, 320, 32, 128, 128), "5a": (256, 160, 320, 32, 128, 128),
              "5b": (384, 192, 384, 48, 128, 128)}


def _inception(b: ImageNetBuilder, x: str, name: str) -> str:
    c1, r3, c3, r5, c5, pp = _INCEPTION[name]
    n = f"inception{name}"
    y1 = b.conv_bn(x, c1, 1, pad=0, name=f"{n}.branch1")
    y2 = b.conv_bn(b.conv_bn(x, r3, 1, pad=0, name=f"{n}.branch2.0"), c3, 3, name=f"{n}.branch2.1")
    y3 = b.conv_bn(b.conv_bn(x, r5, 1, pad=0, name=f"{n}.branch3.0"), c5, 5, name=f"{n}.branch3.1")
    y4 = b.conv_bn(b.maxpool_ceil(x, 3, 1, pad=1), pp, 1, pad=0, name=f"{n}.branch4.1")
    return b.concat([y1, y2, y3, y4])


def googlenet(batch: int | None = None, *, image: int = 224, classes: int = 1000, softmax: bool = True,
              seed: int = 0) -> onnx.ModelProto:
    """GoogLeNet (Inception v1, with BatchNorm after every conv, no auxiliary classifiers): the
    stem, nine inception modules with 1x1 / 3x3 / 5x5 / pool branches concatenated, global
    average pooling, dropout and the classifier."""
    b = ImageNetBuilder("googlenet", seed=seed, batch=batch)
    x = b.input("input", (3, image, image))
    x = b.maxpool_ceil(b.conv_bn(x, 64, 7, stride=2, pad=3, name="conv1"), 3, 2)
    x = b.conv_bn(b.conv_bn(x, 64, 1, pad=0, name="conv2"), 192, 3, name="conv3")
    x = b.maxpool_ceil(x, 3, 2)
    for m in ("3a", "3b"):
        x = _inception(b, x, m)
    x = b.maxpool_ceil(x, 3, 2)
    for m in ("4a", "4b", "4c", "4d", "4e"):
        x = _inception(b, x, m)
    x = b.maxpool_ceil(x, 2, 2)
    for m in ("5a", "5b"):
        x = _inception(b, x, m)
    return b.head(b.dropout(b.flatten(b.global_avgpool(x))), classes, softmax)


def resnet34(batch: int | None = None, *, image: int = 224, seed: int = 0) -> onnx.ModelProto:
    """ResNet-34: basic blocks (3, 4, 6, 3)."""
    return resnet(batch, image=image, blocks=(3, 4, 6, 3), seed=seed)


def _bottleneck(b: ImageNetBuilder, x: str, width: int, stride: int, name: str) -> str:
    cout = width * 4
    y = b.conv_bn(x, width, 1, pad=0, name=f"{name}.conv1")
    y = b.conv_bn(y, width, 3, stride=stride, name=f"{name}.conv2")
    y = b.bn(b.conv(y, cout, 1, pad=0, gain=1.0, name=f"{name}.conv3.0"), name=f"{name}.bn3")
    if stride != 1 or b.shape(x)[0] != cout:
        x = b.bn(b.conv(x, cout, 1, stride=stride, pad=0, name=f"{name}.downsample.0"), name=f"{name}.downsample.1")
    return b.relu(b.add(y, x))


def resnet50(batch: int | None = None, *, image: int = 224, classes: int = 1000, softmax: bool = False,
             seed: int = 0) -> onnx.ModelProto:
    """ResNet-50 (v1.5: the stride on the 3x3 conv of each bottleneck): bottleneck blocks
    (3, 4, 6, 3) of widths 64-512 expanded 4x (25.6 million parameters)."""
    b = ImageNetBuilder("resnet50", seed=seed, batch=batch)
    x = b.input("input", (3, image, image))
    x = b.maxpool(b.relu(b.bn(b.conv(x, 64, 7, stride=2, pad=3, name="conv1"), name="bn1")), 3, 2, pad=1)
    for stage, n in enumerate((3, 4, 6, 3)):
        for i in range(n):
            x = _bottleneck(b, x, 64 * 2**stage, 2 if stage > 0 and i == 0 else 1, f"layer{stage + 1}.{i}")
    return b.head(b.flatten(b.global_avgpool(x)), classes, softmax)


__all__ = ["ImageNetBuilder", "alexnet", "googlenet", "mobilenet_v1", "resnet34", "resnet50", "squeezenet", "vgg16"]
