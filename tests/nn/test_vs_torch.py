"""irc's train steps against PyTorch's (when installed): same initial weights, same batches,
same losses and weights after a few SGD-with-momentum steps."""

from __future__ import annotations

import numpy as np
import pytest

from irc import nn

torch = pytest.importorskip("torch")


def _lenet():
    x = nn.Input((1, 8, 8))
    h = nn.MaxPool2D(2)(nn.Conv2D(4, 3, padding="same", activation="relu")(x))
    h = nn.AvgPool2D(2)(nn.Conv2D(6, 3, strides=1, padding=1, activation="relu")(h))
    return nn.Model(x, nn.Dense(10, activation="softmax")(nn.Flatten()(h)), name="lenet", seed=1)


def _twin(model):
    conv1, conv2, dense = (layer for layer in model.layers if type(layer).__name__ in ("Conv2D", "Dense"))

    def conv(layer):
        w = layer.weights["kernel"]
        c = torch.nn.Conv2d(w.shape[1], w.shape[0], w.shape[2:], padding=1)
        c.weight.data, c.bias.data = torch.from_numpy(w.copy()), torch.from_numpy(layer.weights["bias"].copy())
        return c

    lin = torch.nn.Linear(*dense.weights["kernel"].shape)
    lin.weight.data = torch.from_numpy(dense.weights["kernel"].T.copy())
    lin.bias.data = torch.from_numpy(dense.weights["bias"].copy())
    return torch.nn.Sequential(conv(conv1), torch.nn.ReLU(), torch.nn.MaxPool2d(2), conv(conv2), torch.nn.ReLU(),
                               torch.nn.AvgPool2d(2), torch.nn.Flatten(), lin)


def test_lenet_steps_match_pytorch(digits):
    (x, y), _ = digits
    model = _lenet()
    net = _twin(model)
    model.compile(nn.SGD(0.1, momentum=0.9, weight_decay=1e-3), "cross_entropy")
    opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-3)
    ce = torch.nn.CrossEntropyLoss()
    for step in range(3):
        xb, yb = x[32 * step:32 * step + 32], y[32 * step:32 * step + 32]
        got = model.train_on_batch(xb, yb)["loss"]
        opt.zero_grad()
        loss = ce(net(torch.from_numpy(xb)), torch.from_numpy(yb))
        loss.backward()
        opt.step()
        assert got == pytest.approx(float(loss), rel=1e-5)
    conv1 = net[0].weight.detach().numpy()
    dense = net[7].weight.detach().numpy().T
    np.testing.assert_allclose(model.get_weight("conv2_d.kernel"), conv1, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(model.get_weight("dense.kernel"), dense, rtol=1e-4, atol=1e-6)
