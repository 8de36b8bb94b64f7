"""A VGG-style network for 3x32x32 (CIFAR) images."""

from __future__ import annotations

from collections.abc import Sequence

import onnx

from irc.zoo.builder import OnnxBuilder

#: Channels of each conv3x3-BN-ReLU, "M" for a 2x2 max pool.
CIFAR_CFG = (32, 32, "M", 64, 64, "M", 128, 128, "M")


def vgg_cifar(batch: int | None = None, *, cfg: Sequence[int | str] = CIFAR_CFG, width: float = 1.0,
              hidden: int = 128, classes: int = 10, image: int = 32, flatten: str = "flatten",
              seed: int = 0) -> onnx.ModelProto:
    """conv3x3-BN-ReLU stacks with max pools (``cfg``, channels scaled by ``width``), then a
    classifier fc(hidden)-ReLU-fc(classes). ``flatten="view"`` flattens as PyTorch exports
    ``x.view(x.size(0), -1)`` (Shape/Gather/Unsqueeze/Concat/Reshape, shape arithmetic an importer
    must fold) instead of one Flatten node."""
    b = OnnxBuilder("vgg_cifar", seed=seed, batch=batch)
    x = b.input("input", (3, image, image))
    for i, c in enumerate(cfg):
        if c == "M":
            x = b.maxpool(x, 2)
        else:
            x = b.conv_bn(x, max(1, round(int(c) * width)), 3, name=f"features.{i}")
    if flatten not in ("flatten", "view"):
        raise ValueError(f"flatten must be 'flatten' or 'view', got {flatten!r}")
    x = b.view_flatten(x) if flatten == "view" else b.flatten(x)
    x = b.relu(b.linear(x, max(1, round(hidden * width)), name="classifier.0"))
    return b.model(b.linear(x, classes, gain=1.0, name="classifier.2"), doc=f"VGG-style CIFAR cfg={list(cfg)}")
