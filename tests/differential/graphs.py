"""Random well-formed graphs for differential testing: hypothesis strategies over the op registry.

A graph starts from one or two float32 inputs of random rank (1 to 4) and sides (1 to 6) and
grows by ``ops`` steps; each step picks a value already made (so chains and diamonds both occur:
an op may take any earlier value, and binary ops combine two of them), an op that applies to it,
and that op's attributes. Weights an op needs (matmul, gemm, conv, batch_norm, layer_norm, a
broadcast operand) are new parameters of random values. The graph's outputs are the last value
and, sometimes, one earlier value.

Every value carries a bound on its magnitude, propagated through each op, so the generator only
applies an op where its result stays finite and meaningful: exp only below 10, log and sqrt only
of abs(x) plus a margin, division only by abs(y) + 1. The comparison tolerance scales with that
bound (see ``tolerance``): kernels reassociate float sums, so the absolute error of a sum grows
with the magnitude of its terms, not of its result.

The ops covered are listed in OPS (name -> how to apply it); a new op joins the tester by one
entry there. A target that maps only some ops passes its own table (hls_graphs.py).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from hypothesis import strategies as st

from irc.ir import Graph, GraphBuilder
from irc.ir.graph import Value
from irc.ir.ops.activation import ACTIVATIONS

MAX_SIDE = 6
#: largest magnitude a value may reach (keeps float32 sums far from overflow)
LIMIT = 1e6


@dataclass
class Node:
    value: Value
    bound: float  # |value| <= bound for the inputs the generator draws (uniform in [-1, 1])

    @property
    def shape(self) -> tuple[int, ...]:
        return self.value.shape


class Growing:
    """The graph being drawn: a builder, its values with their bounds, and hypothesis's draw."""

    def __init__(self, draw, seed: int):
        self.draw = draw
        self.b = GraphBuilder("random")
        self.rng = np.random.default_rng(seed)
        self.values: list[Node] = []

    def param(self, shape, scale: float = 1.0, positive: bool = False) -> Node:
        a = self.rng.uniform(0.5 if positive else -1.0, 1.0, shape).astype(np.float32) * np.float32(scale)
        return Node(self.b.param("w", a), float(np.abs(a).max(initial=0.0)))

    def op(self, name: str, inputs: list[Node], bound: float, **attrs) -> Node:
        return Node(self.b.op(name, *(n.value for n in inputs), **attrs), bound)

    def pick(self, pred: Callable[[Node], bool] = lambda n: True) -> Node | None:
        ok = [n for n in self.values if pred(n) and n.value.dtype.is_float]
        return self.draw(st.sampled_from(ok)) if ok else None


# --------------------------------------------------------------------------- the ops


def _unary(name: str, out_bound: Callable[[float], float], ok: Callable[[float], bool] = lambda b: True,
           **attrs):
    def apply(gr: Growing) -> Node | None:
        x = gr.pick(lambda n: ok(n.bound))
        return None if x is None else gr.op(name, [x], out_bound(x.bound), **attrs)

    return apply


def _log(gr: Growing) -> Node | None:
    x = gr.pick()
    if x is None:
        return None
    shifted = gr.op("add", [gr.op("abs", [x], x.bound), gr.param((), 0.5, positive=True)], x.bound + 0.5)
    return gr.op("log", [shifted], math.log(shifted.bound) + 1.0)


def _sqrt(gr: Growing) -> Node | None:
    x = gr.pick()
    return None if x is None else gr.op("sqrt", [gr.op("abs", [x], x.bound)], math.sqrt(x.bound))


def _broadcast_shape(gr: Growing, shape: tuple[int, ...]) -> tuple[int, ...]:
    """A shape that broadcasts against ``shape``: a suffix of it, some sides set to 1."""
    k = gr.draw(st.integers(0, len(shape)))
    return tuple(d if gr.draw(st.booleans()) else 1 for d in shape[len(shape) - k:])


def _other(gr: Growing, x: Node) -> Node:
    """A second operand for ``x``: an earlier value of a broadcastable shape, or a new weight."""
    same = [n for n in gr.values if n is not x and n.value.dtype.is_float and _broadcasts(n.shape, x.shape)]
    if same and gr.draw(st.booleans()):
        return gr.draw(st.sampled_from(same))
    return gr.param(_broadcast_shape(gr, x.shape))


def _broadcasts(a: tuple[int, ...], b: tuple[int, ...]) -> bool:
    """``a`` broadcasts to exactly ``b`` (so the result keeps b's shape)."""
    return len(a) <= len(b) and all(p in (1, q) for p, q in zip(a[::-1], b[::-1]))


def _binary(name: str, combine: Callable[[float, float], float]):
    def apply(gr: Growing) -> Node | None:
        x = gr.pick()
        if x is None:
            return None
        y = _other(gr, x)
        return gr.op(name, [x, y], combine(x.bound, y.bound))

    return apply


def _div(gr: Growing) -> Node | None:
    x = gr.pick()
    if x is None:
        return None
    y = _other(gr, x)
    den = gr.op("add", [gr.op("abs", [y], y.bound), gr.param((), 1.0, positive=True)], y.bound + 1.0)
    return gr.op("div", [x, den], x.bound * 2.0)


def _where(gr: Growing) -> Node | None:
    x = gr.pick()
    if x is None:
        return None
    y = _other(gr, x)
    cond = Node(gr.b.op("greater", x.value, y.value), 1.0)
    return gr.op("where", [cond, x, y], max(x.bound, y.bound))


def _axis(gr: Growing, rank: int) -> int:
    return gr.draw(st.integers(-rank, rank - 1))


def _reduce(name: str):
    def apply(gr: Growing) -> Node | None:
        x = gr.pick(lambda n: n.value.type.rank >= 1)
        if x is None:
            return None
        r = x.value.type.rank
        axes = sorted(set(gr.draw(st.lists(st.integers(0, r - 1), min_size=1, max_size=r))))
        count = math.prod(x.shape[a] for a in axes)
        bound = x.bound * count if name == "reduce_sum" else x.bound
        return gr.op(name, [x], bound, axes=tuple(axes), keepdims=int(gr.draw(st.booleans())))

    return apply


def _softmax(name: str):
    def apply(gr: Growing) -> Node | None:
        x = gr.pick(lambda n: n.value.type.rank >= 1)
        if x is None:
            return None
        axis = _axis(gr, x.value.type.rank)
        bound = 1.0 if name == "softmax" else 2 * x.bound + math.log(x.shape[axis]) + 1
        return gr.op(name, [x], bound, axis=axis)

    return apply


def _matmul(gr: Growing, min_rank: int = 2, max_rank: int | None = None) -> Node | None:
    """A product with a random [K, N] weight, on a value of rank min_rank..max_rank (any above)."""
    x = gr.pick(lambda n: n.value.type.rank >= min_rank and (max_rank is None or n.value.type.rank <= max_rank))
    if x is None:
        return None
    k, n = x.shape[-1], gr.draw(st.integers(1, 8))
    w = gr.param((k, n))
    return gr.op("matmul", [x, w], x.bound * w.bound * k)


def _gemm(gr: Growing) -> Node | None:
    x = gr.pick(lambda n: n.value.type.rank == 2)
    if x is None:
        return None
    k, n = x.shape[1], gr.draw(st.integers(1, 9))
    trans_b = gr.draw(st.booleans())
    w = gr.param((n, k) if trans_b else (k, n))
    c = gr.param(_broadcast_shape(gr, (x.shape[0], n))) if gr.draw(st.booleans()) else None
    alpha, beta = gr.draw(st.sampled_from([1.0, 0.5])), gr.draw(st.sampled_from([1.0, -2.0]))
    act = gr.draw(st.sampled_from(sorted(a for a in ACTIVATIONS if a in ("none", "relu", "sigmoid", "tanh"))))
    bound = abs(alpha) * x.bound * w.bound * k + (abs(beta) * c.bound if c is not None else 0.0)
    return gr.op("gemm", [x, w] + ([c] if c is not None else []), bound, trans_b=int(trans_b), alpha=alpha,
                 beta=beta, act=act)


def _window(gr: Growing, size: tuple[int, int]) -> dict | None:
    """Kernel, strides, pads and dilations of a 2-D window that fits ``size``."""
    k = gr.draw(st.integers(1, 3))
    d = gr.draw(st.integers(1, 2))
    s = gr.draw(st.integers(1, 2))
    p = gr.draw(st.integers(0, k - 1))
    span = (k - 1) * d + 1
    if any(side + 2 * p < span for side in size):
        return None
    return {"k": k, "strides": (s, s), "pads": (p, p, p, p), "dilations": (d, d)}


def _conv(gr: Growing) -> Node | None:
    x = gr.pick(lambda n: n.value.type.rank == 4)
    if x is None:
        return None
    c = x.shape[1]
    win = _window(gr, x.shape[2:])
    if win is None:
        return None
    group = gr.draw(st.sampled_from([g for g in (1, 2, c) if c % g == 0]))
    cout = group * gr.draw(st.integers(1, 3))
    w = gr.param((cout, c // group, win["k"], win["k"]))
    bias = [gr.param((cout,))] if gr.draw(st.booleans()) else []
    taps = c // group * win["k"] ** 2
    return gr.op("conv", [x, w, *bias], x.bound * taps + 1.0, strides=win["strides"], pads=win["pads"],
                 dilations=win["dilations"], group=group)


def _pool(name: str):
    def apply(gr: Growing) -> Node | None:
        x = gr.pick(lambda n: n.value.type.rank == 4)
        if x is None:
            return None
        win = _window(gr, x.shape[2:])
        if win is None or win["pads"][0] >= win["k"]:
            return None
        extra = {"count_include_pad": int(gr.draw(st.booleans()))} if name == "average_pool" else {}
        return gr.op(name, [x], x.bound, kernel_shape=(win["k"], win["k"]), strides=win["strides"],
                     pads=win["pads"], dilations=win["dilations"] if name == "max_pool" else (1, 1), **extra)

    return apply


def _global_pool(name: str):
    def apply(gr: Growing) -> Node | None:
        x = gr.pick(lambda n: n.value.type.rank == 4)
        return None if x is None else gr.op(name, [x], x.bound)

    return apply


def _batch_norm(gr: Growing) -> Node | None:
    x = gr.pick(lambda n: n.value.type.rank >= 2)
    if x is None:
        return None
    c = x.shape[1]
    scale, bias, mean = gr.param((c,)), gr.param((c,)), gr.param((c,))
    var = gr.param((c,), 1.0, positive=True)
    return gr.op("batch_norm", [x, scale, bias, mean, var], (x.bound + 1.0) / math.sqrt(0.5) + 1.0)


def _layer_norm(gr: Growing) -> Node | None:
    x = gr.pick(lambda n: n.value.type.rank >= 1 and n.shape[-1] > 1)
    if x is None:
        return None
    n = x.shape[-1]
    return gr.op("layer_norm", [x, gr.param((n,)), gr.param((n,))], math.sqrt(n) + 1.0, axis=-1)


def _transpose(gr: Growing) -> Node | None:
    x = gr.pick(lambda n: n.value.type.rank >= 2)
    if x is None:
        return None
    perm = gr.draw(st.permutations(range(x.value.type.rank)))
    return gr.op("transpose", [x], x.bound, perm=tuple(perm))


def _reshape(gr: Growing) -> Node | None:
    x = gr.pick(lambda n: n.value.type.rank >= 1)
    if x is None:
        return None
    shape = list(x.shape)
    if len(shape) >= 2 and gr.draw(st.booleans()):  # merge two neighbouring sides
        i = gr.draw(st.integers(0, len(shape) - 2))
        shape[i:i + 2] = [shape[i] * shape[i + 1]]
    else:  # split a side into two factors
        i = gr.draw(st.integers(0, len(shape) - 1))
        f = gr.draw(st.sampled_from([d for d in range(1, shape[i] + 1) if shape[i] % d == 0]))
        shape[i:i + 1] = [f, shape[i] // f]
        if len(shape) > 4:
            return None
    return gr.op("reshape", [x], x.bound, shape=tuple(shape))


def _concat(gr: Growing) -> Node | None:
    x = gr.pick(lambda n: n.value.type.rank >= 1)
    if x is None:
        return None
    axis = _axis(gr, x.value.type.rank)
    partners = [n for n in gr.values if n.value.dtype.is_float and n.value.type.rank == x.value.type.rank
                and all(a == b for i, (a, b) in enumerate(zip(n.shape, x.shape)) if i != axis % len(x.shape))]
    y = gr.draw(st.sampled_from(partners))
    return gr.op("concat", [x, y], max(x.bound, y.bound), axis=axis)


def _slice(gr: Growing) -> Node | None:
    x = gr.pick(lambda n: n.value.type.rank >= 1)
    if x is None:
        return None
    axis = gr.draw(st.integers(0, x.value.type.rank - 1))
    side = x.shape[axis]
    step = gr.draw(st.sampled_from([1, 2, -1]))
    a, b = sorted(gr.draw(st.lists(st.integers(0, side), min_size=2, max_size=2)))
    if a == b:
        return None
    starts, ends = ((a,), (b,)) if step > 0 else ((b - 1,), (a - 1 if a > 0 else -side - 1,))
    return gr.op("slice", [x], x.bound, starts=starts, ends=ends, axes=(axis,), steps=(step,))


def _pad(gr: Growing) -> Node | None:
    x = gr.pick(lambda n: 1 <= n.value.type.rank <= 4)
    if x is None:
        return None
    r = x.value.type.rank
    pads = tuple(gr.draw(st.lists(st.integers(0, 2), min_size=2 * r, max_size=2 * r)))
    mode = gr.draw(st.sampled_from(["constant", "edge", "reflect"]))
    if mode == "reflect" and any(p >= d for p, d in zip(pads[:r] + pads[r:], x.shape + x.shape)):
        return None
    return gr.op("pad", [x], max(x.bound, 0.5), pads=pads, mode=mode, value=0.5)


OPS: dict[str, Callable[[Growing], Node | None]] = {
    "neg": _unary("neg", lambda b: b), "abs": _unary("abs", lambda b: b), "relu": _unary("relu", lambda b: b),
    "tanh": _unary("tanh", lambda b: 1.0), "sigmoid": _unary("sigmoid", lambda b: 1.0),
    "erf": _unary("erf", lambda b: 1.0), "softsign": _unary("softsign", lambda b: 1.0),
    "hard_sigmoid": _unary("hard_sigmoid", lambda b: 1.0, alpha=0.3, beta=0.4),
    "hard_swish": _unary("hard_swish", lambda b: b), "leaky_relu": _unary("leaky_relu", lambda b: b, alpha=0.1),
    "elu": _unary("elu", lambda b: b + 1.0), "selu": _unary("selu", lambda b: 1.76 * b + 1.8),
    "softplus": _unary("softplus", lambda b: b + 1.0), "floor": _unary("floor", lambda b: b + 1.0),
    "clip": _unary("clip", lambda b: 0.75, min=-0.25, max=0.75), "sin": _unary("sin", lambda b: 1.0),
    "exp": _unary("exp", lambda b: math.exp(b), ok=lambda b: b <= 10.0), "log": _log, "sqrt": _sqrt,
    "add": _binary("add", lambda a, b: a + b), "sub": _binary("sub", lambda a, b: a + b),
    "mul": _binary("mul", lambda a, b: a * b), "max": _binary("max", max), "min": _binary("min", max),
    "div": _div, "where": _where,
    "reduce_sum": _reduce("reduce_sum"), "reduce_mean": _reduce("reduce_mean"), "reduce_max": _reduce("reduce_max"),
    "softmax": _softmax("softmax"), "log_softmax": _softmax("log_softmax"),
    "matmul": _matmul, "gemm": _gemm, "conv": _conv, "max_pool": _pool("max_pool"),
    "average_pool": _pool("average_pool"), "global_average_pool": _global_pool("global_average_pool"),
    "global_max_pool": _global_pool("global_max_pool"), "batch_norm": _batch_norm, "layer_norm": _layer_norm,
    "transpose": _transpose, "reshape": _reshape, "concat": _concat, "slice": _slice, "pad": _pad,
}


@dataclass
class Case:
    graph: Graph
    inputs: list[np.ndarray]
    bounds: list[float]  # of the outputs

    def describe(self) -> str:
        from irc.ir.printer import print_graph

        return print_graph(self.graph)


@st.composite
def graphs(draw, max_ops: int = 8, ops: dict[str, Callable[[Growing], Node | None]] | None = None) -> Case:
    """A random well-formed graph (see the module doc) and inputs for it, over ``ops`` (default
    OPS: every op; a target's generator passes the subset it maps)."""
    ops = OPS if ops is None else ops
    seed = draw(st.integers(0, 2**31 - 1))
    gr = Growing(draw, seed)
    ninputs = draw(st.integers(1, 2))
    rng = np.random.default_rng(seed + 1)
    inputs = []
    for i in range(ninputs):
        shape = tuple(draw(st.lists(st.integers(1, MAX_SIDE), min_size=1, max_size=4)))
        gr.values.append(Node(gr.b.input(f"x{i}", shape), 1.0))
        inputs.append(rng.uniform(-1, 1, shape).astype(np.float32))
    steps = draw(st.integers(1, max_ops))
    for _ in range(steps):
        name = draw(st.sampled_from(sorted(ops)))
        try:
            node = ops[name](gr)
        except Exception as e:  # a combination the generator should have ruled out is its bug
            raise AssertionError(f"the generator built an invalid {name}: {e}") from e
        if node is not None and node.bound <= LIMIT and 0 < node.value.type.size:
            gr.values.append(node)
    floats = [n for n in gr.values[ninputs:] if n.value.dtype.is_float]
    outs = [floats[-1]] if floats else [gr.values[0]]
    if len(floats) > 2 and draw(st.booleans()):
        extra = draw(st.sampled_from(floats[:-1]))
        if extra.value not in [o.value for o in outs]:
            outs.append(extra)
    g = gr.b.build(*(o.value for o in outs))
    by_name = {f"x{i}": a for i, a in enumerate(inputs)}
    return Case(g, [by_name[v.name] for v in g.inputs], [o.bound for o in outs])


def tolerance(bound: float) -> tuple[float, float]:
    """(rtol, atol) for an output whose terms are bounded by ``bound``: fp32 rtol 1e-4, and an
    absolute 1e-5 of that bound (a reassociated sum errs relative to its terms)."""
    return 1e-4, 1e-5 * max(1.0, bound)
