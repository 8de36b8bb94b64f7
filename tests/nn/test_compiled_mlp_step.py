"""A compiled (cpu) MLP train step: the relu of each Dense layer fused into its forward GEMM
(the relu's gradient reads its output), no transpose stored, SGD's momentum folded into the
weight-gradient GEMMs; and its SGD-with-momentum and Adam steps against PyTorch's (same
weights, same batches: losses to rel 1e-5, weights to rtol 1e-4)."""

from __future__ import annotations

import numpy as np
import pytest

from irc import nn

RTOL = 1e-4


def _mlp(seed: int = 0) -> nn.Model:
    return nn.Sequential([nn.Flatten(), nn.Dense(48, activation="relu"), nn.Dense(40, activation="relu"),
                          nn.Dense(10, activation="softmax")], input_shape=(1, 8, 8), name="mlp", seed=seed)


@pytest.mark.slow
def test_mlp_train_step_fuses_relu_and_stores_no_transpose():
    model = _mlp()
    model.compile(nn.SGD(0.1, momentum=0.9), "cross_entropy", target="cpu")
    model.prepare(16)
    nodes = model._compiled("step", 16).exe.graph.nodes
    ops = [nd.op for nd in nodes]
    assert "transpose" not in ops and "relu" not in ops, ops
    assert sum(nd.op == "gemm_fused" and nd.attrs["act"] == "relu" for nd in nodes) == 2
    # Each weight gradient carries its momentum: beta 0.9 on a gemm with a full C.
    assert sum(nd.op == "gemm" and nd.attrs["beta"] == pytest.approx(0.9) for nd in nodes) == 3


def _torch_twin(model):
    torch = pytest.importorskip("torch")
    mods = [torch.nn.Flatten()]
    dense = [layer for layer in model.layers if type(layer).__name__ == "Dense"]
    for i, layer in enumerate(dense):
        lin = torch.nn.Linear(*layer.weights["kernel"].shape)
        lin.weight.data = torch.from_numpy(layer.weights["kernel"].T.copy())
        lin.bias.data = torch.from_numpy(layer.weights["bias"].copy())
        mods.append(lin)
        if i < len(dense) - 1:
            mods.append(torch.nn.ReLU())
    return torch.nn.Sequential(*mods), dense


@pytest.mark.slow
@pytest.mark.parametrize("opt", ["sgd", "adam"])
def test_compiled_mlp_steps_match_pytorch(digits, opt):
    torch = pytest.importorskip("torch", reason="PyTorch is the independent reference of this test")
    (x, y), _ = digits
    model = _mlp(seed=2)
    net, dense = _torch_twin(model)
    if opt == "sgd":
        model.compile(nn.SGD(0.1, momentum=0.9), "cross_entropy", target="cpu")
        topt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
    else:
        model.compile(nn.Adam(0.01), "cross_entropy", target="cpu")
        topt = torch.optim.Adam(net.parameters(), lr=0.01, eps=model.optimizer.epsilon)
    ce = torch.nn.CrossEntropyLoss()
    for step in range(4):
        xb, yb = x[32 * step:32 * step + 32], y[32 * step:32 * step + 32]
        got = model.train_on_batch(xb, yb)["loss"]
        topt.zero_grad()
        loss = ce(net(torch.from_numpy(xb)), torch.from_numpy(yb))
        loss.backward()
        topt.step()
        assert got == pytest.approx(float(loss.detach()), rel=1e-5)
    lins = [m for m in net if isinstance(m, torch.nn.Linear)]
    for layer, lin in zip(dense, lins):
        np.testing.assert_allclose(model.get_weight(f"{layer.name}.kernel"), lin.weight.detach().numpy().T,
                                   rtol=RTOL, atol=1e-6)
        np.testing.assert_allclose(model.get_weight(f"{layer.name}.bias"), lin.bias.detach().numpy(),
                                   rtol=RTOL, atol=1e-6)
