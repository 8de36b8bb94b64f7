"""Real data for the training tests: scikit-learn's bundled 8x8 handwritten digits (1,797
samples, no download), shuffled once with a fixed seed and split 1,500 / 297."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture(scope="session")
def digits():
    datasets = pytest.importorskip("sklearn.datasets")
    d = datasets.load_digits()
    order = np.random.default_rng(0).permutation(len(d.target))
    x = (d.images[order] / 16.0).astype(np.float32)[:, None]  # (n, 1, 8, 8)
    y = d.target[order].astype(np.int64)
    return (x[:1500], y[:1500]), (x[1500:], y[1500:])
