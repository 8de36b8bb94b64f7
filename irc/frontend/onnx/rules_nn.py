"""ONNX <-> irc rules for the neural-network ops: Gemm, MatMul, Conv, ConvTranspose, pooling,
normalizations, softmaxes, Resize and Upsample.

Import resolves everything ONNX leaves implicit (auto_pad, output_shape, kernel_shape, Resize's
sizes-or-scales, axes and keep_aspect_ratio_policy) into the explicit attributes irc nodes carry,
and refuses variants irc does not compute (training-mode BatchNormalization, cubic or
crop-and-resize Resize) with the reason. Export writes opset-17 nodes that onnxruntime runs.
"""

from __future__ import annotations

import math

import numpy as np

from irc.errors import ModelError, UnsupportedOpError
from irc.frontend.onnx.rules import ExportContext, NodeContext, export_rule, import_rule, simple
from irc.ir.graph import Node, Value
from irc.ir.ops.conv import dilated

simple("MatMul", "matmul")
simple("GlobalAveragePool", "global_average_pool")
simple("GlobalMaxPool", "global_max_pool")
simple("InstanceNormalization", "instance_norm", {"epsilon": "epsilon"})
simple("LRN", "lrn", {"size": "size", "alpha": "alpha", "beta": "beta", "bias": "bias"})
simple("Softmax", "softmax", {"axis": "axis"})
simple("LogSoftmax", "log_softmax", {"axis": "axis"})


def _as_dtype(ctx: NodeContext, v: Value, like: Value) -> Value:
    """``v`` cast to ``like``'s element type (ONNX lets statistics and scales be wider than X)."""
    return v if v.dtype is like.dtype else ctx.op("cast", v, to=like.dtype)


# ----------------------------------------------------------------------------------------
# Gemm


@import_rule("Gemm", op="gemm")
def _gemm(ctx: NodeContext):
    return ctx.op("gemm", *ctx.inputs(), alpha=ctx.attr("alpha", 1.0), beta=ctx.attr("beta", 1.0),
                  trans_a=ctx.attr("transA", 0), trans_b=ctx.attr("transB", 0))


@export_rule("gemm")
def _gemm_out(ctx: ExportContext, n: Node):
    if n.attrs["act"] != "none":
        raise UnsupportedOpError(f"gemm with the epilogue activation '{n.attrs['act']}' has no ONNX Gemm form; "
                                 "export the graph before fusion", node=n.label, op=n.op)
    a = n.attrs
    ctx.emit("Gemm", n.inputs, n.outputs, alpha=a["alpha"], beta=a["beta"], transA=a["trans_a"], transB=a["trans_b"])


# ----------------------------------------------------------------------------------------
# Padding: ONNX's auto_pad made explicit.


def _explicit_pads(ctx: NodeContext, size, kernel, strides, dilations) -> tuple[int, ...]:
    """Explicit ONNX-layout pads for a windowed op. SAME_* pads so that there are ceil(size/stride)
    windows, with the dilated kernel as the ONNX spec defines it; the odd pad goes at the end
    (SAME_UPPER) or the beginning (SAME_LOWER)."""
    n = len(size)
    auto = ctx.attr("auto_pad", "NOTSET")
    pads = tuple(ctx.attr("pads", [])) or (0,) * (2 * n)
    if auto == "NOTSET":
        return pads
    if any(pads):
        raise ModelError(f"pads {list(pads)} and auto_pad={auto} cannot both be given")
    if auto == "VALID":
        return (0,) * (2 * n)
    if auto not in ("SAME_UPPER", "SAME_LOWER"):
        raise ModelError(f"auto_pad is '{auto}'; expected NOTSET, SAME_UPPER, SAME_LOWER or VALID")
    begin, end = [], []
    for i in range(n):
        out = -(-size[i] // strides[i])
        total = max(0, (out - 1) * strides[i] + dilated(kernel[i], dilations[i]) - size[i])
        small, big = total // 2, total - total // 2
        begin.append(small if auto == "SAME_UPPER" else big)
        end.append(big if auto == "SAME_UPPER" else small)
    return (*begin, *end)


def _window_attrs(ctx: NodeContext, x: Value, kernel) -> dict:
    n = x.type.rank - 2
    if n < 1:
        raise ModelError(f"input must be (N, C, spatial...) with at least one spatial axis, got {x.type}")
    if len(kernel) != n:
        raise ModelError(f"kernel_shape {list(kernel)} must have {n} entries for input {x.type}")
    strides = tuple(ctx.attr("strides", [])) or (1,) * n
    dilations = tuple(ctx.attr("dilations", [])) or (1,) * n
    if len(strides) != n or len(dilations) != n:
        raise ModelError(f"strides {list(strides)} and dilations {list(dilations)} must have {n} entries")
    pads = _explicit_pads(ctx, x.shape[2:], kernel, strides, dilations)
    return {"strides": strides, "pads": pads, "dilations": dilations}


def _kernel_from_weights(ctx: NodeContext, w: Value) -> tuple[int, ...]:
    kernel = tuple(w.shape[2:])
    given = ctx.attr("kernel_shape")
    if given is not None and tuple(given) != kernel:
        raise ModelError(f"kernel_shape {list(given)} does not match the weights {w.type} (expected {list(kernel)})")
    return kernel


# ----------------------------------------------------------------------------------------
# Conv, ConvTranspose


@import_rule("Conv", op="conv")
def _conv(ctx: NodeContext):
    ins = ctx.inputs()
    attrs = _window_attrs(ctx, ins[0], _kernel_from_weights(ctx, ins[1]))
    return ctx.op("conv", *ins, **attrs, group=ctx.attr("group", 1))


def conv_window_attrs(n: Node) -> dict:
    """The ONNX Conv attributes of a convolution node (the kernel shape read off its weights)."""
    a = n.attrs
    return dict(kernel_shape=list(n.inputs[1].shape[2:]), strides=a["strides"], pads=a["pads"],
                dilations=a["dilations"], group=a["group"])


@export_rule("conv")
def _conv_out(ctx: ExportContext, n: Node):
    ctx.emit("Conv", n.inputs, n.outputs, **conv_window_attrs(n))


@import_rule("ConvTranspose", op="conv_transpose")
def _conv_transpose(ctx: NodeContext):
    ins = ctx.inputs()
    x, w = ins[0], ins[1]
    kernel = _kernel_from_weights(ctx, w)
    n = x.type.rank - 2
    out_shape = ctx.attr("output_shape")
    auto = ctx.attr("auto_pad", "NOTSET")
    if out_shape is None and auto not in ("SAME_UPPER", "SAME_LOWER"):
        attrs = _window_attrs(ctx, x, kernel)
        return ctx.op("conv_transpose", *ins, **attrs, group=ctx.attr("group", 1),
                      output_padding=tuple(ctx.attr("output_padding", [])) or (0,) * n)
    # The output length is given (output_shape) or implied (SAME: input * stride): pads follow.
    strides = tuple(ctx.attr("strides", [])) or (1,) * n
    dilations = tuple(ctx.attr("dilations", [])) or (1,) * n
    out_pad = list(ctx.attr("output_padding", [])) or [0] * n
    if n < 1 or len(strides) != n or len(dilations) != n or len(out_pad) != n:
        raise ModelError(f"strides, dilations and output_padding must have one entry per spatial axis of {x.type}")
    if out_shape is not None:
        out_shape = list(out_shape)[-n:] if len(out_shape) in (n, n + 2) else None
        if out_shape is None:
            raise ModelError(f"output_shape {ctx.attr('output_shape')} must have {n} entries")
    else:
        out_shape = [d * s for d, s in zip(x.shape[2:], strides)]
    begin, end = [], []
    for i in range(n):
        full = strides[i] * (x.shape[2 + i] - 1) + out_pad[i] + dilated(kernel[i], dilations[i])
        total = full - out_shape[i]
        if total < 0:  # longer than the full result: the extra outputs are bias only
            out_pad[i] -= total
            total = 0
        small, big = total // 2, total - total // 2
        begin.append(small if auto == "SAME_UPPER" else big)
        end.append(big if auto == "SAME_UPPER" else small)
    return ctx.op("conv_transpose", *ins, strides=strides, pads=(*begin, *end), dilations=dilations,
                  group=ctx.attr("group", 1), output_padding=tuple(out_pad))


@export_rule("conv_transpose")
def _conv_transpose_out(ctx: ExportContext, n: Node):
    ctx.emit("ConvTranspose", n.inputs, n.outputs, **conv_window_attrs(n), output_padding=n.attrs["output_padding"])


# ----------------------------------------------------------------------------------------
# Pooling


def _pool_attrs(ctx: NodeContext) -> dict:
    x = ctx.input(0)
    kernel = ctx.attr("kernel_shape")
    if kernel is None:
        raise ModelError("attribute 'kernel_shape' is required")
    ceil_mode = ctx.attr("ceil_mode", 0)
    return {"kernel_shape": tuple(kernel), **_window_attrs(ctx, x, kernel), "ceil_mode": ceil_mode}


@import_rule("MaxPool", op="max_pool")
def _max_pool(ctx: NodeContext):
    # Output 1 (Indices) is not produced; the importer refuses the model if anything reads it.
    return ctx.op("max_pool", ctx.input(0), **_pool_attrs(ctx), storage_order=ctx.attr("storage_order", 0))


@import_rule("AveragePool", op="average_pool")
def _average_pool(ctx: NodeContext):
    return ctx.op("average_pool", ctx.input(0), **_pool_attrs(ctx), count_include_pad=ctx.attr("count_include_pad", 0))


@export_rule("max_pool")
def _max_pool_out(ctx: ExportContext, n: Node):
    a = n.attrs
    ctx.emit("MaxPool", n.inputs, n.outputs, kernel_shape=a["kernel_shape"], strides=a["strides"], pads=a["pads"],
             dilations=a["dilations"], ceil_mode=a["ceil_mode"], storage_order=a["storage_order"])


@export_rule("average_pool")
def _average_pool_out(ctx: ExportContext, n: Node):
    a = n.attrs
    if any(d != 1 for d in a["dilations"]):
        raise UnsupportedOpError(f"average_pool with dilations {list(a['dilations'])} needs ONNX opset 19; "
                                 "export writes opset 17", node=n.label, op=n.op)
    ctx.emit("AveragePool", n.inputs, n.outputs, kernel_shape=a["kernel_shape"], strides=a["strides"], pads=a["pads"],
             ceil_mode=a["ceil_mode"], count_include_pad=a["count_include_pad"])


# ----------------------------------------------------------------------------------------
# Normalizations


@import_rule("BatchNormalization", op="batch_norm")
def _batch_norm(ctx: NodeContext):
    if ctx.attr("training_mode", 0):
        raise UnsupportedOpError("BatchNormalization with training_mode=1 (batch statistics, updated running "
                                 "means) is not supported at import; only inference mode is")
    x, *params = ctx.inputs()
    if len(params) != 4:
        raise ModelError(f"takes inputs (X, scale, B, input_mean, input_var); got {len(params) + 1}")
    params = [_as_dtype(ctx, p, x) for p in params]
    return ctx.op("batch_norm", x, *params, epsilon=ctx.attr("epsilon", 1e-5))


@export_rule("batch_norm")
def _batch_norm_out(ctx: ExportContext, n: Node):
    ctx.emit("BatchNormalization", n.inputs, n.outputs, epsilon=n.attrs["epsilon"])


@import_rule("LayerNormalization", op="layer_norm")
def _layer_norm(ctx: NodeContext):
    # Outputs 1 and 2 (Mean, InvStdDev) are not produced; the importer refuses the model if read.
    # stash_type only says to compute half-precision inputs in float32, which irc always does.
    return ctx.op("layer_norm", *ctx.inputs(), axis=ctx.attr("axis", -1), epsilon=ctx.attr("epsilon", 1e-5))


@export_rule("layer_norm")
def _layer_norm_out(ctx: ExportContext, n: Node):
    ctx.emit("LayerNormalization", n.inputs, n.outputs, axis=n.attrs["axis"], epsilon=n.attrs["epsilon"])


# ----------------------------------------------------------------------------------------
# Resize, Upsample


def _nonempty_const(ctx: NodeContext, i: int, what: str) -> np.ndarray | None:
    """Input i's constant value, or None when it is absent or an empty tensor."""
    if not ctx.has_input(i):
        return None
    c = ctx.need_const(i, what)
    return c if c.size else None


def _resize_target(ctx: NodeContext, shape: tuple[int, ...]) -> tuple[tuple[int, ...], tuple[float, ...]]:
    """(sizes, scales) over every axis of x, from Resize's scales or sizes input, axes and
    keep_aspect_ratio_policy (as onnx.reference computes them)."""
    rank = len(shape)
    scales = _nonempty_const(ctx, 2, "scales")
    sizes = _nonempty_const(ctx, 3, "sizes")
    if (scales is None) == (sizes is None):
        raise ModelError("exactly one of the inputs 'scales' and 'sizes' must be given (and non-empty)")
    given = scales if scales is not None else sizes
    axes = ctx.attr("axes")
    axes = list(range(rank)) if axes is None else [a + rank if a < 0 else a for a in axes]
    if len(given.reshape(-1)) != len(axes) or any(not 0 <= a < rank for a in axes) or len(set(axes)) != len(axes):
        what = "scales" if scales is not None else "sizes"
        raise ModelError(f"{what} {given.tolist()} must have one entry per axis in {axes} of a rank-{rank} input")
    full_scales = [1.0] * rank
    if scales is not None:
        for a, s in zip(axes, scales.reshape(-1).tolist()):
            full_scales[a] = float(s)
        return tuple(math.floor(s * d) for s, d in zip(full_scales, shape)), tuple(full_scales)
    full_sizes = list(shape)
    for a, o in zip(axes, sizes.reshape(-1).tolist()):
        full_sizes[a] = int(o)
    if any(d == 0 for d in shape):
        raise ModelError(f"cannot resize an input with an empty axis {list(shape)}")
    full_scales = [o / d for o, d in zip(full_sizes, shape)]
    policy = ctx.attr("keep_aspect_ratio_policy", "stretch")
    if policy != "stretch":
        if policy not in ("not_larger", "not_smaller"):
            raise ModelError(f"keep_aspect_ratio_policy is '{policy}'; expected stretch, not_larger or not_smaller")
        pick = min if policy == "not_larger" else max
        scale = pick(full_scales[a] for a in axes)
        full_scales = [scale if a in axes else 1.0 for a in range(rank)]
        full_sizes = [int(scale * d + 0.5) if a in axes else d for a, d in enumerate(shape)]
    return tuple(full_sizes), tuple(full_scales)


@import_rule("Resize", op="resize")
def _resize(ctx: NodeContext):
    x = ctx.input(0)
    mode = ctx.attr("mode", "nearest")
    transform = ctx.attr("coordinate_transformation_mode", "half_pixel")
    if mode == "cubic":
        raise UnsupportedOpError("Resize mode 'cubic' is not supported (nearest and linear are)")
    if mode not in ("nearest", "linear"):
        raise ModelError(f"Resize mode is '{mode}'; expected nearest, linear or cubic")
    if transform == "tf_crop_and_resize":
        raise UnsupportedOpError("Resize with coordinate_transformation_mode 'tf_crop_and_resize' is not supported")
    sizes, scales = _resize_target(ctx, x.shape)
    if ctx.attr("antialias", 0) and (mode == "nearest" or any(s < 1 for s in scales)):
        # Antialiasing only changes linear weights where an axis shrinks.
        raise UnsupportedOpError("Resize with antialias=1 when downsampling is not supported")
    if ctx.attr("exclude_outside", 0) and mode == "nearest":
        # For linear it changes nothing: an outside neighbour is clamped onto the one it is paired with.
        raise UnsupportedOpError("Resize with exclude_outside=1 in nearest mode is not supported")
    return ctx.op("resize", x, mode=mode, coordinate_transformation_mode=transform,
                  nearest_mode=ctx.attr("nearest_mode", "round_prefer_floor"), sizes=sizes, scales=scales)


@import_rule("Upsample", op="resize")
def _upsample(ctx: NodeContext):
    """Upsample (deprecated since opset 10): out[i] = in[floor(i / scale)], or linear on the same
    asymmetric grid."""
    x = ctx.input(0)
    scales = ctx.attr("scales") if ctx.has_attr("scales") else ctx.need_const(1, "scales").reshape(-1).tolist()
    if len(scales) != x.type.rank:
        raise ModelError(f"scales {list(scales)} must have one entry per axis of {x.type}")
    mode = {"bilinear": "linear"}.get(ctx.attr("mode", "nearest"), ctx.attr("mode", "nearest"))
    if mode not in ("nearest", "linear"):
        raise ModelError(f"Upsample mode is '{mode}'; expected nearest or linear")
    return ctx.op("resize", x, mode=mode, coordinate_transformation_mode="asymmetric", nearest_mode="floor",
                  scales=tuple(float(s) for s in scales))


@export_rule("resize")
def _resize_out(ctx: ExportContext, n: Node):
    a = n.attrs
    shape = n.inputs[0].shape
    sizes, scales = a["sizes"], a["scales"]
    transform = a["coordinate_transformation_mode"]
    exact = all(math.isclose(s, o / d, rel_tol=1e-12) for s, o, d in zip(scales, sizes, shape))
    if transform == "half_pixel_symmetric" and exact:
        transform = "half_pixel"  # the two differ only when the output length was rounded
    if transform in ("half_pixel_symmetric", "tf_half_pixel_for_nearest"):
        raise UnsupportedOpError(f"resize with coordinate_transformation_mode '{transform}' has no ONNX opset-17 "
                                 "form", node=n.label, op=n.op)
    if exact:
        inputs = [n.inputs[0], "", "", ctx.const(np.array(sizes, np.int64), "sizes")]
    elif all(float(np.float32(s)) == s for s in scales) and all(
            math.floor(s * d) == o for s, o, d in zip(scales, sizes, shape)):
        inputs = [n.inputs[0], "", ctx.const(np.array(scales, np.float32), "scales")]
    else:
        raise UnsupportedOpError(f"resize to {list(sizes)} with scales {list(scales)} cannot be written as ONNX "
                                 "Resize (its scales are neither sizes/shape nor float32 factors giving sizes)",
                                 node=n.label, op=n.op)
    kw = {"nearest_mode": a["nearest_mode"]} if a["mode"] == "nearest" else {}
    ctx.emit("Resize", inputs, n.outputs, mode=a["mode"], coordinate_transformation_mode=transform, **kw)
