"""Ops that move data without arithmetic: reshape, transpose, concat, split, expand, tile, pad.

Shapes are static in irc, so everything ONNX passes as a shape tensor (Reshape's shape, Pad's
pads, Expand's shape, Tile's repeats) is an attribute here, resolved to explicit values: a
reshape names every output dimension, a pad names both ends of every axis. Flatten, Squeeze,
Unsqueeze, SpaceToDepth and DepthToSpace are imported as reshape (and transpose), so a backend
implements one view op instead of five.
"""

from __future__ import annotations

import math

import numpy as np

from irc.errors import ShapeError
from irc.ir.ops import costs
from irc.ir.ops.registry import Attr, Trait, defop, norm_axis, same_dtype
from irc.ir.types import TensorType


@defop("reshape", ("x",), {"shape": Attr("ints")}, traits=(Trait.VIEW, Trait.BATCH_FREE))
class Reshape:
    """The same elements in row-major order under another shape. One dimension may be -1 in a
    node as written; it is resolved to the size that keeps the element count."""

    def resolve(x, *, shape):
        shape = tuple(shape)
        if shape.count(-1) > 1:
            raise ShapeError(f"shape {list(shape)} has more than one -1")
        if any(d < -1 for d in shape):
            raise ShapeError(f"shape {list(shape)} has a negative dimension")
        if -1 in shape:
            known = math.prod(d for d in shape if d != -1)
            if known == 0 or x.size % known:
                raise ShapeError(f"cannot reshape {x} to {list(shape)}: {x.size} elements do not divide")
            shape = tuple(x.size // known if d == -1 else d for d in shape)
        return {"shape": shape}

    def infer(x, *, shape):
        if math.prod(shape) != x.size:
            raise ShapeError(f"cannot reshape {x} ({x.size} elements) to {list(shape)} ({math.prod(shape)} elements)")
        return x.with_shape(shape)

    cost = costs.free  # a view or data movement

    def reference(x, *, shape):
        return x.reshape(shape)


@defop("transpose", ("x",), {"perm": Attr("ints", ())})
class Transpose:
    """Axes permuted: output axis i is input axis perm[i]. No perm reverses the axes."""

    def resolve(x, *, perm):
        return {"perm": tuple(perm) if perm else tuple(range(x.rank))[::-1]}

    def infer(x, *, perm):
        if sorted(perm) != list(range(x.rank)):
            raise ShapeError(f"perm {list(perm)} is not a permutation of the {x.rank} axes of {x}")
        return x.with_shape(tuple(x.shape[p] for p in perm))

    cost = costs.free  # a view or data movement

    def reference(x, *, perm):
        return np.array(np.transpose(x, perm), order="C")  # ascontiguousarray would make a 0-d x 1-d


@defop("concat", ("x*",), {"axis": Attr("int")}, traits=(Trait.BATCH_FREE,))
class Concat:
    """Inputs joined along ``axis``; all other dimensions equal."""

    def resolve(*xs, axis):
        return {"axis": norm_axis(axis, xs[0].rank)}

    def infer(*xs, axis):
        dt = same_dtype(*xs)
        first = xs[0]
        for t in xs[1:]:
            if t.rank != first.rank or any(a != b for i, (a, b) in enumerate(zip(t.shape, first.shape)) if i != axis):
                raise ShapeError(f"cannot concatenate {first} and {t} along axis {axis}")
        total = sum(t.shape[axis] for t in xs)
        return TensorType(first.shape[:axis] + (total,) + first.shape[axis + 1:], dt)

    cost = costs.free  # a view or data movement

    def reference(*xs, axis):
        return np.concatenate(xs, axis=axis)


@defop("split", ("x",), {"axis": Attr("int", 0), "sizes": Attr("ints")})
class Split:
    """``x`` cut along ``axis`` into consecutive pieces of the given sizes (one output each)."""

    def resolve(x, *, axis, sizes):
        return {"axis": norm_axis(axis, x.rank), "sizes": sizes}

    def infer(x, *, axis, sizes):
        if x.rank == 0:
            raise ShapeError(f"split cuts a tensor along an axis; got a scalar {x}")
        if any(s < 0 for s in sizes) or sum(sizes) != x.shape[axis]:
            raise ShapeError(f"split sizes {list(sizes)} do not add up to dimension {axis} of {x}")
        return tuple(x.with_shape(x.shape[:axis] + (s,) + x.shape[axis + 1:]) for s in sizes)

    cost = costs.free  # a view or data movement

    def reference(x, *, axis, sizes):
        cuts = np.cumsum(sizes)[:-1]
        return tuple(np.require(p, requirements="C") for p in np.split(x, cuts, axis=axis))


@defop("expand", ("x",), {"shape": Attr("ints")})
class Expand:
    """``x`` broadcast to ``shape``. The shape here is the output shape: ONNX's bidirectional
    rule (a 1 in the requested shape keeps x's dimension) is resolved at import."""

    def infer(x, *, shape):
        if len(shape) < x.rank or any(d not in (1, s) for d, s in zip(x.shape[::-1], shape[::-1])):
            raise ShapeError(f"{x} does not broadcast to {list(shape)}")
        return x.with_shape(tuple(shape))

    cost = costs.free  # a view or data movement

    def reference(x, *, shape):
        return np.array(np.broadcast_to(x, shape), order="C")


@defop("tile", ("x",), {"repeats": Attr("ints")})
class Tile:
    """``x`` repeated ``repeats[i]`` times along axis i."""

    def infer(x, *, repeats):
        if len(repeats) != x.rank or any(r < 0 for r in repeats):
            raise ShapeError(f"repeats {list(repeats)} must be {x.rank} non-negative counts for {x}")
        return x.with_shape(tuple(d * r for d, r in zip(x.shape, repeats)))

    cost = costs.free  # a view or data movement

    def reference(x, *, repeats):
        return np.tile(x, repeats)


PAD_MODES = ("constant", "reflect", "edge", "wrap")


@defop("pad", ("x",), {"pads": Attr("ints"), "mode": Attr("str", "constant", PAD_MODES), "value": Attr("float", 0.0)})
class Pad:
    """``x`` grown by ``pads`` = (begin of each axis..., end of each axis...) elements; negative
    pads crop. New elements are ``value`` (constant), the mirror image without the border
    (reflect), the border repeated (edge) or the opposite side (wrap)."""

    def infer(x, *, pads, mode, value):
        if len(pads) != 2 * x.rank:
            raise ShapeError(f"pads {list(pads)} must hold 2 x rank = {2 * x.rank} values for {x}")
        out = tuple(d + pads[i] + pads[i + x.rank] for i, d in enumerate(x.shape))
        if any(d < 0 for d in out):
            raise ShapeError(f"pads {list(pads)} crop {x} below zero size")
        if mode != "constant":
            for i, d in enumerate(x.shape):
                begin, end = max(pads[i], 0), max(pads[i + x.rank], 0)
                kept = d - max(-pads[i], 0) - max(-pads[i + x.rank], 0)  # after cropping
                if (begin or end) and kept <= 0:
                    raise ShapeError(f"{mode} padding of the empty axis {i} of {x} (empty after cropping)")
                if mode == "reflect" and max(begin, end) > d - 1:
                    raise ShapeError(f"reflect padding {max(begin, end)} on axis {i} needs at least "
                                     f"{max(begin, end) + 1} elements, {x} has {d}")
        return x.with_shape(out)

    cost = costs.free  # a view or data movement

    def reference(x, *, pads, mode, value):
        r = x.ndim
        crop = tuple(slice(max(-pads[i], 0), x.shape[i] - max(-pads[i + r], 0)) for i in range(r))
        x = x[crop]
        width = [(max(pads[i], 0), max(pads[i + r], 0)) for i in range(r)]
        if mode == "constant":
            return np.pad(x, width, mode="constant", constant_values=np.array(value).astype(x.dtype))
        return np.pad(x, width, mode=mode)
