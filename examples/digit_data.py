"""Handwritten digits for the training examples, from what is available offline.

``load(path)`` returns ((x_train, y_train), (x_test, y_test), description) with images as
float32 (n, 1, 28, 28) in [0, 1] and integer labels:

- MNIST, when ``path`` names a local copy: a ``mnist.npz`` with x_train, y_train, x_test,
  y_test (as Keras ships it), or a folder with the four IDX files (``train-images-idx3-ubyte``
  etc., optionally gzipped). No download is attempted.
- Otherwise scikit-learn's bundled 8x8 digits (1,797 real handwritten digits from 43 writers,
  part of the scikit-learn wheel), each pixel drawn as a 3x3 block in the middle of a 28x28
  image so that MNIST-shaped networks run unchanged; split 1,437 train / 360 test with a
  fixed seed. This is a much smaller data set than MNIST: its accuracies are not MNIST's.
"""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np


def _idx(path: Path) -> np.ndarray:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(data, np.uint8, offset=4 + 4 * ndim).reshape(dims)


def _mnist(path: Path):
    if path.is_file():
        d = np.load(path)
        parts = d["x_train"], d["y_train"], d["x_test"], d["y_test"]
    else:
        def find(stem):
            for name in (stem, stem + ".gz"):
                if (path / name).exists():
                    return _idx(path / name)
            raise FileNotFoundError(f"{path} has no {stem}[.gz]")

        parts = (find("train-images-idx3-ubyte"), find("train-labels-idx1-ubyte"),
                 find("t10k-images-idx3-ubyte"), find("t10k-labels-idx1-ubyte"))
    xtr, ytr, xte, yte = parts
    prep = lambda a: (a.astype(np.float32) / 255.0).reshape(len(a), 1, 28, 28)  # noqa: E731
    return (prep(xtr), ytr.astype(np.int64)), (prep(xte), yte.astype(np.int64))


def load(path: str | None = None):
    path = path or os.environ.get("IRC_MNIST")
    if path:
        train, test = _mnist(Path(path))
        return train, test, f"MNIST from {path}: {len(train[0])} training and {len(test[0])} test images"
    from sklearn.datasets import load_digits

    d = load_digits()
    order = np.random.default_rng(0).permutation(len(d.target))
    img = d.images[order].astype(np.float32) / 16.0
    x = np.pad(np.kron(img, np.ones((3, 3), np.float32)), [(0, 0), (2, 2), (2, 2)])[:, None]
    y = d.target[order].astype(np.int64)
    cut = 1437
    desc = ("MNIST is not available offline (no package ships it; pass --mnist PATH for a local copy): "
            f"using scikit-learn's 8x8 handwritten digits instead, upscaled to 28x28, "
            f"{cut} training and {len(y) - cut} test images")
    return (x[:cut], y[:cut]), (x[cut:], y[cut:]), desc
