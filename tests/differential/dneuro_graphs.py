"""Random float networks of the layers the DNeuro flow maps (irc/targets/dneuro/mapping.py), with
a random calibration set and test frames, for the int8 differential test.

A network starts from one image input (N, C, H, W) and grows by ``max_ops`` layers at most; each
layer reads the last value or, for the two-input layers (residual add, channel concat), the last
value and an earlier one of a matching shape. The layers and the blocks they become:

- conv: kernel 1 to 3 per side (at most the frame's), stride 1 or 2, pads 0 to kernel - 1 per
  side, group 1, depthwise (group = channels, a channel multiplier of 1 or 2) or another divisor;
  an optional bias; optionally batch_norm after it (folded into it);
- max_pool (kernel 1 to 3, stride 1 or 2, pads below the kernel), global max and average pool;
- fully connected: flatten (reshape to (N, features)) then gemm or matmul of constant weights;
- residual add of two same-shape values, channel concat of two frames of one size (an earlier
  value, or a side branch drawn for it: a 'same' conv, or a fully connected layer on vectors);
- relu, clip(0, 6) (the saturation of the block before, or a table), sigmoid (a table);
- nearest resize by 2 (upsample);
- optionally softmax as the last layer of a classifier (the accelerator's arg-max).

Weights are He-scaled normal draws so that activations keep their range through the layers.

The generator keeps to what the flow maps after the quantize pass, not only before it (its float
check accepts more): a network starts with a conv (its first layer reads the input the host
quantizes) and ends with a conv or fully connected layer, then the optional softmax (its output
must be a block's); the values a max pool, table, concat or upsample computes stay float islands
after quantization, so a flatten or an average pool never reads one directly (a conv comes
between, or the pool is a max pool). A zero ``pad`` before a conv is left out: the quantize pass
keeps it in float, where the quantized mapping refuses it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from hypothesis import strategies as st

from irc.ir import Graph, GraphBuilder
from irc.ir.graph import Value

CALIB_FRAMES = 8


@dataclass
class DneuroCase:
    graph: Graph  # the float network
    calib: dict[str, np.ndarray]  # its calibration set, CALIB_FRAMES frames
    inputs: list[np.ndarray]  # the test frames (one batch of the graph's input)
    scheme: str  # activation scheme of the quantize pass: "asym" or "sym"

    def describe(self) -> str:
        from irc.ir.printer import print_graph

        return f"# activation_scheme {self.scheme}\n" + print_graph(self.graph)


class _Net:
    """The network being drawn: a builder, its values, and hypothesis's draw."""

    def __init__(self, draw, seed: int):
        self.draw = draw
        self.b = GraphBuilder("random_int8")
        self.rng = np.random.default_rng(seed)
        self.values: list[Value] = []
        #: values an integer layer computes (conv, fc, average pool, add, with their activation);
        #: the others (pools of codes, tables, concat, upsample) stay float islands after quantization
        self.coded: set[Value] = set()

    def weight(self, shape, fan_in: int) -> Value:
        return self.b.param("w", (self.rng.standard_normal(shape) * math.sqrt(2.0 / fan_in)).astype(np.float32))

    def vector(self, n: int, scale: float = 0.1, positive: bool = False) -> Value:
        a = self.rng.uniform(0.5, 1.5, n) if positive else self.rng.standard_normal(n) * scale
        return self.b.param("v", a.astype(np.float32))

    def last(self) -> Value:
        return self.values[-1]

    def frames(self) -> Value | None:
        x = self.last()
        return x if x.type.rank == 4 else None

    def activation(self, v: Value) -> Value:
        """An integer layer's output ``v``, with an optional ReLU or Clip (its saturation)."""
        act = self.draw(st.sampled_from(["none", "relu", "clip"]))
        if act == "relu":
            v = self.b.op("relu", v)
        elif act == "clip":
            v = self.b.op("clip", v, min=0.0, max=6.0)
        self.coded.add(v)
        return v


def _conv(net: _Net) -> Value | None:
    """A conv of the last value (None unless it is a frame); its kernel fits the frame."""
    x = net.frames()
    if x is None:
        return None
    d = net.draw
    _, c, h, w = x.shape
    kh, kw = d(st.integers(1, min(3, h))), d(st.integers(1, min(3, w)))
    pads = (d(st.integers(0, kh - 1)), d(st.integers(0, kw - 1)), d(st.integers(0, kh - 1)), d(st.integers(0, kw - 1)))
    s = d(st.integers(1, 2))
    kind = d(st.sampled_from(["dense", "depthwise", "grouped"]))
    if kind == "depthwise":
        group, cout = c, c * d(st.integers(1, 2))
    elif kind == "grouped":
        group = d(st.sampled_from([g for g in range(1, c + 1) if c % g == 0]))
        cout = group * d(st.integers(1, 3))
    else:
        group, cout = 1, d(st.integers(1, 8))
    fan_in = c // group * kh * kw
    ins = [x, net.weight((cout, c // group, kh, kw), fan_in)] + ([net.vector(cout)] if d(st.booleans()) else [])
    y = net.b.op("conv", *ins, strides=(s, s), pads=pads, dilations=(1, 1), group=group)
    if d(st.booleans()):
        y = net.b.op("batch_norm", y, net.vector(cout, 1.0, positive=True), net.vector(cout), net.vector(cout),
                     net.vector(cout, 1.0, positive=True))
    return net.activation(y)


def _fc(net: _Net) -> Value:
    """A fully connected layer on the last value (flattened if it is a frame)."""
    x = net.last()
    if x.type.rank == 4 and x not in net.coded:  # the flow flattens codes only, not a float island
        x = _conv(net)
    if x.type.rank == 4:
        x = net.b.op("reshape", x, shape=(x.shape[0], math.prod(x.shape[1:])))
    k, n = x.shape[1], net.draw(st.integers(1, 10))
    if net.draw(st.booleans()):
        y = net.b.op("matmul", x, net.weight((k, n), k))
    else:
        trans_b = net.draw(st.booleans())
        w = net.weight((n, k) if trans_b else (k, n), k)
        bias = [net.vector(n)] if net.draw(st.booleans()) else []
        y = net.b.op("gemm", x, w, *bias, trans_b=int(trans_b))
    return net.activation(y)


def _max_pool(net: _Net) -> Value | None:
    x = net.frames()
    if x is None:
        return None
    d = net.draw
    k, s = d(st.integers(1, 3)), d(st.integers(1, 2))
    p = d(st.integers(0, k - 1))
    if min(x.shape[2:]) + 2 * p < k:
        return None
    return net.b.op("max_pool", x, kernel_shape=(k, k), strides=(s, s), pads=(p, p, p, p), dilations=(1, 1))


def _global_pool(net: _Net) -> Value | None:
    x = net.frames()
    if x is None:
        return None
    # the mean of a float island stays float after quantization (the flow refuses it): max then
    op = net.draw(st.sampled_from(["global_average_pool", "global_max_pool"])) if x in net.coded else "global_max_pool"
    y = net.b.op(op, x)
    if op == "global_average_pool":
        net.coded.add(y)
    return y


def _partner(net: _Net, pred) -> Value | None:
    """An earlier layer's value for a two-input layer with the last one (None if there is none; not
    the graph input, which the host quantizes for the first layer alone)."""
    ok = [v for v in net.values[1:-1] if pred(v)]
    return net.draw(st.sampled_from(ok)) if ok else None


def _branch(net: _Net, x: Value, channels: int) -> Value:
    """A side branch off ``x`` that keeps its frame size: a stride-1 'same' conv of ``channels``
    outputs (or, for a vector, a fully connected layer of ``channels`` outputs)."""
    d = net.draw
    if x.type.rank == 2:
        k = x.shape[1]
        return net.activation(net.b.op("gemm", x, net.weight((k, channels), k), net.vector(channels)))
    c = x.shape[1]
    k = d(st.sampled_from([1, 3]))
    group = c if channels % c == 0 and d(st.booleans()) else 1
    y = net.b.op("conv", x, net.weight((channels, c // group, k, k), c // group * k * k), net.vector(channels),
                 strides=(1, 1), pads=(k // 2,) * 4, dilations=(1, 1), group=group)
    return net.activation(y)


def _add(net: _Net) -> Value | None:
    """A residual add: the last value plus an earlier one of its shape, or plus a branch off it."""
    x = net.last()
    y = _partner(net, lambda v: v.shape == x.shape)
    if y is None or net.draw(st.booleans()):
        y = _branch(net, x, x.shape[1])
    return net.activation(net.b.op("add", y, x))


def _concat(net: _Net) -> Value | None:
    """A channel concat: the last frame and an earlier one of its size, or a branch off it."""
    x = net.frames()
    if x is None:
        return None
    y = _partner(net, lambda v: v.type.rank == 4 and v.shape[0] == x.shape[0] and v.shape[2:] == x.shape[2:])
    if y is None or net.draw(st.booleans()):
        y = _branch(net, x, net.draw(st.integers(1, 4)))
    return net.b.op("concat", y, x, axis=1)


def _unary(net: _Net) -> Value | None:
    op = net.draw(st.sampled_from(["relu", "clip", "sigmoid"]))
    return net.b.op(op, net.last(), **({"min": 0.0, "max": 6.0} if op == "clip" else {}))


def _upsample(net: _Net) -> Value | None:
    x = net.frames()
    if x is None or max(x.shape[2:]) > 8:
        return None
    return net.b.op("resize", x, mode="nearest", scales=(1.0, 1.0, 2.0, 2.0),
                    coordinate_transformation_mode="asymmetric", nearest_mode="floor")


LAYERS = {"conv": _conv, "fc": _fc, "max_pool": _max_pool, "global_pool": _global_pool, "add": _add,
          "concat": _concat, "activation": _unary, "upsample": _upsample}


@st.composite
def dneuro_graphs(draw, max_ops: int = 6) -> DneuroCase:
    """A random network (see the module doc), its calibration set and its test frames."""
    seed = draw(st.integers(0, 2**31 - 1))
    net = _Net(draw, seed)
    batch = draw(st.sampled_from([1, 2]))
    shape = (batch, draw(st.integers(1, 4)), draw(st.integers(2, 10)), draw(st.integers(2, 10)))
    x = net.b.input("x", shape)
    net.values.append(x)
    net.values.append(_conv(net))  # the first layer: a conv (see the module doc)
    for _ in range(draw(st.integers(0, max_ops - 2))):
        y = LAYERS[draw(st.sampled_from(sorted(LAYERS)))](net)
        if y is not None and y.type.size > 0:
            net.values.append(y)
    last = _conv(net) if draw(st.booleans()) else None  # the last layer: a conv or fc (module doc)
    net.values.append(_fc(net) if last is None else last)
    out = net.last()
    if out.type.rank == 2 and out.shape[1] > 1 and draw(st.booleans()):
        out = net.b.op("softmax", out, axis=1)
    g = net.b.build(out)
    rng = np.random.default_rng(seed + 1)
    calib = rng.standard_normal((CALIB_FRAMES, *shape[1:])).astype(np.float32)
    # test frames: the calibration distribution, wider, so that some codes saturate
    x = (rng.standard_normal(shape) * 1.5).astype(np.float32)
    return DneuroCase(g, {"x": calib}, [x], draw(st.sampled_from(["asym", "sym"])))
