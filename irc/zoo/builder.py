"""A small fluent writer of ONNX graphs, so that each zoo model reads like its PyTorch definition.

Weights are drawn from one ``numpy.random.default_rng(seed)``, so a model is the same bytes for
the same arguments. Without training, deep nets keep activations of order one only if their
weights and BatchNorm statistics agree with the data that flows through them. The builder
therefore

- draws conv and linear weights He-style (variance 2/fan_in), which preserves the mean square
  across a ReLU, so nets without BatchNorm keep their scale;
- tracks, for every tensor, the mean and variance of each channel when the inputs are standard
  normal: exactly through convs, linear layers, BatchNorm and adds (given the drawn weights,
  taking elements as independent), through ReLU as for a Gaussian, through max pooling with the
  Gaussian extreme-value constants; and
- sets each BatchNorm's running mean and variance to its input's tracked statistics, perturbed
  (mean by 0.1 standard deviation, variance by a factor in [0.5, 1.5]), with random scales and
  biases, so normalized activations are of order one however deep the net.

The approximations (spatial correlation and zero padding are ignored) can be off by a modest
factor; the root mean square of every activation of every zoo model stays within [0.05, 20]
(tests/test_zoo.py checks it with onnxruntime).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17

#: Expected maximum and variance of the maximum of n independent standard normals.
_MAX_OF_N = {1: (0.0, 1.0), 4: (1.0294, 0.4917), 9: (1.4850, 0.3574)}

Stats = tuple[np.ndarray, np.ndarray]  # per-channel (mean, variance)


class OnnxBuilder:
    """Emits ONNX nodes and initializers for an NCHW (or N x features) network.

    Every tensor is named by a string; the builder knows its shape without the batch dimension
    (``shape(x)``) and its per-channel statistics, so layer methods need no channel counts.
    """

    def __init__(self, name: str, *, seed: int = 0, batch: int | None = None):
        self.name = name
        self.batch: int | str = "N" if batch is None else int(batch)
        self.rng = np.random.default_rng(seed)
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self.inputs: list[onnx.ValueInfoProto] = []
        self._shape: dict[str, tuple[int, ...]] = {}
        self._stats: dict[str, Stats] = {}
        self._count: dict[str, int] = {}

    # -- bookkeeping
    def shape(self, x: str) -> tuple[int, ...]:
        """Shape of ``x`` without the batch dimension."""
        return self._shape[x]

    def stats(self, x: str) -> Stats:
        """Tracked (mean, variance) of each channel (or feature) of ``x``."""
        return self._stats[x]

    def _fresh(self, kind: str) -> str:
        n = self._count.get(kind, 0) + 1
        self._count[kind] = n
        return f"{kind}{n}" if n > 1 else kind

    def _node(self, op: str, inputs: Sequence[str], shape: tuple[int, ...], stats: Stats, *,
              name: str | None = None, **attrs) -> str:
        name = name or self._fresh(op.lower())  # also the output's name: ONNX keeps the two apart
        self.nodes.append(helper.make_node(op, list(inputs), [name], name=name, **attrs))
        self._shape[name] = tuple(int(d) for d in shape)
        self._stats[name] = stats
        return name

    def _plain(self, op: str, inputs: Sequence[str], **attrs) -> str:
        """A node on shape values (no tracked statistics)."""
        name = self._fresh(op.lower())
        self.nodes.append(helper.make_node(op, list(inputs), [name], name=name, **attrs))
        return name

    def init(self, name: str, data: np.ndarray) -> str:
        """An initializer (weight or constant) named ``name``."""
        self.inits.append(numpy_helper.from_array(np.asarray(data, order="C"), name))
        return name

    def _normal(self, shape, std: float | np.ndarray) -> np.ndarray:
        return (self.rng.standard_normal(shape) * std).astype(np.float32)

    def _uniform(self, shape, lo: float, hi: float) -> np.ndarray:
        return self.rng.uniform(lo, hi, shape).astype(np.float32)

    # -- graph ends
    def input(self, name: str, shape: Sequence[int]) -> str:
        """A float32 input of ``shape`` (without batch), standard normal by assumption."""
        self.inputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, [self.batch, *shape]))
        self._shape[name] = tuple(shape)
        self._stats[name] = (np.zeros(shape[0]), np.ones(shape[0]))
        return name

    def model(self, output: str, name: str = "output", *, doc: str = "") -> onnx.ModelProto:
        """The finished, checked ModelProto with ``output`` renamed to ``name``."""
        for n in self.nodes:
            n.output[:] = [name if o == output else o for o in n.output]
        out = helper.make_tensor_value_info(name, TensorProto.FLOAT, [self.batch, *self._shape[output]])
        graph = helper.make_graph(self.nodes, self.name, self.inputs, [out], initializer=self.inits)
        m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="irc.zoo",
                              doc_string=doc)
        m.ir_version = 8  # what opset 17 needs; keeps the file readable by older runtimes
        onnx.checker.check_model(m, full_check=True)
        return m

    # -- layers
    def conv(self, x: str, cout: int, k: int, *, stride: int = 1, pad: int | None = None, group: int = 1,
             bias: bool = False, gain: float = 2.0, name: str | None = None) -> str:
        """2-D convolution, ``k`` x ``k`` kernel, padding k//2 unless given."""
        cin, h, w = self.shape(x)
        pad = k // 2 if pad is None else pad
        fan_in = cin // group * k * k
        name = name or self._fresh("conv")
        weight = self._normal((cout, cin // group, k, k), math.sqrt(gain / fan_in))
        b = self._normal(cout, 0.05) if bias else np.zeros(cout, np.float32)
        ins = [x, self.init(f"{name}.weight", weight)] + ([self.init(f"{name}.bias", b)] if bias else [])
        # Per group: out channel o sees in channels of its group through sum_k w (mean), sum_k w^2 (var).
        mean, var = (s.reshape(group, cin // group) for s in self.stats(x))
        w1 = weight.sum((2, 3), dtype=np.float64).reshape(group, cout // group, cin // group)
        w2 = (weight.astype(np.float64) ** 2).sum((2, 3)).reshape(group, cout // group, cin // group)
        stats = (np.einsum("goi,gi->go", w1, mean).ravel() + b, np.einsum("goi,gi->go", w2, var).ravel())
        ho, wo = (h + 2 * pad - k) // stride + 1, (w + 2 * pad - k) // stride + 1
        return self._node("Conv", ins, (cout, ho, wo), stats, name=name, kernel_shape=[k, k],
                          strides=[stride, stride], pads=[pad] * 4, group=group)

    def bn(self, x: str, *, name: str | None = None, eps: float = 1e-5) -> str:
        """BatchNormalization (inference) with running statistics near the input's own."""
        c = self.shape(x)[0]
        name = name or self._fresh("bn")
        mean, var = self.stats(x)
        gamma, beta = self._uniform(c, 0.5, 1.5), self._normal(c, 0.2)
        rmean = (mean + self._normal(c, 0.1 * np.sqrt(var))).astype(np.float32)
        rvar = (var * self._uniform(c, 0.5, 1.5)).astype(np.float32)
        ins = [x, self.init(f"{name}.weight", gamma), self.init(f"{name}.bias", beta),
               self.init(f"{name}.running_mean", rmean), self.init(f"{name}.running_var", rvar)]
        scale = gamma / np.sqrt(rvar + eps)
        stats = (scale * (mean - rmean) + beta, scale**2 * var)
        return self._node("BatchNormalization", ins, self.shape(x), stats, name=name, epsilon=eps)

    def relu(self, x: str) -> str:
        return self._node("Relu", [x], self.shape(x), _relu_stats(*self.stats(x)))

    def relu6(self, x: str) -> str:
        """ReLU6 as PyTorch exports it: Clip(x, 0, 6) with the bounds as constant inputs.
        (Tracked as a ReLU: activations of order one rarely reach 6.)"""
        lo = self.init(self._fresh("clip_min"), np.array(0, np.float32))
        hi = self.init(self._fresh("clip_max"), np.array(6, np.float32))
        return self._node("Clip", [x, lo, hi], self.shape(x), _relu_stats(*self.stats(x)))

    def add(self, a: str, b: str) -> str:
        (ma, va), (mb, vb) = self.stats(a), self.stats(b)
        return self._node("Add", [a, b], self.shape(a), (ma + mb, va + vb))

    def maxpool(self, x: str, k: int, stride: int | None = None, pad: int = 0) -> str:
        c, h, w = self.shape(x)
        s = stride or k
        ho, wo = (h + 2 * pad - k) // s + 1, (w + 2 * pad - k) // s + 1
        e, v = _MAX_OF_N.get(k * k, _MAX_OF_N[9])
        mean, var = self.stats(x)
        return self._node("MaxPool", [x], (c, ho, wo), (mean + e * np.sqrt(var), v * var), kernel_shape=[k, k],
                          strides=[s, s], pads=[pad] * 4)

    def global_avgpool(self, x: str) -> str:
        c, h, w = self.shape(x)
        mean, var = self.stats(x)
        return self._node("GlobalAveragePool", [x], (c, 1, 1), (mean, var / (h * w)))

    def _flat_stats(self, x: str) -> Stats:
        per = int(np.prod(self.shape(x)[1:]))
        return tuple(np.repeat(s, per) for s in self.stats(x))

    def flatten(self, x: str) -> str:
        """torch.flatten(x, 1) as exported: Flatten(axis=1)."""
        size = int(np.prod(self.shape(x)))
        return self._node("Flatten", [x], (size,), self._flat_stats(x), axis=1)

    def view_flatten(self, x: str) -> str:
        """``x.view(x.size(0), -1)`` as exported: Shape -> Gather -> Unsqueeze -> Concat -> Reshape.
        An importer must fold the shape arithmetic to a constant."""
        size = int(np.prod(self.shape(x)))
        dim0 = self._plain("Gather", [self._plain("Shape", [x]), self.init(self._fresh("zero"), np.array(0, np.int64))],
                           axis=0)
        dim0 = self._plain("Unsqueeze", [dim0, self.init(self._fresh("axes"), np.array([0], np.int64))])
        target = self._plain("Concat", [dim0, self.init(self._fresh("minus_one"), np.array([-1], np.int64))], axis=0)
        return self._node("Reshape", [x, target], (size,), self._flat_stats(x))

    def linear(self, x: str, fout: int, *, gain: float = 2.0, name: str | None = None) -> str:
        """nn.Linear as exported: Gemm(x, W, b, transB=1) with W of shape (out, in)."""
        (fin,) = self.shape(x)
        name = name or self._fresh("fc")
        weight = self._normal((fout, fin), math.sqrt(gain / fin))
        b = self._normal(fout, 0.05)
        ins = [x, self.init(f"{name}.weight", weight), self.init(f"{name}.bias", b)]
        mean, var = self.stats(x)
        w = weight.astype(np.float64)
        return self._node("Gemm", ins, (fout,), (w @ mean + b, w**2 @ var), name=name, transB=1)

    def softmax(self, x: str) -> str:
        n = self.shape(x)[-1]
        return self._node("Softmax", [x], self.shape(x), (np.full(n, 1 / n), np.zeros(n)), axis=-1)

    # -- common blocks
    def conv_bn(self, x: str, cout: int, k: int, *, relu: str | None = "relu", name: str, **conv) -> str:
        """conv (no bias) -> BatchNorm -> optional activation ("relu", "relu6" or None)."""
        y = self.bn(self.conv(x, cout, k, name=f"{name}.0", **conv), name=f"{name}.1")
        if relu == "relu":
            return self.relu(y)
        if relu == "relu6":
            return self.relu6(y)
        return y


def _relu_stats(mean: np.ndarray, var: np.ndarray) -> Stats:
    """Mean and variance of max(0, y) for y ~ N(mean, var), per channel."""
    s = np.sqrt(np.maximum(var, 1e-30))
    a = mean / s
    cdf = 0.5 * (1 + np.vectorize(math.erf)(a / math.sqrt(2)))
    pdf = np.exp(-0.5 * a * a) / math.sqrt(2 * math.pi)
    m1 = mean * cdf + s * pdf
    m2 = (mean**2 + var) * cdf + mean * s * pdf
    return m1, np.maximum(m2 - m1**2, 0.0)
