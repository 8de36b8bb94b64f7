"""The bit-accurate emulator of a DNeuro accelerator.

Each block is computed the way its RTL computes it, in exact integers: a convolution sums
``(x - x_zero_point) * w`` over its window plus the int32 bias in a 32-bit accumulator (which
wraps modulo 2**32, like the hardware adder), then requantizes with the one fixed-point contract
of :mod:`irc.ir.quant_arith`; max pooling compares codes; the element-wise sum weights its two
inputs by integers and requantizes; the table and arg-max blocks look up and compare codes.

The emulator never touches floating point between the host's quantization of the input and
its dequantization of the output, so it equals the int8 interpreter (and the int8 CPU target)
bit for bit; the RTL simulation is checked against it on the exported test vectors.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from irc.errors import InputError, TargetError
from irc.ir import quant_arith as qa
from irc.ir.ops.quant import wrap32
from irc.ir.types import DType
from irc.targets.dneuro.layers import Layer, LayerGraph

Frames = np.ndarray  # int64 [N, C, H, W]


def _conv(layer: Layer, x: Frames) -> Frames:
    a, t = layer.attrs, layer.arrays
    kh, kw = a["kernel"]
    sh, sw = a["stride"]
    pt, pl, pb, pr = a["pads"]
    g = a["group"]
    w = t["weight"].astype(np.int64)  # [M, C/g, kh, kw]
    n, c, h, wd = x.shape
    m = w.shape[0]
    # Padding is real zero: the zero point, i.e. 0 once the zero point is subtracted.
    xs = np.pad(x - a["x_zero_point"], ((0, 0), (0, 0), (pt, pb), (pl, pr)))
    ho, wo = layer.shape.h, layer.shape.w
    cg, mg = c // g, m // g
    acc = np.empty((n, m, ho, wo), np.int64)
    for gi in range(g):
        xg = xs[:, gi * cg:(gi + 1) * cg]
        # cols[n, cg, kh, kw, ho, wo]: the window taps of every output pixel.
        cols = np.empty((n, cg, kh, kw, ho, wo), np.int64)
        for i in range(kh):
            for j in range(kw):
                cols[:, :, i, j] = xg[:, :, i:i + sh * (ho - 1) + 1:sh, j:j + sw * (wo - 1) + 1:sw]
        wg = w[gi * mg:(gi + 1) * mg].reshape(mg, -1)
        acc[:, gi * mg:(gi + 1) * mg] = np.einsum("mk,nkp->nmp", wg, cols.reshape(n, cg * kh * kw, ho * wo),
                                                  optimize=True).reshape(n, mg, ho, wo)
    acc = wrap32(acc + t["bias"].astype(np.int64).reshape(1, m, 1, 1))
    shape = (1, m, 1, 1)
    return qa.requantize(acc, t["multiplier"].reshape(shape), t["shift"].reshape(shape),
                         a["y_zero_point"], a["y_min"], a["y_max"])


def _maxpool(layer: Layer, x: Frames) -> Frames:
    a = layer.attrs
    kh, kw = a["kernel"]
    sh, sw = a["stride"]
    pt, pl, pb, pr = a["pads"]
    ho, wo = layer.shape.h, layer.shape.w
    # Rows/columns past the input (padding, or ceil-mode overhang) never win: below any code.
    need_h = (ho - 1) * sh + kh
    need_w = (wo - 1) * sw + kw
    low = np.iinfo(np.int64).min
    xs = np.full((*x.shape[:2], need_h, need_w), low, np.int64)
    h, w = x.shape[2], x.shape[3]
    xs[:, :, pt:pt + h, pl:pl + w] = x[:, :, :need_h - pt, :need_w - pl]
    y = np.full((*x.shape[:2], ho, wo), low, np.int64)
    for i in range(kh):
        for j in range(kw):
            y = np.maximum(y, xs[:, :, i:i + sh * (ho - 1) + 1:sh, j:j + sw * (wo - 1) + 1:sw])
    if (y == low).any():
        raise TargetError("a max pooling window lies wholly in the padding", node=layer.name, op="maxpool")
    return y


def _eltwise(layer: Layer, a_: Frames, b_: Frames) -> Frames:
    a = layer.attrs
    acc = a["a_mult"] * (a_ - a["a_zero_point"]) + a["b_mult"] * (b_ - a["b_zero_point"])
    return qa.requantize(acc, a["multiplier"], a["shift"], a["y_zero_point"], a["y_min"], a["y_max"])


def _lut(layer: Layer, x: Frames) -> Frames:
    lo = -128 if layer.attrs["in_signed"] else 0
    return layer.arrays["table"].astype(np.int64)[x - lo]


def _upsample(layer: Layer, x: Frames) -> Frames:
    fh, fw = layer.attrs["factor"]
    return np.repeat(np.repeat(x, fh, axis=2), fw, axis=3)


def _argmax(layer: Layer, x: Frames) -> Frames:
    n = x.shape[0]
    return np.argmax(x.reshape(n, -1), axis=1).astype(np.int64).reshape(n, 1, 1, 1)


_BLOCKS: dict[str, Callable[..., Frames]] = {
    "conv": _conv,
    "maxpool": _maxpool,
    "eltwise": _eltwise,
    "concat": lambda layer, *xs: np.concatenate(xs, axis=1),
    "lut": _lut,
    "upsample": _upsample,
    "argmax": _argmax,
}


class Emulator:
    """Runs a quantized layer graph on frames of codes, or on float inputs through the host's
    quantization (and dequantization of a non-arg-max output)."""

    def __init__(self, lg: LayerGraph):
        missing = [ly.name for ly in lg if not ly.quantized]
        if missing:
            raise TargetError(f"layer(s) {', '.join(missing)} have no integer parameters: the layer graph was "
                              f"mapped from a float model; quantize it first (calib=...)")
        self.lg = lg

    def run_codes(self, codes: np.ndarray, *, keep_all: bool = False) -> dict[str, np.ndarray]:
        """Outputs of every layer (``keep_all``) or of the last one, for input codes [N, C, H, W]."""
        inp = self.lg.input
        x = np.asarray(codes)
        want = (inp.shape.c, inp.shape.h, inp.shape.w)
        if x.ndim != 4 or x.shape[1:] != want:
            raise InputError(f"input frames must be [N, {', '.join(map(str, want))}], got {list(x.shape)}")
        lo, hi = qa.qrange(DType.i8 if inp.signed else DType.u8)
        x = x.astype(np.int64)
        if x.size and (x.min() < lo or x.max() > hi):
            raise InputError(f"input codes must lie in [{lo}, {hi}]")
        env = {inp.name: x}
        consumers = self.lg.consumers()
        left = {k: len(v) for k, v in consumers.items()}
        for layer in self.lg.layers[1:]:
            args = [env[i] for i in layer.inputs]
            env[layer.name] = _BLOCKS[layer.kind](layer, *args)
            if not keep_all:
                for i in layer.inputs:
                    left[i] -= 1
                    if left[i] == 0:
                        env.pop(i, None)
        return env if keep_all else {self.lg.output.name: env[self.lg.output.name]}

    def quantize_input(self, x: np.ndarray) -> np.ndarray:
        """The host side: float frames -> input codes (ONNX QuantizeLinear), or codes as given."""
        h = self.lg.host
        inp = self.lg.input
        if np.asarray(x).dtype.kind == "f":
            if "input_scale" not in h:
                raise InputError("the accelerator takes integer codes; this model has no input quantization")
            dt = DType.i8 if inp.signed else DType.u8
            return qa.quantize_float(x, h["input_scale"], h["input_zero_point"], dt).astype(np.int64)
        return np.asarray(x).astype(np.int64)

    def run(self, x: np.ndarray) -> np.ndarray:
        """The model's output for input ``x`` ([N, C, H, W] floats or codes): the arg-max class
        (int64 [N]) or the dequantized output tensor (float32, the model's output shape)."""
        out = self.lg.output
        y = self.run_codes(self.quantize_input(x))[out.name]
        h = self.lg.host
        if out.kind == "argmax":
            return y.reshape(-1)
        y = y.reshape((y.shape[0],) + tuple(h.get("output_shape", y.shape[1:])))
        if "output_scale" in h:
            return qa.dequantize(y, h["output_scale"], h["output_zero_point"])
        return y.astype(np.int8 if out.signed else np.uint8)
