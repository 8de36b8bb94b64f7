"""Losses and metrics, written with traced tensors so that they become part of the train step.

A loss maps (prediction, target, logits) to a scalar: the mean over the batch. ``logits`` is the
input of the model's final softmax or sigmoid when there is one (or None): cross-entropies then
start from it, which is the fused, numerically stable form (log_softmax, softplus), and the
softmax itself is never computed in the train step.

A metric maps (prediction, target, logits) to the *sum* over the batch of a per-sample value;
fit adds the sums over an epoch and divides by the number of samples.

``prepare_targets(y, out_shape)`` checks the targets a user gives (and turns class labels into
one-hot rows for the cross-entropy) before any step runs, raising InputError with what was
expected.
"""

from __future__ import annotations

import numpy as np

from irc.errors import InputError
from irc.frontend.trace import Tensor


def _per_sample_mean(t: Tensor) -> Tensor:
    return t.mean(axis=tuple(range(1, t.ndim))) if t.ndim > 1 else t


class Loss:
    name = "loss"

    def __call__(self, pred: Tensor, target: Tensor, logits: tuple[Tensor, str] | None) -> Tensor:
        raise NotImplementedError

    def prepare_targets(self, y: np.ndarray, out_shape: tuple[int, ...]) -> np.ndarray:
        """Targets as float32 of the output's shape (InputError otherwise)."""
        y = np.asarray(y)
        if y.shape[1:] != tuple(out_shape):
            raise InputError(f"targets have sample shape {list(y.shape[1:])}; the model's output has "
                             f"{list(out_shape)}")
        if not (np.issubdtype(y.dtype, np.floating) or np.issubdtype(y.dtype, np.integer)
                or y.dtype == np.bool_):
            raise InputError(f"targets must be numbers, got {y.dtype}")
        return np.ascontiguousarray(y, np.float32)

    def config(self) -> dict:
        return {"class": type(self).__name__}


class CrossEntropy(Loss):
    """Soft cross-entropy: mean over the batch of -sum(target * log_softmax(logits)) over the
    last axis. Targets are probability rows, or class labels (ints, shape (batch,) or (batch, 1))
    made one-hot.

    What the model's output is decides the formula. ``from_logits=None`` (the default) looks:
    an output made by a final softmax is probabilities, and the loss starts from that softmax's
    input (stable for any logits; its gradient is softmax - target); an output made by a final
    sigmoid is probabilities too (-sum(target * log(p))); any other output is logits, as every
    classifier exported from PyTorch gives. ``from_logits=True`` or ``False`` says it instead."""

    name = "cross_entropy"

    def __init__(self, from_logits: bool | None = None):
        self.from_logits = from_logits

    def __call__(self, pred, target, logits):
        if self.from_logits:
            z = pred
        elif logits is not None and logits[1] == "softmax":
            z = logits[0]
        elif self.from_logits is None and logits is None:
            z = pred  # no softmax or sigmoid made the output: it is logits
        else:
            z = None
        if z is not None:
            logp = z.tracer.op("log_softmax", z, axis=-1)
        else:
            logp = np.log(np.maximum(pred, 1e-7))
        return -(target * logp).sum(axis=-1).mean()

    def prepare_targets(self, y, out_shape):
        y = np.asarray(y)
        classes = out_shape[-1] if out_shape else 1
        if y.ndim == 1 or (y.ndim == len(out_shape) + 1 and y.shape[1:] == (1,) and classes > 1):
            labels = y.reshape(len(y))
            if not (np.issubdtype(labels.dtype, np.integer) or np.issubdtype(labels.dtype, np.floating)):
                raise InputError(f"class labels must be integers, got {labels.dtype} values like "
                                 f"{', '.join(map(repr, labels[:3].tolist()))}")
            if not np.issubdtype(labels.dtype, np.integer):
                if not np.all(np.equal(np.mod(labels, 1), 0)):
                    raise InputError(f"class labels must be integers, got {labels.dtype} values like {labels[:3]}")
                labels = labels.astype(np.int64)
            if len(labels) and (labels.min() < 0 or labels.max() >= classes):
                raise InputError(f"class labels must lie in [0, {classes}) for a model with {classes} outputs; "
                                 f"got labels from {labels.min()} to {labels.max()}")
            if len(out_shape) != 1:
                raise InputError(f"class labels need a model output of shape (classes,), got {list(out_shape)}")
            onehot = np.zeros((len(labels), classes), np.float32)
            onehot[np.arange(len(labels)), labels] = 1
            return onehot
        return super().prepare_targets(y, out_shape)

    def config(self):
        return {"class": "CrossEntropy", "from_logits": self.from_logits}


class MeanSquaredError(Loss):
    """Mean over the batch (and the sample's elements) of (prediction - target)**2."""

    name = "mse"

    def __call__(self, pred, target, logits):
        d = pred - target
        return (d * d).mean()


class BinaryCrossEntropy(Loss):
    """Mean of -(t log p + (1 - t) log(1 - p)). From the logits z of a final sigmoid (or with
    ``from_logits``): softplus(z) - t*z, exact and stable."""

    name = "binary_cross_entropy"

    def __init__(self, from_logits: bool = False):
        self.from_logits = from_logits

    def __call__(self, pred, target, logits):
        z = pred if self.from_logits else (logits[0] if logits is not None and logits[1] == "sigmoid" else None)
        if z is not None:
            return (z.tracer.op("softplus", z) - target * z).mean()
        p = np.clip(pred, 1e-7, 1 - 1e-7)
        return -(target * np.log(p) + (1.0 - target) * np.log(1.0 - p)).mean()

    def config(self):
        return {"class": "BinaryCrossEntropy", "from_logits": self.from_logits}


class Metric:
    name = "metric"

    def __call__(self, pred: Tensor, target: Tensor, logits) -> Tensor:
        raise NotImplementedError


class Accuracy(Metric):
    """Fraction of samples classified right: argmax of prediction and target agree (several
    classes), or prediction > 0.5 agrees with target > 0.5 (one output)."""

    name = "accuracy"

    def __call__(self, pred, target, logits):
        if pred.shape[-1] == 1 or pred.ndim == 1:
            right = (pred > 0.5) == (target > 0.5)
            return _per_sample_mean(right.astype(np.float32)).sum()
        scores = logits[0] if logits is not None and logits[1] == "softmax" else pred
        right = scores.argmax(axis=-1) == target.argmax(axis=-1)
        return _per_sample_mean(right.astype(np.float32)).sum()


class MeanSquaredErrorMetric(Metric):
    """Mean squared error of each sample, averaged."""

    name = "mse"

    def __call__(self, pred, target, logits):
        d = pred - target
        return _per_sample_mean(d * d).sum()


_LOSSES = {"cross_entropy": CrossEntropy, "categorical_crossentropy": CrossEntropy, "mse": MeanSquaredError,
           "mean_squared_error": MeanSquaredError, "binary_cross_entropy": BinaryCrossEntropy,
           "binary_crossentropy": BinaryCrossEntropy}
_METRICS = {"accuracy": Accuracy, "acc": Accuracy, "mse": MeanSquaredErrorMetric}


def get_loss(loss) -> Loss:
    if isinstance(loss, Loss):
        return loss
    if isinstance(loss, dict):
        cls = {"CrossEntropy": CrossEntropy, "MeanSquaredError": MeanSquaredError,
               "BinaryCrossEntropy": BinaryCrossEntropy}[loss["class"]]
        return cls(**{k: v for k, v in loss.items() if k != "class"})
    if loss in _LOSSES:
        return _LOSSES[loss]()
    raise InputError(f"unknown loss {loss!r} (known: {', '.join(_LOSSES)})")


def get_metric(m) -> Metric:
    if isinstance(m, Metric):
        return m
    if m in _METRICS:
        return _METRICS[m]()
    raise InputError(f"unknown metric {m!r} (known: {', '.join(_METRICS)})")
