"""Normalizations and softmax: batch_norm (inference form), instance_norm, layer_norm, lrn,
softmax and log_softmax.

The normalizations compute in float32 at least (half-precision inputs are widened, as ONNX's
stash_type=1 says) and give the input's element type back. The softmaxes compute in the input's
own type, as ONNX's reference implementation does (its half-precision attention cases agree to the
last bit only then), and subtract the maximum first so that exp never overflows.
"""

from __future__ import annotations

import numpy as np

from irc.errors import ShapeError
from irc.ir.ops import costs
from irc.ir.ops.conv import accumulator
from irc.ir.ops.linalg import broadcasts_to
from irc.ir.ops.registry import Attr, Trait, defop, expect_float, norm_axis, same_dtype
from irc.ir.types import TensorType


def _per_channel(x: TensorType, *params: tuple[str, TensorType]) -> None:
    """Each named parameter must be a vector with one value per channel (axis 1) of x."""
    for what, p in params:
        if p.shape != (x.shape[1],):
            raise ShapeError(f"{what} {p} must have shape [{x.shape[1]}] (one value per channel of x {x})")


def _channel_view(a: np.ndarray, rank: int, acc) -> np.ndarray:
    return a.astype(acc, copy=False).reshape(a.shape[0], *(1,) * (rank - 2))


@defop("batch_norm", ("x", "scale", "bias", "mean", "var"), {"epsilon": Attr("float", 1e-5)},
       traits=(Trait.NORM, Trait.BATCH_FREE))
class BatchNorm:
    """Inference-mode batch normalization over axis 1 of x (N, C, ...):
    y = (x - mean) / sqrt(var + epsilon) * scale + bias, with per-channel running statistics."""

    def infer(x, scale, bias, mean, var, *, epsilon):
        expect_float(x)
        same_dtype(x, scale, bias, mean, var)
        if x.rank < 2:
            raise ShapeError(f"input must be (N, C, ...) of rank >= 2, got {x}")
        _per_channel(x, ("scale", scale), ("bias", bias), ("mean", mean), ("var", var))
        return x

    def reference(x, scale, bias, mean, var, *, epsilon):
        acc = accumulator(x.dtype)
        s, b, m, v = (_channel_view(a, x.ndim, acc) for a in (scale, bias, mean, var))
        y = (x.astype(acc, copy=False) - m) / np.sqrt(v + acc.type(epsilon)) * s + b
        return y.astype(x.dtype, copy=False)

    # Scale and shift per element (the statistics are known at inference).
    cost = costs.per_output_times(2)


# Per element: mean, subtract, square, accumulate, divide, scale, shift, plus one for the
# variance's reciprocal square root over the group.
_STANDARDIZE_FLOPS = 8


def _standardize(x: np.ndarray, axes: tuple[int, ...], epsilon: float) -> np.ndarray:
    """(x - mean) / sqrt(var + epsilon) over ``axes``, in float32 or wider."""
    acc = accumulator(x.dtype)
    xa = x.astype(acc, copy=False)
    mean = xa.mean(axis=axes, keepdims=True)
    d = xa - mean
    var = (d * d).mean(axis=axes, keepdims=True)
    return d / np.sqrt(var + acc.type(epsilon))


@defop("instance_norm", ("x", "scale", "bias"), {"epsilon": Attr("float", 1e-5)}, traits=(Trait.NORM,))
class InstanceNorm:
    """Each (sample, channel) normalized over its spatial axes, then y = x_hat * scale + bias
    with per-channel scale and bias."""

    def infer(x, scale, bias, *, epsilon):
        expect_float(x)
        same_dtype(x, scale, bias)
        if x.rank < 3:
            raise ShapeError(f"input must be (N, C, spatial...) with at least one spatial axis, got {x}")
        _per_channel(x, ("scale", scale), ("bias", bias))
        return x

    def reference(x, scale, bias, *, epsilon):
        acc = accumulator(x.dtype)
        y = _standardize(x, tuple(range(2, x.ndim)), epsilon)
        y = y * _channel_view(scale, x.ndim, acc) + _channel_view(bias, x.ndim, acc)
        return y.astype(x.dtype, copy=False)

    cost = costs.per_output_times(_STANDARDIZE_FLOPS)


@defop("layer_norm", ("x", "scale", "bias?"), {"axis": Attr("int", -1), "epsilon": Attr("float", 1e-5)},
       traits=(Trait.NORM,))
class LayerNorm:
    """x normalized over axes [axis, rank), then y = x_hat * scale (+ bias); scale and bias
    broadcast one way to x (ONNX LayerNormalization's first output)."""

    def resolve(x, scale, bias=None, *, axis, epsilon):
        return {"axis": norm_axis(axis, x.rank), "epsilon": epsilon}

    def infer(x, scale, bias=None, *, axis, epsilon):
        expect_float(x)
        same_dtype(x, scale, *([bias] if bias is not None else []))
        if x.rank == 0:
            raise ShapeError(f"input must have rank >= 1, got {x}")
        norm_axis(axis, x.rank)
        for what, p in (("scale", scale), ("bias", bias)):
            if p is not None and not broadcasts_to(p.shape, x.shape):
                raise ShapeError(f"{what} {p} must broadcast to x {x} (usually shape {list(x.shape[axis:])})")
        return x

    def reference(x, scale, bias=None, *, axis, epsilon):
        acc = accumulator(x.dtype)
        y = _standardize(x, tuple(range(axis, x.ndim)), epsilon) * scale.astype(acc, copy=False)
        if bias is not None:
            y = y + bias.astype(acc, copy=False)
        return y.astype(x.dtype, copy=False)

    cost = costs.per_output_times(_STANDARDIZE_FLOPS)


@defop(
    "lrn",
    ("x",),
    {"size": Attr("int"), "alpha": Attr("float", 1e-4), "beta": Attr("float", 0.75), "bias": Attr("float", 1.0)},
    traits=(Trait.NORM,),
    no_grad="local response normalization has no gradient rule; use batch normalization when training",
)
class LRN:
    """Local response normalization across channels (AlexNet): y = x / (bias + alpha/size * S)**beta,
    S the sum of squares over channels [c - floor((size-1)/2), c + ceil((size-1)/2)]."""

    def infer(x, *, size, alpha, beta, bias):
        expect_float(x)
        if x.rank < 3:
            raise ShapeError(f"input must be (N, C, spatial...) of rank >= 3, got {x}")
        if size < 1:
            raise ShapeError(f"size must be >= 1, got {size}")
        return x

    def reference(x, *, size, alpha, beta, bias):
        acc = accumulator(x.dtype)
        xa = x.astype(acc, copy=False)
        lo = (size - 1) // 2
        sq = np.pad(xa * xa, [(0, 0), (lo, size - 1 - lo)] + [(0, 0)] * (x.ndim - 2))
        # Window sums along the channel axis as a difference of prefix sums.
        cs = np.cumsum(sq, axis=1, dtype=np.float64)
        cs = np.concatenate([np.zeros_like(cs[:, :1]), cs], axis=1)
        ssum = (cs[:, size:] - cs[:, :-size]).astype(acc)
        y = xa / (acc.type(bias) + acc.type(alpha / size) * ssum) ** acc.type(beta)
        return y.astype(x.dtype, copy=False)

    def cost(n):
        """3 per element plus one per window element."""
        return costs.Cost(0, costs.out_size(n) * (3 + int(n.attrs.get("size", 1))))


def _softmax_resolve(x, *, axis):
    return {"axis": norm_axis(axis, x.rank)}


def _softmax_infer(x, *, axis):
    expect_float(x)
    if x.rank == 0:
        raise ShapeError(f"input must have rank >= 1, got {x}")
    norm_axis(axis, x.rank)
    return x


@defop("softmax", ("x",), {"axis": Attr("int", -1)}, traits=(Trait.NORM, Trait.BATCH_FREE))
class Softmax:
    """exp(x) / sum(exp(x)) along one axis (ONNX opset >= 13 semantics)."""

    resolve = _softmax_resolve
    infer = _softmax_infer

    def reference(x, *, axis):
        e = np.exp(x - x.max(axis=axis, keepdims=True))
        return e / e.sum(axis=axis, keepdims=True)

    cost = costs.per_output_times(5)  # max, subtract, exp, sum, divide


@defop("log_softmax", ("x",), {"axis": Attr("int", -1)}, traits=(Trait.NORM, Trait.BATCH_FREE))
class LogSoftmax:
    """log(softmax(x)) along one axis, computed as (x - max) - log(sum(exp(x - max)))."""

    resolve = _softmax_resolve
    infer = _softmax_infer

    def reference(x, *, axis):
        d = x - x.max(axis=axis, keepdims=True)
        return d - np.log(np.exp(d).sum(axis=axis, keepdims=True))

    cost = costs.per_output_times(5)  # max, subtract, exp, sum, log
