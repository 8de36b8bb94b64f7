"""Training with irc.nn: optimizer steps against a numpy reimplementation, fit on real digits,
ONNX export checked with onnxruntime, checkpoints that resume bit for bit, fine-tuning an
imported ONNX model, and the errors bad data gives."""

from __future__ import annotations

import numpy as np
import pytest

from irc import nn
from irc.errors import InputError
from tests.support.oracle import LENET, ort_run

# ---------------------------------------------------------------------------- numpy reference


def _np_grads(ws, x, y):
    """Loss and gradients of dense(relu) -> dense -> softmax cross-entropy, in float64."""
    w1, b1, w2, b2 = (w.astype(np.float64) for w in ws)
    h = np.maximum(x @ w1 + b1, 0)
    z = h @ w2 + b2
    z = z - z.max(axis=1, keepdims=True)
    p = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    loss = -(y * np.log(p)).sum(axis=1).mean()
    dz = (p - y) / len(x)
    dh = (dz @ w2.T) * (h > 0)
    return loss, [x.T @ dh, dh.sum(0), h.T @ dz, dz.sum(0)]


def _mlp(seed=0):
    return nn.Sequential([nn.Dense(16, activation="relu"), nn.Dense(10, activation="softmax")],
                         input_shape=(64,), seed=seed)


def _keys(m):
    return ["dense.kernel", "dense.bias", "dense_1.kernel", "dense_1.bias"]


@pytest.mark.parametrize("opt", ["sgd", "sgd_momentum", "nesterov_wd", "adam", "adam_wd"])
def test_optimizer_steps_match_numpy(opt, digits):
    (x, y), _ = digits
    x = x.reshape(len(x), 64)[:32].astype(np.float64)
    onehot = np.eye(10)[y[:32]]
    make = {
        "sgd": lambda: nn.SGD(0.5),
        "sgd_momentum": lambda: nn.SGD(0.2, momentum=0.9),
        "nesterov_wd": lambda: nn.SGD(0.2, momentum=0.8, nesterov=True, weight_decay=1e-2),
        "adam": lambda: nn.Adam(0.01),
        "adam_wd": lambda: nn.Adam(0.01, beta_1=0.8, beta_2=0.99, weight_decay=1e-2),
    }[opt]
    model = _mlp()
    model.compile(make(), "cross_entropy")
    ws = [model.get_weight(k).astype(np.float64) for k in _keys(model)]
    o = model.optimizer
    state = [np.zeros_like(w) for w in ws], [np.zeros_like(w) for w in ws]
    for t in range(1, 4):
        got = model.train_on_batch(x.astype(np.float32), y[:32])
        loss, grads = _np_grads(ws, x, onehot)
        np.testing.assert_allclose(got["loss"], loss, rtol=1e-5)
        for i, g in enumerate(grads):
            g = g + o.weight_decay * ws[i]
            if isinstance(o, nn.SGD):
                if o.momentum:
                    state[0][i] = o.momentum * state[0][i] + g
                    g = g + o.momentum * state[0][i] if o.nesterov else state[0][i]
                ws[i] = ws[i] - o.learning_rate * g
            else:
                state[0][i] = o.beta_1 * state[0][i] + (1 - o.beta_1) * g
                state[1][i] = o.beta_2 * state[1][i] + (1 - o.beta_2) * g * g
                mhat = state[0][i] / (1 - o.beta_1 ** t)
                vhat = state[1][i] / (1 - o.beta_2 ** t)
                ws[i] = ws[i] - o.learning_rate * mhat / (np.sqrt(vhat) + o.epsilon)
    after = model.get_weights()
    for k, w in zip(_keys(model), ws):
        np.testing.assert_allclose(after[k], w, rtol=2e-4, atol=2e-6, err_msg=k)


def test_learning_rate_schedule_is_applied(digits):
    (x, y), _ = digits
    x = x.reshape(len(x), 64)[:20]
    a, b = _mlp(), _mlp()
    a.compile(nn.SGD(0.4), "cross_entropy")
    b.compile(nn.SGD(0.8, schedule=lambda epoch, step, lr: lr / 2), "cross_entropy")
    a.train_on_batch(x, y[:20])
    b.train_on_batch(x, y[:20])
    for k in _keys(a):
        np.testing.assert_allclose(a.get_weights()[k], b.get_weights()[k], rtol=1e-6)
    assert nn.StepDecay(0.5, every=2)(epoch=3, step=0, lr=1.0) == 0.5


# ---------------------------------------------------------------------------- fit on digits


def test_fit_mlp_learns_digits(digits):
    (x, y), (xv, yv) = digits
    model = nn.Sequential([nn.Flatten(), nn.Dense(64, activation="relu"), nn.Dropout(0.1),
                           nn.Dense(10, activation="softmax")], input_shape=(1, 8, 8))
    model.compile(nn.SGD(0.1, momentum=0.9), "cross_entropy", metrics=["accuracy"])
    h = model.fit(x, y, batch_size=32, epochs=8, validation_data=(xv, yv), seed=1, verbose=0)
    assert h["loss"][-1] < 0.5 * h["loss"][0]
    # Stated target: >= 95% of the 297 held-out digits after 8 epochs.
    assert h["val_accuracy"][-1] >= 0.95, h.history
    assert model.evaluate(xv, yv)["accuracy"] == pytest.approx(h["val_accuracy"][-1])
    assert len(h["time"]) == 8 and all(t > 0 for t in h["time"])


def test_fit_cnn_with_batchnorm_learns_digits(digits):
    (x, y), (xv, yv) = digits
    inp = nn.Input((1, 8, 8))
    h = nn.Conv2D(8, 3, padding="same", use_bias=False)(inp)
    h = nn.ReLU()(nn.BatchNorm()(h))
    h = nn.MaxPool2D(2)(h)
    h = nn.Flatten()(h)
    out = nn.Dense(10, activation="softmax")(h)
    model = nn.Model(inp, out, name="cnn")
    model.compile(nn.Adam(0.01), "cross_entropy", metrics=["accuracy"])
    hist = model.fit(x, y, batch_size=50, epochs=4, validation_data=(xv, yv), verbose=0)
    assert hist["loss"][-1] < hist["loss"][0]
    assert hist["val_accuracy"][-1] >= 0.9, hist.history
    # Training moved the batch-norm statistics away from their initial 0 and 1.
    assert np.abs(model.get_weight("batch_norm.moving_mean")).max() > 1e-3


# ---------------------------------------------------------------------------- ONNX export


def _zoo_model():
    """Every layer kind once (two branches joined by Concat and Add)."""
    inp = nn.Input((1, 8, 8))
    a = nn.Conv2D(4, 3, padding="same", activation="relu")(inp)
    a = nn.BatchNorm()(a)
    b = nn.Conv2D(4, 3, strides=1, padding=1, groups=1)(inp)
    b = nn.LeakyReLU(0.2)(b)
    s = nn.Add()([a, b])
    c = nn.Concat(axis=1)([s, a])
    p = nn.MaxPool2D(2)(c)
    q = nn.AvgPool2D(2)(c)
    g = nn.GlobalAvgPool2D()(c)
    f = nn.Concat()([nn.Flatten()(p), nn.Flatten()(q), g])
    f = nn.Dropout(0.2)(nn.Dense(32, activation="tanh")(f))
    f = nn.Sigmoid()(nn.Dense(16)(f))
    f = nn.Reshape((4, 4))(f)
    out = nn.Dense(10, activation="softmax")(nn.Flatten()(f))
    return nn.Model(inp, out, name="zoo", seed=3)


def test_save_runs_in_onnxruntime_with_the_same_outputs(digits, tmp_path):
    (x, y), _ = digits
    model = _zoo_model()
    model.compile(nn.SGD(0.05, momentum=0.9), "cross_entropy", metrics=["accuracy"])
    model.fit(x[:200], y[:200], batch_size=40, epochs=1, verbose=0)
    path = tmp_path / "zoo.onnx"
    model.save(path)
    for n in (1, 7):  # the batch axis is dynamic
        want = model.predict(x[:n])
        got = ort_run(path, {"input": x[:n]})[0]
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)


# ---------------------------------------------------------------------------- checkpoints


def test_checkpoint_resumes_bit_identically(digits, tmp_path):
    (x, y), _ = digits
    x, y = x[:230], y[:230]  # 230 = 4 batches of 50 and one of 30: two compiled steps

    def make():
        m = nn.Sequential([nn.Conv2D(4, 3, activation="relu"), nn.BatchNorm(), nn.Flatten(), nn.Dropout(0.3),
                           nn.Dense(10, activation="softmax")], input_shape=(1, 8, 8), seed=5)
        m.compile(nn.Adam(0.01, schedule=nn.ExponentialDecay(0.5, steps=4)), "cross_entropy", metrics=["accuracy"])
        return m

    straight = make()
    straight.fit(x, y, batch_size=50, epochs=3, seed=11, verbose=0)

    first = make()
    first.fit(x, y, batch_size=50, epochs=1, seed=11, verbose=0)
    first.save_checkpoint(tmp_path / "ckpt.npz")
    resumed = nn.load_checkpoint(tmp_path / "ckpt.npz")
    assert resumed.epoch == 1 and resumed.step_count == 5
    resumed.fit(x, y, batch_size=50, epochs=2, verbose=0)

    assert resumed.history["loss"] == straight.history["loss"]
    for k, w in straight.get_weights().items():
        assert np.array_equal(resumed.get_weights()[k], w), k
    for k, v in straight.opt_state.items():
        assert np.array_equal(resumed.opt_state[k], v), k


def test_checkpoint_is_written_atomically(tmp_path, digits):
    model = _mlp()
    path = tmp_path / "c.npz"
    model.save_checkpoint(path)
    assert [p.name for p in tmp_path.iterdir()] == ["c.npz"]
    loaded = nn.load_checkpoint(path)
    assert loaded.loss is None
    for k, w in model.get_weights().items():
        assert np.array_equal(loaded.get_weight(k), w)
    with pytest.raises(InputError, match="not an irc checkpoint"):
        (tmp_path / "bad.npz").write_bytes(b"nonsense")
        nn.load_checkpoint(tmp_path / "bad.npz")


# ---------------------------------------------------------------------------- fine-tuning ONNX


@pytest.mark.slow
def test_imported_onnx_model_can_be_fine_tuned(digits, tmp_path):
    (x, y), (xv, yv) = digits

    def up(a):  # 8x8 digits drawn at 24x24 in the middle of LeNet's 28x28 input
        return np.pad(np.kron(a, np.ones((1, 1, 3, 3), np.float32)), [(0, 0), (0, 0), (2, 2), (2, 2)])

    x, xv = up(x[:400]), up(xv[:100])
    model = nn.GraphModel(LENET)
    assert "input" in model.input_names and len(model.trainable_names) == 10
    model.compile(nn.Adam(0.003), nn.CrossEntropy(from_logits=True), metrics=["accuracy"])
    before = model.evaluate(xv, yv[:100])
    model.fit(x, y[:400], batch_size=50, epochs=3, verbose=0)
    after = model.evaluate(xv, yv[:100])
    assert after["loss"] < before["loss"]
    assert after["accuracy"] >= 0.8, (before, after)
    path = tmp_path / "tuned.onnx"
    model.save(path)
    np.testing.assert_allclose(ort_run(path, {"input": xv[:5]})[0], model.predict(xv[:5]), rtol=1e-4, atol=1e-5)


# ---------------------------------------------------------------------------- bad input


def test_bad_data_is_named(digits):
    (x, y), _ = digits
    model = nn.Sequential([nn.Flatten(), nn.Dense(10, activation="softmax")], input_shape=(1, 8, 8))
    with pytest.raises(InputError, match="not compiled"):
        model.fit(x, y)
    model.compile("sgd", "cross_entropy")
    with pytest.raises(InputError, match=r"class labels must lie in \[0, 10\).*from 0 to 12"):
        model.fit(x[:20], np.r_[y[:19], 12], verbose=0)
    with pytest.raises(InputError, match=r"targets have sample shape \[3\]; the model's output has \[10\]"):
        model.fit(x[:20], np.zeros((20, 3)), verbose=0)
    with pytest.raises(InputError, match="20 samples of x but 19 targets"):
        model.fit(x[:20], y[:19], verbose=0)
    with pytest.raises(InputError, match=r"input 'input' takes samples of shape \[1, 8, 8\].*\[20, 64\]"):
        model.fit(x[:20].reshape(20, 64), y[:20], verbose=0)
    with pytest.raises(InputError, match="validation y: 5 samples of x but 4 targets"):
        model.fit(x[:20], y[:20], validation_data=(x[:5], y[:4]), verbose=0)


def test_nan_loss_stops_with_epoch_and_step(digits):
    (x, y), _ = digits
    x = x[:64].copy()
    x[40, 0, 3, 3] = np.nan  # in the third batch of 16
    model = nn.Sequential([nn.Flatten(), nn.Dense(10, activation="softmax")], input_shape=(1, 8, 8))
    model.compile("sgd", "cross_entropy")
    with pytest.raises(nn.TrainingError, match=r"loss is nan at epoch 1, step 3"):
        model.fit(x, y[:64], batch_size=16, shuffle=False, verbose=0)


def test_graph_model_checkpoint_and_fixed_batch_graph(digits, tmp_path):
    (x, y), _ = digits
    base = nn.Sequential([nn.Flatten(), nn.Dense(16, activation="relu"), nn.Dense(10, activation="softmax")],
                         input_shape=(1, 8, 8), seed=7)
    src = tmp_path / "base.onnx"
    base.save(src)
    model = nn.GraphModel(str(src))
    assert model.fixed_batch is None and model.input_shapes == [(1, 8, 8)]
    model.compile(nn.Adam(0.01), "cross_entropy", metrics=["accuracy"])
    model.fit(x[:90], y[:90], batch_size=30, epochs=1, verbose=0)
    model.save_checkpoint(tmp_path / "g.npz")
    again = nn.load_checkpoint(tmp_path / "g.npz")
    for m in (model, again):
        m.fit(x[:90], y[:90], batch_size=30, epochs=1, verbose=0)
    assert again.history["loss"] == model.history["loss"]
    # An irc Graph traced at batch 30 whose nodes let the batch vary trains any batch size
    # (tests/nn/test_user_defects.py covers graphs that tie their batch).
    free = nn.GraphModel(base.inference_graph(30))
    assert free.fixed_batch is None
    free.compile("sgd", "cross_entropy")
    free.fit(x[:100], y[:100], batch_size=30, epochs=1, verbose=0)
    assert free.step_count == 4
