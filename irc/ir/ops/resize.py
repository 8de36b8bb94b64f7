"""``resize``: nearest or N-linear resampling of any axes, as ONNX Resize defines it.

Both ``sizes`` (the output shape) and ``scales`` (per axis, the factor ONNX's coordinate
transforms divide by) are explicit on every node: given one, ``resolve`` derives the other the
way ONNX does (sizes = floor(scales * shape), scales = sizes / shape). They can differ from an
exact ratio when a model gave scales, and the transforms see that difference, so both are kept.

Interpolation is separable, one axis at a time in float64, exactly as onnx.reference computes
it. One detail follows that reference where onnxruntime differs: align_corners divides by
scale * length - 1, not by the integer output length - 1; the two agree whenever scales came
from sizes (or give whole lengths).
"""

from __future__ import annotations

import math

import numpy as np

from irc.errors import ShapeError
from irc.ir.ops import costs
from irc.ir.ops.registry import Attr, Trait, defop
from irc.ir.types import DType, TensorType

TRANSFORMS = ("half_pixel", "asymmetric", "align_corners", "pytorch_half_pixel", "tf_half_pixel_for_nearest",
              "half_pixel_symmetric")
NEAREST_MODES = ("round_prefer_floor", "round_prefer_ceil", "floor", "ceil")


def source_coords(transform: str, out_len: int, in_len: int, scale: float) -> np.ndarray:
    """For each output index along one axis, the (fractional) input coordinate it samples."""
    y = np.arange(out_len, dtype=np.float64)
    length = scale * in_len  # the resized length before rounding; ONNX's formulas use it
    if transform == "half_pixel":
        return (y + 0.5) / scale - 0.5
    if transform == "asymmetric":
        return y / scale
    if transform == "align_corners":
        return np.zeros(out_len) if length == 1 else y * (in_len - 1) / (length - 1)
    if transform == "pytorch_half_pixel":
        return np.full(out_len, -0.5) if length == 1 else (y + 0.5) / scale - 0.5
    if transform == "tf_half_pixel_for_nearest":
        return (y + 0.5) / scale
    if transform == "half_pixel_symmetric":
        offset = in_len / 2 * (1 - out_len / length)
        return offset + (y + 0.5) / scale - 0.5
    raise AssertionError(transform)


def _round(x: np.ndarray, nearest_mode: str) -> np.ndarray:
    if nearest_mode == "round_prefer_floor":
        return np.ceil(x - 0.5)
    if nearest_mode == "round_prefer_ceil":
        return np.floor(x + 0.5)
    return np.floor(x) if nearest_mode == "floor" else np.ceil(x)


def _shape(t: np.ndarray, axis: int, rank: int) -> np.ndarray:
    return t.reshape((1,) * axis + (-1,) + (1,) * (rank - axis - 1))


@defop(
    "resize",
    ("x",),
    {
        "mode": Attr("str", "nearest", ("nearest", "linear")),
        "coordinate_transformation_mode": Attr("str", "half_pixel", TRANSFORMS),
        "nearest_mode": Attr("str", "round_prefer_floor", NEAREST_MODES),
        "sizes": Attr("ints", ()),
        "scales": Attr("floats", ()),
    },
    traits=(Trait.RESIZE,),
    no_grad="resize has no gradient rule yet",
)
class Resize:
    """Resample x to shape ``sizes``: output index y along an axis reads input coordinate
    transform(y, scale), rounded by ``nearest_mode`` or linearly interpolated between its two
    neighbours (N-linear over all resized axes; bilinear for NCHW images). Coordinates outside the
    input clamp to its edge."""

    def resolve(x, *, mode, coordinate_transformation_mode, nearest_mode, sizes, scales):
        sizes, scales = tuple(sizes), tuple(scales)
        if not sizes and not scales:
            raise ShapeError("resize needs sizes (the output shape) or scales (one factor per axis)")
        for what, vals in (("sizes", sizes), ("scales", scales)):
            if vals and len(vals) != x.rank:
                raise ShapeError(f"{what} {list(vals)} must have one entry per axis of x {x}")
        if not sizes:
            sizes = tuple(math.floor(s * d) for s, d in zip(scales, x.shape))
        if not scales:
            scales = tuple(o / d if d else 1.0 for o, d in zip(sizes, x.shape))
        return {"mode": mode, "coordinate_transformation_mode": coordinate_transformation_mode,
                "nearest_mode": nearest_mode, "sizes": sizes, "scales": scales}

    def infer(x, *, mode, coordinate_transformation_mode, nearest_mode, sizes, scales):
        if len(sizes) != x.rank or len(scales) != x.rank:
            raise ShapeError(f"sizes {list(sizes)} and scales {list(scales)} must have one entry per axis of x {x}")
        if any(not (s > 0 and math.isfinite(s)) for s in scales):
            raise ShapeError(f"scales {list(scales)} must be positive and finite")
        if any(o < 1 for o in sizes):
            raise ShapeError(f"output shape {list(sizes)} must have every dimension >= 1")
        if mode == "linear" and not x.dtype.is_float:
            raise ShapeError(f"linear resize needs a float input, got {x}")
        if x.dtype is DType.bool and mode != "nearest":
            raise ShapeError(f"input must be numeric, got {x}")
        return TensorType(tuple(sizes), x.dtype)

    def reference(x, *, mode, coordinate_transformation_mode, nearest_mode, sizes, scales):
        y = x if mode == "nearest" else x.astype(np.float64)
        for axis, (out_len, scale) in enumerate(zip(sizes, scales)):
            in_len = y.shape[axis]
            if out_len == in_len and math.isclose(scale, 1.0):
                continue  # identity along this axis, whatever the transform
            src = source_coords(coordinate_transformation_mode, out_len, in_len, scale)
            if mode == "nearest":
                idx = np.clip(_round(src, nearest_mode), 0, in_len - 1).astype(np.intp)
                y = np.take(y, idx, axis=axis)
            else:
                lo = np.floor(src)
                frac = _shape(src - lo, axis, y.ndim)
                i0 = np.clip(lo, 0, in_len - 1).astype(np.intp)
                i1 = np.clip(lo + 1, 0, in_len - 1).astype(np.intp)
                y = np.take(y, i0, axis=axis) * (1 - frac) + np.take(y, i1, axis=axis) * frac
        return np.ascontiguousarray(y.astype(x.dtype, copy=False))

    def cost(n):
        """Zero for nearest; otherwise the interpolation weights' multiply-adds, 2**spatial-dims per
        output element (counted as FLOPs)."""
        if str(n.attrs.get("mode", "nearest")) == "nearest":
            return costs.Cost()
        spatial = max(n.outputs[0].type.rank - 2, 1)
        return costs.Cost(0, costs.out_size(n) * 2**spatial)
