"""What a user trying irc.nn met, one test each: logits from an imported classifier, a NaN step
that must not poison the weights, traced models with a fixed batch and anonymous weights, labels
of shape (n, 1) and of strings, a file that is not a checkpoint, Adam's epsilon, and the training
examples' output."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import irc
from irc import nn
from irc.errors import InputError

ROOT = Path(__file__).resolve().parents[2]


def _logits_model(tmp_path, seed=3) -> str:
    """An ONNX classifier that outputs logits (no softmax), as every PyTorch export does."""
    base = nn.Sequential([nn.Flatten(), nn.Dense(32, activation="relu"), nn.Dense(10)],
                         input_shape=(1, 8, 8), seed=seed)
    path = tmp_path / "logits.onnx"
    base.save(path)
    return str(path)


def test_cross_entropy_on_logits_output_trains(digits, tmp_path):
    (x, y), (xt, yt) = digits
    model = nn.GraphModel(_logits_model(tmp_path))
    model.compile(nn.Adam(0.01), "cross_entropy", metrics=["accuracy"])
    hist = model.fit(x, y, batch_size=50, epochs=3, verbose=0)
    assert min(hist["loss"]) > 0  # a cross-entropy is never negative
    assert hist["loss"][-1] < hist["loss"][0]
    assert model.evaluate(xt, yt)["accuracy"] > 0.9


def test_cross_entropy_reads_logits_exactly(digits, tmp_path):
    """The default reads an output with no softmax as logits: the loss is -mean(log_softmax(z)[y])."""
    (x, y), _ = digits
    model = nn.GraphModel(_logits_model(tmp_path))
    model.compile("sgd", "cross_entropy")
    z = model.predict(x[:40]).astype(np.float64)
    logp = z - z.max(1, keepdims=True)
    logp -= np.log(np.exp(logp).sum(1, keepdims=True))
    want = -logp[np.arange(40), y[:40]].mean()
    assert model.evaluate(x[:40], y[:40], batch_size=40)["loss"] == pytest.approx(want, rel=1e-5)
    # Saying the output is probabilities is still possible (and then this model's loss is wrong).
    probs = nn.GraphModel(_logits_model(tmp_path))
    probs.compile("sgd", nn.CrossEntropy(from_logits=False))
    assert probs.evaluate(x[:40], y[:40], batch_size=40)["loss"] != pytest.approx(want, rel=1e-3)


@pytest.mark.parametrize("target", ["interp", "cpu"])
def test_nan_step_leaves_the_model_usable(digits, target):
    (x, y), _ = digits
    model = nn.Sequential([nn.Flatten(), nn.Dense(10, activation="softmax")], input_shape=(1, 8, 8))
    model.compile(nn.SGD(0.1, momentum=0.9), "cross_entropy", target=target)
    bad = x[:64].copy()
    bad[40, 0, 3, 3] = np.nan  # in the third batch of 16
    with pytest.raises(nn.TrainingError, match="loss is nan at epoch 1, step 3.*were reset to zero"):
        model.fit(bad, y[:64], batch_size=16, shuffle=False, verbose=0)
    assert model.step_count == 2
    # The weights are those after step 2: the same as training on the first two batches only.
    ref = nn.Sequential([nn.Flatten(), nn.Dense(10, activation="softmax")], input_shape=(1, 8, 8))
    ref.compile(nn.SGD(0.1, momentum=0.9), "cross_entropy", target=target)
    ref.fit(x[:32], y[:32], batch_size=16, shuffle=False, verbose=0)
    for k, w in ref.get_weights().items():
        np.testing.assert_array_equal(model.get_weight(k), w)
    # The momentum the NaN gradient reached starts afresh; nothing non-finite is left.
    assert model.opt_state.keys() == ref.opt_state.keys()
    assert all(np.isfinite(v).all() for v in model.opt_state.values())
    hist = model.fit(x[:64], y[:64], batch_size=16, verbose=0)  # clean data trains on
    assert np.isfinite(hist["loss"][-1])


def _traced_mlp(batch: int):
    rng = np.random.default_rng(0)
    w_hidden = (rng.standard_normal((64, 32)) * 0.1).astype(np.float32)
    b_hidden = np.zeros(32, np.float32)
    head = {"w_out": (rng.standard_normal((32, 10)) * 0.1).astype(np.float32)}

    def mlp(x):
        return np.maximum(x @ w_hidden + b_hidden, 0) @ head["w_out"]

    return irc.trace(mlp, np.zeros((batch, 64), np.float32))


def test_traced_weights_are_named_after_their_variables():
    g = _traced_mlp(8)
    assert {v.name for v in g.params} >= {"w_hidden", "b_hidden", "w_out"}


def test_traced_model_runs_any_batch(digits):
    (x, y), (xt, yt) = digits
    x, xt = x.reshape(len(x), 64), xt.reshape(len(xt), 64)
    model = nn.GraphModel(_traced_mlp(8))
    assert model.fixed_batch is None
    assert {"w_hidden", "b_hidden", "w_out"} <= set(model.trainable_names)
    model.compile(nn.Adam(0.01), "cross_entropy", metrics=["accuracy"])
    model.fit(x[:100], y[:100], batch_size=30, epochs=1, verbose=0)
    assert model.step_count == 4  # 30, 30, 30 and the last 10: nothing dropped
    assert model.predict(xt).shape == (len(xt), 10)  # default batch size, partial last batch
    assert 0 <= model.evaluate(xt, yt)["accuracy"] <= 1


def test_fixed_batch_graph_warns_and_defaults_its_batch(digits):
    (x, y), _ = digits
    x = x.reshape(len(x), 64)
    w = np.random.default_rng(1).standard_normal((64, 10)).astype(np.float32) * 0.1

    def tied(v):  # a concat over the batch axis ties the batch size
        both = np.concatenate([v, v], axis=0) @ w
        return both[:30]

    model = nn.GraphModel(irc.trace(tied, np.zeros((30, 64), np.float32)))
    assert model.fixed_batch == 30
    model.compile("sgd", "cross_entropy")
    with pytest.warns(UserWarning, match="last 10 of 100 samples are left out"):
        model.fit(x[:100], y[:100], batch_size=30, verbose=0)
    assert model.step_count == 3
    assert model.predict(x[:60]).shape == (60, 10)  # batch_size defaults to the graph's 30
    with pytest.raises(InputError, match="runs batches of 30 samples only; got 20"):
        model.predict(x[:50])


def test_labels_of_shape_n1_and_strings(digits):
    (x, y), _ = digits
    model = nn.Sequential([nn.Flatten(), nn.Dense(10, activation="softmax")], input_shape=(1, 8, 8))
    model.compile("sgd", "cross_entropy")
    a = model.evaluate(x[:50], y[:50])
    b = model.evaluate(x[:50], y[:50].reshape(50, 1))
    assert a == b
    with pytest.raises(InputError, match="class labels must be integers, got <U"):
        model.fit(x[:3], np.array(["cat", "dog", "cat"]), verbose=0)
    mse = nn.Sequential([nn.Flatten(), nn.Dense(2)], input_shape=(1, 8, 8))
    mse.compile("sgd", "mse")
    with pytest.raises(InputError, match="targets must be numbers"):
        mse.fit(x[:3], np.array([["a", "b"]] * 3), verbose=0)


def test_loading_a_file_that_is_not_a_checkpoint(tmp_path):
    p = tmp_path / "model.onnx"
    p.write_bytes(b"\x08\x07\x12\x03irc" + bytes(200))
    with pytest.raises(InputError, match="is not an irc checkpoint") as e:
        nn.load_checkpoint(p)
    assert "pickle" not in str(e.value)


def test_adam_epsilon_is_pytorchs():
    assert nn.Adam().epsilon == 1e-8


@pytest.mark.slow
def test_training_example_prints_each_epoch_once_and_writes_only_when_asked(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    r = subprocess.run([sys.executable, str(ROOT / "examples" / "train_mnist_mlp.py"), "--epochs", "2",
                        "--target", "interp"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert sum(line.startswith("epoch 1:") for line in lines) == 1
    assert sum(line.startswith("epoch 2:") for line in lines) == 1
    assert list(tmp_path.iterdir()) == []
    assert "give --out" in lines[-1]
