"""ONNX <-> irc rules for shape, indexing and reduction ops.

Shapes are static in irc, so shape computations fold away at import: Shape, Size,
ConstantOfShape and Range become constants, and the Gather/Concat/Unsqueeze chains that
exporters build from them fold with them (NodeContext.ops evaluates any node whose inputs are
all known). What remains of a shape tensor must be a constant by the time it reaches a
Reshape, Expand, Slice, Pad or Tile, where it becomes an attribute. Flatten, Squeeze,
Unsqueeze, SpaceToDepth and DepthToSpace become reshape (and transpose).
"""

from __future__ import annotations

import math

import numpy as np

from irc.errors import ModelError, ShapeError, UnsupportedOpError
from irc.frontend.onnx.rules import (
    ExportContext,
    NodeContext,
    dtype_from_onnx,
    export_rule,
    import_rule,
    shape_input_export,
    simple_export,
)
from irc.ir.graph import Node
from irc.ir.ops.registry import broadcast_shapes, norm_axes, norm_axis


def _ints(ctx: NodeContext, i: int, what: str) -> list[int]:
    return [int(v) for v in ctx.need_const(i, what).reshape(-1)]


def _axes(ctx: NodeContext, input_index: int, since: int) -> list[int] | None:
    """Axes given as an attribute (older opsets) or as input ``input_index`` (opset >= since)."""
    if ctx.opset >= since:
        return _ints(ctx, input_index, "axes") if ctx.has_input(input_index) else None
    return ctx.attr("axes")


def _reshape(ctx: NodeContext, x, shape) -> object:
    return ctx.op("reshape", x, shape=tuple(shape))


# ----------------------------------------------------------------------------------------
# Views: reshape and the ops that are reshapes.


@import_rule("Reshape", op="reshape")
def _reshape_in(ctx: NodeContext):
    x = ctx.input(0)
    shape = _ints(ctx, 1, "shape")
    if not ctx.attr("allowzero", 0):
        if any(d == 0 and i >= x.type.rank for i, d in enumerate(shape)):
            raise ShapeError(f"shape {shape} copies dimension 0 from beyond the rank of {x.type}")
        shape = [x.shape[i] if d == 0 else d for i, d in enumerate(shape)]
    return _reshape(ctx, x, shape)


shape_input_export("reshape", "Reshape", "shape")


@import_rule("Flatten", op="reshape")
def _flatten(ctx: NodeContext):
    x = ctx.input(0)
    axis = ctx.attr("axis", 1)
    axis = axis + x.type.rank if axis < 0 else axis
    if not 0 <= axis <= x.type.rank:
        raise ShapeError(f"axis {ctx.attr('axis', 1)} is out of range for {x.type}")
    return _reshape(ctx, x, (math.prod(x.shape[:axis]), math.prod(x.shape[axis:])))


@import_rule("Squeeze", op="reshape")
def _squeeze(ctx: NodeContext):
    x = ctx.input(0)
    axes = _axes(ctx, 1, 13)
    if axes is None:
        axes = [i for i, d in enumerate(x.shape) if d == 1]
    axes = norm_axes(axes, x.type.rank)
    for a in axes:
        if x.shape[a] != 1:
            raise ShapeError(f"cannot squeeze axis {a} of {x.type}: its size is {x.shape[a]}, not 1")
    return _reshape(ctx, x, [d for i, d in enumerate(x.shape) if i not in axes])


@import_rule("Unsqueeze", op="reshape")
def _unsqueeze(ctx: NodeContext):
    x = ctx.input(0)
    axes = _axes(ctx, 1, 13)
    if axes is None:
        raise ModelError("input 'axes' is required")
    rank = x.type.rank + len(axes)
    axes = set(norm_axes(axes, rank))
    dims = iter(x.shape)
    return _reshape(ctx, x, [1 if i in axes else next(dims) for i in range(rank)])


def _blocks(ctx: NodeContext):
    x = ctx.input(0)
    if x.type.rank != 4:
        raise ShapeError(f"input must be NCHW (rank 4), got {x.type}")
    return x, int(ctx.attr("blocksize")), x.shape


@import_rule("SpaceToDepth")
def _space_to_depth(ctx: NodeContext):
    x, b, (n, c, h, w) = _blocks(ctx)
    if h % b or w % b:
        raise ShapeError(f"spatial size {h}x{w} is not a multiple of blocksize {b}")
    y = _reshape(ctx, x, (n, c, h // b, b, w // b, b))
    # DCR puts the block offset before the channel in the new channel index, CRD after it.
    perm = (0, 3, 5, 1, 2, 4) if ctx.attr("mode", "DCR") == "DCR" else (0, 1, 3, 5, 2, 4)
    y = ctx.op("transpose", y, perm=perm)
    return _reshape(ctx, y, (n, c * b * b, h // b, w // b))


@import_rule("DepthToSpace")
def _depth_to_space(ctx: NodeContext):
    x, b, (n, c, h, w) = _blocks(ctx)
    if c % (b * b):
        raise ShapeError(f"{c} channels are not a multiple of blocksize^2 = {b * b}")
    if ctx.attr("mode", "DCR") == "DCR":
        y = _reshape(ctx, x, (n, b, b, c // (b * b), h, w))
        y = ctx.op("transpose", y, perm=(0, 3, 4, 1, 5, 2))
    else:
        y = _reshape(ctx, x, (n, c // (b * b), b, b, h, w))
        y = ctx.op("transpose", y, perm=(0, 1, 4, 2, 5, 3))
    return _reshape(ctx, y, (n, c // (b * b), h * b, w * b))


# ----------------------------------------------------------------------------------------
# Data movement.


@import_rule("Transpose", op="transpose")
def _transpose(ctx: NodeContext):
    return ctx.op("transpose", ctx.input(0), perm=tuple(ctx.attr("perm", [])))


@export_rule("transpose")
def _transpose_out(ctx: ExportContext, n: Node):
    ctx.emit("Transpose", n.inputs, n.outputs, perm=list(n.attrs["perm"]))


@import_rule("Concat", op="concat")
def _concat(ctx: NodeContext):
    return ctx.op("concat", *ctx.inputs(), axis=ctx.attr("axis"))


simple_export("concat", "Concat", {"axis": "axis"})


@import_rule("Split", op="split")
def _split(ctx: NodeContext):
    x = ctx.input(0)
    axis = norm_axis(ctx.attr("axis", 0), x.type.rank)
    n_out = len(ctx.node.output)
    if ctx.opset >= 13 and ctx.has_input(1):
        sizes = _ints(ctx, 1, "split")
    elif ctx.opset < 13 and ctx.has_attr("split"):
        sizes = list(ctx.attr("split"))
    else:
        n_out = ctx.attr("num_outputs", n_out)
        dim = x.shape[axis]
        if ctx.has_attr("num_outputs"):
            size = -(-dim // n_out)
            sizes = [min(size, dim - i * size) for i in range(n_out)]
        else:
            if dim % n_out:
                raise ShapeError(f"axis {axis} of {x.type} does not split into {n_out} equal parts")
            sizes = [dim // n_out] * n_out
    if len(sizes) != len(ctx.node.output):
        raise ShapeError(f"split into {len(sizes)} parts {sizes} but the node has {len(ctx.node.output)} outputs")
    return ctx.ops("split", [x], {"axis": axis, "sizes": tuple(sizes)})


@export_rule("split")
def _split_out(ctx: ExportContext, n: Node):
    sizes = ctx.const(np.array(n.attrs["sizes"], np.int64), "split")
    ctx.emit("Split", [n.inputs[0], sizes], n.outputs, axis=n.attrs["axis"])


@import_rule("Expand", op="expand")
def _expand(ctx: NodeContext):
    x = ctx.input(0)
    shape = broadcast_shapes(x.shape, _ints(ctx, 1, "shape"))
    return ctx.op("expand", x, shape=shape)


shape_input_export("expand", "Expand", "shape")


@import_rule("Tile", op="tile")
def _tile(ctx: NodeContext):
    return ctx.op("tile", ctx.input(0), repeats=tuple(_ints(ctx, 1, "repeats")))


shape_input_export("tile", "Tile", "repeats")


@import_rule("Pad", op="pad")
def _pad(ctx: NodeContext):
    x = ctx.input(0)
    rank = x.type.rank
    mode = ctx.attr("mode", "constant")
    if ctx.opset < 11:
        pads, value = list(ctx.attr("pads")), float(ctx.attr("value", 0.0))
    else:
        pads = _ints(ctx, 1, "pads")
        value = ctx.const(2) if ctx.has_input(2) else None
        if ctx.has_input(2) and value is None:
            raise UnsupportedOpError("input 'constant_value' must be a constant known at import")
        value = 0.0 if value is None else float(np.asarray(value).reshape(-1)[0])
        if ctx.has_input(3):
            axes = norm_axes(_ints(ctx, 3, "axes"), rank)
            full = [0] * (2 * rank)
            for k, a in enumerate(axes):
                full[a], full[a + rank] = pads[k], pads[k + len(axes)]
            pads = full
    return ctx.op("pad", x, pads=tuple(pads), mode=mode, value=value)


@export_rule("pad")
def _pad_out(ctx: ExportContext, n: Node):
    x = n.inputs[0]
    value = ctx.const(np.array(n.attrs["value"]).astype(x.dtype.numpy), "pad_value")
    ctx.emit("Pad", [x, ctx.const(np.array(n.attrs["pads"], np.int64), "pads"), value], n.outputs,
             mode=n.attrs["mode"])


# ----------------------------------------------------------------------------------------
# Indexing.


@import_rule("Slice", op="slice")
def _slice(ctx: NodeContext):
    x = ctx.input(0)
    if ctx.opset < 10:
        starts, ends, axes, steps = ctx.attr("starts"), ctx.attr("ends"), ctx.attr("axes", []), []
    else:
        starts, ends = _ints(ctx, 1, "starts"), _ints(ctx, 2, "ends")
        axes = _ints(ctx, 3, "axes") if ctx.has_input(3) else []
        steps = _ints(ctx, 4, "steps") if ctx.has_input(4) else []
    return ctx.op("slice", x, starts=tuple(starts), ends=tuple(ends), axes=tuple(axes), steps=tuple(steps))


@export_rule("slice")
def _slice_out(ctx: ExportContext, n: Node):
    a = n.attrs
    consts = [ctx.const(np.array(a[k], np.int64), k) for k in ("starts", "ends", "axes", "steps")]
    ctx.emit("Slice", [n.inputs[0], *consts], n.outputs)


def _indexing(onnx_type: str, irc_op: str) -> None:
    @import_rule(onnx_type, op=irc_op)
    def _in(ctx: NodeContext):
        return ctx.op(irc_op, ctx.input(0), ctx.input(1), axis=ctx.attr("axis", 0))

    @export_rule(irc_op)
    def _out(ctx: ExportContext, n: Node):
        ctx.emit(onnx_type, n.inputs, n.outputs, axis=n.attrs["axis"])


_indexing("Gather", "gather")
_indexing("GatherElements", "gather_elements")


def _arg(onnx_type: str, irc_op: str) -> None:
    @import_rule(onnx_type, op=irc_op)
    def _in(ctx: NodeContext):
        return ctx.op(irc_op, ctx.input(0), axis=ctx.attr("axis", 0), keepdims=ctx.attr("keepdims", 1),
                      select_last_index=ctx.attr("select_last_index", 0))

    @export_rule(irc_op)
    def _out(ctx: ExportContext, n: Node):
        ctx.emit(onnx_type, n.inputs, n.outputs, **n.attrs)


_arg("ArgMax", "argmax")
_arg("ArgMin", "argmin")


# ----------------------------------------------------------------------------------------
# Reductions.

#: ONNX op -> (irc op, first opset where axes is an input rather than an attribute)
REDUCTIONS = {
    "ReduceSum": ("reduce_sum", 13), "ReduceMean": ("reduce_mean", 18), "ReduceMax": ("reduce_max", 18),
    "ReduceMin": ("reduce_min", 18), "ReduceProd": ("reduce_prod", 18), "ReduceL1": ("reduce_l1", 18),
    "ReduceL2": ("reduce_l2", 18), "ReduceSumSquare": ("reduce_sum_square", 18),
    "ReduceLogSum": ("reduce_log_sum", 18), "ReduceLogSumExp": ("reduce_log_sum_exp", 18),
}
EXPORT_OPSET = 17


def _reduction(onnx_type: str, irc_op: str, since: int) -> None:
    @import_rule(onnx_type, op=irc_op)
    def _in(ctx: NodeContext):
        x = ctx.input(0)
        axes = _axes(ctx, 1, since)
        if not axes:
            if ctx.attr("noop_with_empty_axes", 0):
                return ctx.op("identity", x)
            axes = range(x.type.rank)
        return ctx.op(irc_op, x, axes=tuple(axes), keepdims=ctx.attr("keepdims", 1))

    @export_rule(irc_op)
    def _out(ctx: ExportContext, n: Node):
        axes, keep = list(n.attrs["axes"]), n.attrs["keepdims"]
        if not axes:  # ONNX reads "no axes" as "all axes": an empty reduction is an identity
            ctx.emit("Identity", n.inputs, n.outputs)
        elif since <= EXPORT_OPSET:
            ctx.emit(onnx_type, [n.inputs[0], ctx.const(np.array(axes, np.int64), "axes")], n.outputs, keepdims=keep)
        else:
            ctx.emit(onnx_type, n.inputs, n.outputs, axes=axes, keepdims=keep)


for _onnx, (_irc, _since) in REDUCTIONS.items():
    _reduction(_onnx, _irc, _since)


# ----------------------------------------------------------------------------------------
# Shape computations, folded to constants.


@import_rule("Shape")
def _shape(ctx: NodeContext):
    shape = ctx.input(0).shape
    start, end = ctx.attr("start", 0), ctx.attr("end", len(shape))
    return ctx.constant(np.array(shape[slice(start, end)], np.int64))


@import_rule("Size")
def _size(ctx: NodeContext):
    return ctx.constant(np.array(ctx.input(0).type.size, np.int64))


@import_rule("ConstantOfShape")
def _constant_of_shape(ctx: NodeContext):
    shape = _ints(ctx, 0, "input")
    value = ctx.attr("value")
    value = np.zeros(1, np.float32) if value is None else np.asarray(value).reshape(-1)
    return ctx.constant(np.full(shape, value[0], value.dtype))


@import_rule("Range")
def _range(ctx: NodeContext):
    start, limit, delta = (ctx.need_const(i, w) for i, w in enumerate(("start", "limit", "delta")))
    if delta.reshape(()) == 0:
        raise ModelError("delta is 0")
    return ctx.constant(np.arange(start.reshape(()), limit.reshape(()), delta.reshape(()), dtype=start.dtype))


@import_rule("CastLike")
def _cast_like(ctx: NodeContext):
    return ctx.op("cast", ctx.input(0), to=ctx.input(1).dtype)


@import_rule("EyeLike")
def _eye_like(ctx: NodeContext):
    t = ctx.type(0)
    if t.rank != 2:
        raise ShapeError(f"input must be a matrix, got {t}")
    dt = dtype_from_onnx(ctx.attr("dtype"), " (EyeLike dtype)").numpy if ctx.has_attr("dtype") else t.dtype.numpy
    return ctx.constant(np.eye(*t.shape, k=ctx.attr("k", 0), dtype=dt))
