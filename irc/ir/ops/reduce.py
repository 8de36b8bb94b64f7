"""Reductions over a set of axes: sum, mean, max, min, prod, L1/L2 norms, sum of squares,
log-sum and log-sum-exp.

``axes`` is always explicit and sorted; ONNX's "no axes means all axes" (and its
``noop_with_empty_axes`` escape) is resolved at import. Float sums accumulate in f64 in the
reference, so a backend's f32 accumulation is compared against the exact value. Integer sums
wrap in the input type, integer means truncate toward zero, as onnxruntime does.
"""

from __future__ import annotations

import ml_dtypes
import numpy as np

from irc.errors import ShapeError
from irc.ir.ops import costs
from irc.ir.ops.registry import Attr, Trait, defop, norm_axes
from irc.ir.types import DType

_ATTRS = {"axes": Attr("ints"), "keepdims": Attr("int", 1, (0, 1))}


def _resolve(x, *, axes, keepdims):
    return {"axes": tuple(sorted(norm_axes(axes, x.rank))), "keepdims": keepdims}


def _infer(floats_only: bool, empty_ok: bool, bool_ok: bool):
    def infer(x, *, axes, keepdims):
        if (x.dtype is DType.bool and not bool_ok) or (floats_only and not x.dtype.is_float):
            raise ShapeError(f"input must be {'a float' if floats_only else 'a numeric'} tensor, got {x}")
        if not empty_ok and any(x.shape[a] == 0 for a in axes):
            raise ShapeError(f"reduction over an empty axis of {x} has no value")
        shape = tuple(1 if i in axes else d for i, d in enumerate(x.shape) if keepdims or i not in axes)
        return x.with_shape(shape)

    return infer


def _wide(x: np.ndarray) -> np.ndarray:
    """x in the type its reference accumulates in: f64 for floats, the type itself for ints."""
    return x.astype(np.float64) if x.dtype.kind == "f" or x.dtype == ml_dtypes.bfloat16 else x


def _reduction(name: str, fn, doc: str, *, floats_only=False, empty_ok=True, bool_ok=False, cost=costs.per_input):
    def reference(x, *, axes, keepdims):
        out = fn(_wide(x), axes)
        out = np.asarray(out)
        if keepdims:
            out = np.expand_dims(out, axes)
        return out.astype(x.dtype)

    defop(name, ("x",), _ATTRS, traits=(Trait.REDUCE,))(
        type(name, (), {"__doc__": doc, "resolve": _resolve, "infer": _infer(floats_only, empty_ok, bool_ok),
                        "reference": reference, "cost": cost}))


def _sum(x, axes):
    return np.sum(x, axis=axes, dtype=x.dtype)


def _mean(x, axes):
    count = int(np.prod([x.shape[a] for a in axes]))
    if x.dtype.kind == "f":
        return np.sum(x, axis=axes) / count
    s = np.sum(x.astype(np.int64), axis=axes)
    return (np.abs(s) // count) * np.sign(s)


def _extreme(dt: np.dtype, low: bool):
    """The identity of max (low) or min: what a reduction over no elements gives."""
    if dt.kind == "b":
        return not low
    if dt.kind == "f":
        return -np.inf if low else np.inf
    return np.iinfo(dt).min if low else np.iinfo(dt).max


def _sum_square(x, axes):
    return np.sum(x * x, axis=axes, dtype=x.dtype)


_reduction("reduce_sum", _sum, "Sum over ``axes`` (0 for empty axes).")
_reduction("reduce_mean", _mean, "Mean over ``axes``.", empty_ok=False, cost=costs.reduce_mean)
_reduction("reduce_max", lambda x, a: np.max(x, axis=a, initial=_extreme(x.dtype, low=True)),
           "Largest element over ``axes``; NaN wins; over empty axes the type's lowest value (-inf).", bool_ok=True)
_reduction("reduce_min", lambda x, a: np.min(x, axis=a, initial=_extreme(x.dtype, low=False)),
           "Smallest element over ``axes``; NaN wins; over empty axes the type's highest value (inf).", bool_ok=True)
_reduction("reduce_prod", lambda x, a: np.prod(x, axis=a, dtype=x.dtype), "Product over ``axes`` (1 for empty axes).")
_reduction("reduce_l1", lambda x, a: np.sum(np.abs(x), axis=a, dtype=x.dtype), "Sum of absolute values over ``axes``.")
_reduction("reduce_sum_square", _sum_square, "Sum of squares over ``axes``.")
_reduction("reduce_l2", lambda x, a: np.sqrt(np.sum(x * x, axis=a)), "Euclidean norm over ``axes``.",
           floats_only=True)
_reduction("reduce_log_sum", lambda x, a: np.log(np.sum(x, axis=a)), "log of the sum over ``axes``.",
           floats_only=True)
_reduction("reduce_log_sum_exp", lambda x, a: _log_sum_exp(x, a),
           "log(sum(exp(x))) over ``axes``, computed from the maximum so that it does not overflow.",
           floats_only=True)


def _log_sum_exp(x, axes):
    m = np.max(x, axis=axes, keepdims=True, initial=-np.inf)
    m = np.where(np.isfinite(m), m, 0.0)
    with np.errstate(divide="ignore"):
        return np.log(np.sum(np.exp(x - m), axis=axes)) + np.squeeze(m, axis=axes)
