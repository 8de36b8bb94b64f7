"""ResNet with basic blocks (ResNet-18 and smaller relatives), laid out as torchvision's."""

from __future__ import annotations

from collections.abc import Sequence

import onnx

from irc.zoo.builder import OnnxBuilder


def resnet(batch: int | None = None, *, image: int = 224, width: int = 64, blocks: Sequence[int] = (2, 2, 2, 2),
           classes: int = 1000, stem: str = "imagenet", seed: int = 0) -> onnx.ModelProto:
    """Basic-block ResNet. ``width`` is the first stage's channels (doubled per stage);
    ``stem="imagenet"`` is conv7x7/2 + maxpool3x3/2, ``stem="cifar"`` a single conv3x3/1 for
    small images. Defaults give the real ResNet-18 (11,689,512 trainable parameters)."""
    b = OnnxBuilder("resnet", seed=seed, batch=batch)
    x = b.input("input", (3, image, image))
    if stem == "imagenet":
        x = b.relu(b.bn(b.conv(x, width, 7, stride=2, pad=3, name="conv1"), name="bn1"))
        x = b.maxpool(x, 3, 2, pad=1)
    elif stem == "cifar":
        x = b.relu(b.bn(b.conv(x, width, 3, name="conv1"), name="bn1"))
    else:
        raise ValueError(f"stem must be 'imagenet' or 'cifar', got {stem!r}")
    for stage, n in enumerate(blocks):
        cout = width * 2**stage
        for i in range(n):
            stride = 2 if stage > 0 and i == 0 else 1
            x = _basic_block(b, x, cout, stride, f"layer{stage + 1}.{i}")
    x = b.flatten(b.global_avgpool(x))
    return b.model(b.linear(x, classes, gain=1.0, name="fc"), doc=f"ResNet blocks={list(blocks)} width={width}")


def _basic_block(b: OnnxBuilder, x: str, cout: int, stride: int, name: str) -> str:
    y = b.relu(b.bn(b.conv(x, cout, 3, stride=stride, name=f"{name}.conv1"), name=f"{name}.bn1"))
    y = b.bn(b.conv(y, cout, 3, name=f"{name}.conv2"), name=f"{name}.bn2")
    if stride != 1 or b.shape(x)[0] != cout:
        x = b.bn(b.conv(x, cout, 1, stride=stride, pad=0, name=f"{name}.downsample.0"), name=f"{name}.downsample.1")
    return b.relu(b.add(y, x))


def resnet18(image: int = 224, batch: int | None = None, *, seed: int = 0) -> onnx.ModelProto:
    """The real ResNet-18 (ImageNet stem, 1000 classes) for ``image`` x ``image`` inputs."""
    return resnet(batch, image=image, seed=seed)


def small_resnet(batch: int | None = None, *, image: int = 32, width: int = 8, blocks: Sequence[int] = (1, 1, 1),
                 classes: int = 10, seed: int = 0) -> onnx.ModelProto:
    """A cheap ResNet for tests: CIFAR stem, three stages of one basic block, 8-16-32 channels."""
    return resnet(batch, image=image, width=width, blocks=blocks, classes=classes, stem="cifar", seed=seed)
