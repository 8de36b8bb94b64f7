"""Quantized graphs made by hand (random integer parameters), independent of the quantize pass:
they exercise every block with exactly the int8 ops and arithmetic the pass produces."""

from __future__ import annotations

import numpy as np

from irc.ir import quant_arith as qa
from irc.ir.builder import GraphBuilder
from irc.ir.graph import Graph
from irc.ir.types import DType


class QBuilder:
    """A GraphBuilder that adds int8 layers with random weights and plausible requantization."""

    def __init__(self, name: str, seed: int = 0):
        self.b = GraphBuilder(name)
        self.rng = np.random.default_rng(seed)

    def input(self, shape, *, signed: bool = False):
        x = self.b.input("x", shape)
        dt = DType.i8 if signed else DType.u8
        zp = 0 if signed else 3
        self.zp = {}
        q = self.b.op("quantize_linear", x, self.b.const(np.float32(1 / 40)), self.b.const(np.array(zp, dt.numpy)))
        self.zp[q] = zp
        return q

    def _requant(self, fan_in: int, m: int, relu: bool, signed: bool):
        # acc has a standard deviation of about sqrt(fan_in) * 40 * 73: bring it back to ~40 codes.
        scale = 1.0 / (np.sqrt(fan_in) * 73) * self.rng.uniform(0.6, 1.6, m)
        mult, shift = qa.quantize_multipliers(scale)
        dt = DType.i8 if signed else DType.u8
        zp = 0 if signed else int(self.rng.integers(0, 20))
        lo, hi = qa.qrange(dt)
        if relu:
            lo = max(lo, zp)
        return mult, shift, dict(y_zero_point=zp, y_dtype=dt, y_min=lo, y_max=hi)

    def conv(self, x, m: int, k: int, *, stride=1, pad=None, group=1, relu=True, signed=False):
        c = x.shape[1]
        pad = k // 2 if pad is None else pad
        pads = pad if isinstance(pad, tuple) else (pad, pad, pad, pad)
        w = self.rng.integers(-127, 128, (m, c // group, k, k)).astype(np.int8)
        bias = self.rng.integers(-3000, 3000, m).astype(np.int32)
        mult, shift, rq = self._requant(c // group * k * k, m, relu, signed)
        y = self.b.op("qconv", x, self.b.const(w), self.b.const(bias), self.b.const(mult), self.b.const(shift),
                      strides=(stride, stride), pads=pads, group=group, x_zero_point=self.zp[x], **rq)
        self.zp[y] = rq["y_zero_point"]
        return y

    def fc(self, x, n: int, *, relu=True, signed=False):
        if x.type.rank != 2:
            flat = self.b.op("reshape", x, shape=(x.shape[0], int(np.prod(x.shape[1:]))))
            self.zp[flat] = self.zp[x]
            x = flat
        k = x.shape[1]
        w = self.rng.integers(-127, 128, (k, n)).astype(np.int8)
        bias = self.rng.integers(-3000, 3000, n).astype(np.int32)
        mult, shift, rq = self._requant(k, n, relu, signed)
        y = self.b.op("qgemm", x, self.b.const(w), self.b.const(bias), self.b.const(mult), self.b.const(shift),
                      a_zero_point=self.zp[x], **rq)
        self.zp[y] = rq["y_zero_point"]
        return y

    def maxpool(self, x, k: int, stride: int | None = None, pad: int = 0):
        y = self.b.op("max_pool", x, kernel_shape=(k, k), strides=(stride or k,) * 2, pads=(pad,) * 4)
        self.zp[y] = self.zp[x]
        return y

    def add(self, a, b, *, relu=True):
        ka, kb, m0, shift = qa.add_multipliers(0.02, 0.03, 0.04)
        dt = a.dtype
        zp = 5 if dt is DType.u8 else 0
        lo, hi = qa.qrange(dt)
        y = self.b.op("qadd", a, b, a_zero_point=self.zp[a], b_zero_point=self.zp[b], a_mult=ka, b_mult=kb,
                      multiplier=m0, shift=shift, y_zero_point=zp, y_dtype=dt, y_min=max(lo, zp) if relu else lo,
                      y_max=hi)
        self.zp[y] = zp
        return y

    def gap(self, x):
        hw = x.shape[2] * x.shape[3]
        m0, shift = qa.quantize_multiplier(1.0 / hw * 1.3)
        y = self.b.op("qglobal_average_pool", x, x_zero_point=self.zp[x], multiplier=m0, shift=shift,
                      y_zero_point=2, y_dtype=DType.u8, y_min=2, y_max=255)
        self.zp[y] = 2
        return y

    def concat(self, *xs):
        y = self.b.op("concat", *xs, axis=1)
        self.zp[y] = self.zp[xs[0]]
        return y

    def output(self, y, *, softmax: bool = False) -> Graph:
        z = self.b.op("dequantize_linear", y, self.b.const(np.float32(0.05)),
                      self.b.const(np.array(self.zp[y], y.dtype.numpy)))
        if softmax:
            z = self.b.op("softmax", z, axis=-1)
        return self.b.build(z)


def lenet(batch: int = 1, image: int = 28, seed: int = 0, softmax: bool = True) -> Graph:
    """LeNet-5 (image 28: the real one; smaller images keep the RTL simulation short)."""
    q = QBuilder("qlenet", seed)
    x = q.input((batch, 1, image, image))
    x = q.maxpool(q.conv(x, 6, 5, pad=2), 2)
    x = q.maxpool(q.conv(x, 16, 5, pad=0), 2)
    x = q.fc(q.fc(q.fc(x, 120), 84), 10, relu=False, signed=True)
    return q.output(x, softmax=softmax)


def small_convnet(batch: int = 1, image: int = 12, seed: int = 1) -> Graph:
    """Strided, depthwise and 1x1 convs, a residual sum, a concat, max pooling with padding,
    global average pooling and a classifier."""
    q = QBuilder("qsmall", seed)
    x = q.input((batch, 3, image, image))
    x = q.conv(x, 8, 3, stride=2)
    y = q.conv(q.conv(x, 8, 3, group=8), 8, 1)
    x = q.add(x, y)
    x = q.concat(q.conv(x, 4, 1), q.maxpool(x, 3, 1, 1))
    x = q.conv(x, 16, 3, stride=2, pad=(1, 1, 0, 0))
    x = q.gap(x)
    x = q.fc(x, 10, relu=False, signed=True)
    return q.output(x)
