"""Skips and helpers shared by the cuda target's tests: ptxas checks skip without the CUDA toolkit,
GPU tests skip without a GPU and its driver (the reason says which); output comparison, and the
small training run the emulated and GPU tests both check against the CPU target."""

from __future__ import annotations

import functools

import numpy as np
import pytest

from irc.targets.cuda.ptx import ptxas_path

ARCHS = ("sm_70", "sm_80", "sm_90")


@functools.cache
def gpu_count() -> int:
    from irc.targets.cuda.runtime import device_count

    return device_count()


requires_ptxas = pytest.mark.skipif(ptxas_path() is None, reason="ptxas (CUDA toolkit) is not on the PATH")
requires_gpu = pytest.mark.skipif(gpu_count() == 0, reason="no CUDA GPU/driver")


def compare(got, want, rtol, atol, what=""):
    assert len(got) == len(want)
    for i, (a, e) in enumerate(zip(got, want)):
        assert a.shape == e.shape and a.dtype == e.dtype, f"{what} output {i}"
        if e.dtype.kind == "f" or e.dtype.name == "bfloat16":
            np.testing.assert_allclose(a.astype(np.float64), e.astype(np.float64), rtol=rtol, atol=atol,
                                       equal_nan=True, err_msg=f"{what} output {i}")
        else:
            np.testing.assert_array_equal(a, e, err_msg=f"{what} output {i}")


def train_convnet(target: str, **options):
    """Two epochs of a small conv net (conv, relu, max pool, dense, softmax cross-entropy, SGD with
    momentum): its train step holds the backward kernels (conv_transpose, max_pool_grad...)."""
    from irc import nn

    m = nn.Sequential([nn.Conv2D(4, 3, activation="relu"), nn.MaxPool2D(2), nn.Flatten(),
                       nn.Dense(5, activation="softmax")], input_shape=(1, 8, 8), seed=0)
    m.compile(nn.SGD(0.1, momentum=0.9), "cross_entropy", metrics=["accuracy"], target=target, **options)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((8, 1, 8, 8)).astype(np.float32)
    y = rng.integers(0, 5, 8)
    return m.fit(x, y, batch_size=4, epochs=2, verbose=0).history, m
