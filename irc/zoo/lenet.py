"""LeNet-5 for 1x28x28 images, as PyTorch exports the usual MNIST definition."""

from __future__ import annotations

import onnx

from irc.zoo.builder import OnnxBuilder


def lenet5(batch: int | None = None, *, seed: int = 0) -> onnx.ModelProto:
    """conv5x5(6, pad 2)-relu-maxpool-conv5x5(16)-relu-maxpool-flatten-fc120-relu-fc84-relu-fc10 (logits).

    The first conv pads by 2 so that a 28x28 image sees the 32x32 geometry of the original
    LeNet-5 and the classifier gets 16x5x5 = 400 features.
    """
    b = OnnxBuilder("lenet5", seed=seed, batch=batch)
    x = b.input("input", (1, 28, 28))
    x = b.maxpool(b.relu(b.conv(x, 6, 5, pad=2, bias=True, name="conv1")), 2)
    x = b.maxpool(b.relu(b.conv(x, 16, 5, pad=0, bias=True, name="conv2")), 2)
    x = b.flatten(x)
    x = b.relu(b.linear(x, 120, name="fc1"))
    x = b.relu(b.linear(x, 84, name="fc2"))
    return b.model(b.linear(x, 10, gain=1.0, name="fc3"), doc="LeNet-5 (MNIST, 1x28x28)")
