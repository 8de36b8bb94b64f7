"""The train step compiled for the CPU target: the same losses and weights as the interpreter
after a few steps (conv, pools, batch norm, dropout, SGD with momentum and Adam), with the
weights updated in place in the step's own buffers."""

from __future__ import annotations

import numpy as np
import pytest

from irc import nn


def _cnn():
    inp = nn.Input((1, 8, 8))
    h = nn.Conv2D(4, 3, padding="same", use_bias=False)(inp)
    h = nn.ReLU()(nn.BatchNorm()(h))
    a = nn.MaxPool2D(2)(h)
    b = nn.AvgPool2D(2)(h)
    h = nn.Flatten()(nn.Concat(axis=1)([a, b]))
    h = nn.Dropout(0.25)(nn.Dense(16, activation="relu")(h))
    return nn.Model(inp, nn.Dense(10, activation="softmax")(h), name="cnn", seed=2)


def _mlp():
    return nn.Sequential([nn.Flatten(), nn.Dense(32, activation="tanh"), nn.Dense(10, activation="softmax")],
                         input_shape=(1, 8, 8), name="mlp", seed=2)


@pytest.mark.parametrize("make, opt", [pytest.param(_mlp, lambda: nn.SGD(0.1, momentum=0.9, nesterov=True),
                                                    marks=pytest.mark.slow),
                                       (_cnn, lambda: nn.Adam(0.01))])
def test_cpu_train_step_matches_the_interpreter(make, opt, digits):
    (x, y), (xv, yv) = digits
    x, y = x[:120], y[:120]
    results = {}
    for target in ("interp", "cpu"):
        model = make()
        model.compile(opt(), "cross_entropy", metrics=["accuracy"], target=target)
        hist = model.fit(x, y, batch_size=40, epochs=2, seed=4, verbose=0)
        results[target] = (hist["loss"], model.get_weights(), model.predict(xv[:8]))
        if target == "cpu":
            step = model._exes[("step", 40)]
            # Every weight and optimizer state is updated where it lives: nothing double-buffered.
            assert all(step._in_place.values()), step._in_place
    (l_i, w_i, p_i), (l_c, w_c, p_c) = results["interp"], results["cpu"]
    np.testing.assert_allclose(l_c, l_i, rtol=1e-4)
    for k in w_i:
        np.testing.assert_allclose(w_c[k], w_i[k], rtol=1e-3, atol=1e-4, err_msg=k)
    np.testing.assert_allclose(p_c, p_i, rtol=1e-3, atol=1e-5)
