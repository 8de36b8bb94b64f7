"""The data and model the distributed tests share (imported by the tests and by mpi_worker.py)."""

from __future__ import annotations

import numpy as np

from irc import nn


def digits(n_train: int | None = None):
    """scikit-learn's 8x8 digits as 64 features in [0, 1]: (train, test), test = last 360."""
    from sklearn.datasets import load_digits

    d = load_digits()
    order = np.random.default_rng(0).permutation(len(d.target))
    x = (d.data[order] / 16.0).astype(np.float32)
    y = d.target[order].astype(np.int64)
    cut = 1437
    n = cut if n_train is None else n_train
    return (x[:n], y[:n]), (x[cut:], y[cut:])


def mlp(features: int, hidden: int, optimizer: str, target, **options):
    opt = {"momentum": nn.SGD(0.05, momentum=0.9), "sgd": nn.SGD(0.1), "adam": nn.Adam(0.002)}[optimizer]
    model = nn.Sequential([nn.Dense(hidden, activation="relu"), nn.Dense(10, activation="softmax")],
                          input_shape=(features,), name="digits_mlp", seed=1)
    model.compile(opt, "cross_entropy", metrics=["accuracy"], target=target, **options)
    return model
