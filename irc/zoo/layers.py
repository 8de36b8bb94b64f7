"""Builder layers of the nets after ResNet: smooth activations as torch exports them (SiLU as
Mul(x, Sigmoid(x)), GELU in its erf form), squeeze-and-excitation gating, and the channels-last
Transpose, LayerNormalization, Linear and layer scale of ConvNeXt.

Statistics through a smooth elementwise function are its Gaussian moments per channel,
E f(y) and Var f(y) for y ~ N(mean, var), by Gauss-Hermite quadrature: close to exact, and far
finer than the builder's other approximations. The channels-last layers index their statistics
by the last axis; ``transpose`` keeps a tensor's per-channel statistics as they are, so a
permute to NHWC and back moves only the shape.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from irc.zoo.builder import OnnxBuilder, Stats

#: Probabilists' Gauss-Hermite nodes and weights (normalized to sum 1) for E f(z), z ~ N(0, 1).
_Z, _W = np.polynomial.hermite_e.hermegauss(32)
_W = _W / _W.sum()
_erf = np.frompyfunc(math.erf, 1, 1)


def _grid(stats: Stats) -> np.ndarray:
    """Quadrature points of each channel's Gaussian, shape (channels, points)."""
    mean, var = stats
    return np.asarray(mean, np.float64)[:, None] + np.sqrt(np.maximum(var, 0.0))[:, None] * _Z


def _moments(fy: np.ndarray) -> Stats:
    """(mean, variance) per channel of f on the quadrature points."""
    m1, m2 = fy @ _W, (fy * fy) @ _W
    return m1, np.maximum(m2 - m1 * m1, 0.0)


def _sigmoid(y: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * y))


class ModernBuilder(OnnxBuilder):
    """OnnxBuilder with the layers of EfficientNet and ConvNeXt."""

    def __init__(self, name: str, *, seed: int = 0, batch: int | None = None):
        super().__init__(name, seed=seed, batch=batch)
        self._consts: set[str] = set()

    def const(self, name: str, value: float) -> str:
        """A float scalar initializer shared by every node that uses it."""
        if name not in self._consts:
            self._consts.add(name)
            self.init(name, np.array(value, np.float32))
        return name

    # -- smooth activations
    def sigmoid(self, x: str) -> str:
        return self._node("Sigmoid", [x], self.shape(x), _moments(_sigmoid(_grid(self.stats(x)))))

    def silu(self, x: str) -> str:
        """SiLU (Swish) as torch exports it: Mul(x, Sigmoid(x))."""
        y = _grid(self.stats(x))
        s = self._node("Sigmoid", [x], self.shape(x), _moments(_sigmoid(y)))
        return self._node("Mul", [x, s], self.shape(x), _moments(y * _sigmoid(y)))

    def gelu(self, x: str) -> str:
        """Exact GELU as torch exports it at opset 17: x * (1 + erf(x / sqrt 2)) * 0.5."""
        y, shape = _grid(self.stats(x)), self.shape(x)
        e = _erf(y / math.sqrt(2)).astype(np.float64)
        d = self._node("Div", [x, self.const("gelu.sqrt2", math.sqrt(2))], shape, _moments(y / math.sqrt(2)))
        d = self._node("Erf", [d], shape, _moments(e))
        d = self._node("Add", [d, self.const("gelu.one", 1.0)], shape, _moments(e + 1))
        d = self._node("Mul", [x, d], shape, _moments(y * (e + 1)))
        return self._node("Mul", [d, self.const("gelu.half", 0.5)], shape, _moments(0.5 * y * (e + 1)))

    # -- squeeze and excitation
    def gate(self, x: str, g: str) -> str:
        """x * g with g of shape (channels, 1, 1): channel attention. Statistics as if x and g
        were independent."""
        (mx, vx), (mg, vg) = self.stats(x), self.stats(g)
        second = (vx + mx * mx) * (vg + mg * mg)
        return self._node("Mul", [x, g], self.shape(x), (mx * mg, np.maximum(second - (mx * mg) ** 2, 0.0)))

    def squeeze_excite(self, x: str, squeeze: int, *, name: str) -> str:
        """torchvision's SqueezeExcitation with SiLU inside: pool, 1x1 conv down, SiLU, 1x1 conv
        up, Sigmoid, scale the input's channels."""
        c = self.shape(x)[0]
        s = self.silu(self.conv(self.global_avgpool(x), squeeze, 1, pad=0, bias=True, name=f"{name}.fc1"))
        s = self.sigmoid(self.conv(s, c, 1, pad=0, bias=True, name=f"{name}.fc2"))
        return self.gate(x, s)

    # -- channels last
    def transpose(self, x: str, perm: Sequence[int]) -> str:
        """Transpose with ``perm`` over all axes, batch first (perm[0] must be 0)."""
        assert perm[0] == 0, "the batch axis stays first"
        shape = self.shape(x)
        return self._node("Transpose", [x], tuple(shape[p - 1] for p in perm[1:]), self.stats(x), perm=list(perm))

    def layer_norm(self, x: str, *, name: str, eps: float = 1e-6) -> str:
        """LayerNormalization over the last axis with random gains in [0.5, 1.5] and biases of
        standard deviation 0.2. Each position is normalized by its mean and spread over channels,
        whose expectations the per-channel statistics give."""
        c = self.shape(x)[-1]
        gamma, beta = self._uniform(c, 0.5, 1.5), self._normal(c, 0.2)
        mean, var = self.stats(x)
        spread = math.sqrt(float(np.mean(var) + np.var(mean)) + eps)
        stats = (gamma * (mean - mean.mean()) / spread + beta, gamma**2 * var / spread**2)
        ins = [x, self.init(f"{name}.weight", gamma), self.init(f"{name}.bias", beta)]
        return self._node("LayerNormalization", ins, self.shape(x), stats, name=name, axis=-1, epsilon=eps)

    def linear_last(self, x: str, fout: int, *, name: str, gain: float = 1.0) -> str:
        """nn.Linear on the last axis of a tensor of rank > 2, as exported: MatMul with the
        weight transposed to (in, out), then Add of the bias."""
        fin = self.shape(x)[-1]
        weight = self._normal((fin, fout), math.sqrt(gain / fin))
        bias = self._normal(fout, 0.05)
        mean, var = self.stats(x)
        w = weight.astype(np.float64)
        shape = (*self.shape(x)[:-1], fout)
        y = self._node("MatMul", [x, self.init(f"{name}.weight", weight)], shape, (mean @ w, var @ w**2))
        m, v = self.stats(y)
        return self._node("Add", [y, self.init(f"{name}.bias", bias)], shape, (m + bias, v))

    def layer_scale(self, x: str, *, name: str, lo: float = 0.2, hi: float = 1.0) -> str:
        """Mul by a learned per-channel scale on the last axis (ConvNeXt's gamma), drawn in
        [lo, hi]: large enough that every block shows in the output."""
        c = self.shape(x)[-1]
        gamma = self._uniform(c, lo, hi)
        mean, var = self.stats(x)
        return self._node("Mul", [x, self.init(name, gamma)], self.shape(x), (gamma * mean, gamma**2 * var))
