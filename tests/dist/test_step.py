"""The split train step (gradient graph + update graph) is the fused one of irc.nn, in one process."""

import numpy as np
import pytest

from irc import nn
from irc.dist.step import Runner, compile_graph, gradient_graph, update_graph
from tests.dist.dist_models import digits


def _model(kind: str):
    if kind == "bn":
        layers = [nn.Dense(24), nn.BatchNorm(), nn.ReLU(), nn.Dense(10, activation="softmax")]
        opt = nn.SGD(0.05, momentum=0.9)
    else:
        layers = [nn.Dense(24, activation="relu"), nn.Dense(10, activation="softmax")]
        opt = nn.Adam(0.01)
    model = nn.Sequential(layers, input_shape=(64,), seed=4)
    model.compile(opt, "cross_entropy", metrics=["accuracy"], target="interp")
    return model


def _split_steps(model, x, y, batch: int) -> dict[str, np.ndarray]:
    """Train through the two graphs, batches in order, as the data-parallel trainer does on one rank."""
    gs = gradient_graph(model, batch)
    grad = Runner(compile_graph(model, gs.graph))
    ug, names = update_graph(model)
    upd = Runner(compile_graph(model, ug))
    state = {k: model.get_weight(k).copy() for k in model.weight_keys()}
    state.update({k: np.array(v, np.float32) for k, v in model.opt_state.items()})
    nm = len(gs.metric_names)
    for s in range(len(x) // batch):
        xb, yb = x[s * batch:(s + 1) * batch], model._targets(y[s * batch:(s + 1) * batch], batch)
        feeds = {model.input_names[0]: xb, "y": yb, "gscale": np.float32(1.0)}
        feeds.update({k: state[k] for k in (*gs.trainable, *gs.stats)})
        out = grad.run(feeds, {})
        grads = {f"grad.{k}": out[1 + nm + i] for i, k in enumerate(gs.trainable)}
        new_stats = {k: out[1 + nm + len(gs.trainable) + i] for i, k in enumerate(gs.stats)}
        feeds = {"lr": np.float32(model.optimizer.lr_at(0, s)), **grads}
        feeds.update({n: state[n] for n in names})
        dest = {i: state[n] for i, n in enumerate(names)}
        upd.run(feeds, dest)
        for k, v in new_stats.items():
            state[k][...] = v
    return state


@pytest.mark.parametrize("kind", ["adam", "bn"])
def test_split_step_trains_like_the_fused_step(kind):
    (x, y), _ = digits(64)
    fused, split = _model(kind), _model(kind)
    fused.fit(x, y, batch_size=16, epochs=1, shuffle=False, verbose=0)
    state = _split_steps(split, x, y, 16)
    for k, w in fused.get_weights().items():
        np.testing.assert_allclose(state[k], w, rtol=1e-5, atol=1e-7, err_msg=k)
    for k, v in fused.opt_state.items():
        np.testing.assert_allclose(state[k], v, rtol=1e-5, atol=1e-7, err_msg=k)


def test_gscale_weights_the_gradients_not_the_loss():
    (x, y), _ = digits(8)
    model = _model("adam")
    gs = gradient_graph(model, 8)
    run = Runner(compile_graph(model, gs.graph))
    feeds = {model.input_names[0]: x, "y": model._targets(y, 8), **{k: model.get_weight(k) for k in gs.trainable}}
    one = run.run({**feeds, "gscale": np.float32(1.0)}, {})
    quarter = run.run({**feeds, "gscale": np.float32(0.25)}, {})
    assert float(one[0]) == pytest.approx(float(quarter[0]), rel=1e-7)
    for a, b in zip(one[2:], quarter[2:]):
        np.testing.assert_allclose(b, a * 0.25, rtol=1e-6, atol=1e-9)


@pytest.mark.slow
def test_split_step_on_the_cpu_target_writes_state_in_place():
    (x, y), _ = digits(64)
    models = []
    for _ in range(2):
        m = nn.Sequential([nn.Dense(24, activation="relu"), nn.Dense(10, activation="softmax")], input_shape=(64,), seed=4)
        m.compile(nn.SGD(0.05, momentum=0.9), "cross_entropy", metrics=["accuracy"], target="cpu", threads=1)
        models.append(m)
    fused, split = models
    fused.fit(x, y, batch_size=16, epochs=1, shuffle=False, verbose=0)
    state = _split_steps(split, x, y, 16)
    for k, w in fused.get_weights().items():
        np.testing.assert_allclose(state[k], w, rtol=1e-5, atol=1e-7, err_msg=k)
