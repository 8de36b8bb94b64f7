"""A residual CNN's train step on the CPU target, whose convolutions run on the GEMM engine
(forward convs with run-time weights on conv_gemm, weight gradients on conv_dot, data gradients
on conv_gemm or conv_transpose_gemm): the same losses and weights as the interpreter."""

from __future__ import annotations

import collections

import numpy as np
import pytest

from irc import nn


def _resnet():
    x = nn.Input((1, 8, 8))
    h = nn.ReLU()(nn.BatchNorm()(nn.Conv2D(8, 3, padding="same", use_bias=False)(x)))
    a = nn.ReLU()(nn.BatchNorm()(nn.Conv2D(16, 3, strides=2, padding=1, use_bias=False)(h)))
    a = nn.BatchNorm()(nn.Conv2D(16, 3, padding=1, groups=2, use_bias=False)(a))
    short = nn.BatchNorm()(nn.Conv2D(16, 1, strides=2, use_bias=False)(h))
    h = nn.ReLU()(nn.Add()([a, short]))
    return nn.Model(x, nn.Dense(10, activation="softmax")(nn.GlobalAvgPool2D()(h)), name="res", seed=3)


@pytest.mark.slow  # compiling the step takes about 20 s
def test_residual_cnn_train_step_matches_the_interpreter(digits):
    (x, y), _ = digits
    results = {}
    for target in ("interp", "cpu"):
        model = _resnet()
        model.compile(nn.SGD(0.1, momentum=0.9), "cross_entropy", target=target)
        losses = [model.train_on_batch(x[16 * i:16 * i + 16], y[16 * i:16 * i + 16])["loss"] for i in range(3)]
        results[target] = (losses, model.get_weights())
        if target == "cpu":
            ops = collections.Counter(n.op for n in model._exes[("step", 16)].exe.graph.nodes)
            assert ops["conv_dot"] == 4 and ops["conv_transpose_gemm"] >= 1 and ops["conv_gemm"] >= 4, ops
    (l_i, w_i), (l_c, w_c) = results["interp"], results["cpu"]
    np.testing.assert_allclose(l_c, l_i, rtol=1e-4)
    for k in w_i:
        np.testing.assert_allclose(w_c[k], w_i[k], rtol=1e-4, atol=1e-5, err_msg=k)
