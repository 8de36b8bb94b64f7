"""A multi-layer perceptron for flattened 28x28 images: 784-1024-1024-1024-10, ReLU, softmax."""

from __future__ import annotations

from collections.abc import Sequence

import onnx

from irc.zoo.builder import OnnxBuilder


def mlp(batch: int | None = None, *, sizes: Sequence[int] = (784, 1024, 1024, 1024, 10), seed: int = 0) -> onnx.ModelProto:
    """Linear+ReLU layers of ``sizes`` (the last without ReLU), softmax probabilities out."""
    b = OnnxBuilder("mlp", seed=seed, batch=batch)
    x = b.input("input", (sizes[0],))
    for i, n in enumerate(sizes[1:]):
        last = i == len(sizes) - 2
        x = b.linear(x, n, gain=1.0 if last else 2.0, name=f"fc{i + 1}")
        if not last:
            x = b.relu(x)
    return b.model(b.softmax(x), doc="MLP " + "-".join(map(str, sizes)))
