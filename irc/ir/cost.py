"""Arithmetic cost and activation memory of a graph: what ``irc info`` reports.

Costs are counted per node from its static types, by a table with one explicit entry per op
(a test fails when a registered op has none, so every new op must be costed):

- MACs are multiply-accumulates of the contractions: conv is N*Cout*Hout*Wout*(Cin/group)*kh*kw
  (output elements times the weight's elements per output channel), and so are the lowered
  conv_fused and conv_gemm; conv_transpose is input elements times Cout/group*kh*kw; gemm (and
  gemm_fused, gemm_packed) is M*N*K; matmul is output elements times K.
- FLOPs count 2 per MAC plus one per output element for each operand added after the product
  (a bias, gemm's C, a fused residual) and one for a fused activation (``act``, ``epilogue``).
- Element-wise ops: one FLOP per output element (exp or erf count one as well); cast one;
  identity none. A fused elementwise_chain costs what the ops of its program cost.
- Views and data movement (reshape, flatten, squeeze, unsqueeze, transpose, concat, slice, split,
  pad, expand, tile, gather, ...): zero. Resize: zero for nearest, 2**spatial-dims per output
  element otherwise (the interpolation weights' multiply-adds, counted as FLOPs).
- Pools: max_pool one compare per window element per output; average_pool one add per window
  element plus one divide per output; global pools one per input element (plus one divide per
  output for the average).
- Norms (inference): batch_norm 2 per element (scale and shift, statistics known);
  layer/instance/group norm 8 per element (mean, subtract, square, accumulate, divide, scale,
  shift, plus one for the variance's reciprocal square root over the group); lrn 3 per element
  plus one per window element. Softmax and log_softmax 5 per element (max, subtract, exp, sum,
  divide or log).
- Reductions: one per input element (mean adds one divide per output); argmax/argmin likewise.

Activation memory is a liveness walk over the node order: every data input and node output
is live from its definition to its last use (graph outputs to the end); the peak is the most
bytes live at once. Views are counted as new buffers and no buffer is reused in place: this is
the simple bound ``irc info`` shows, before a target's memory plan (passes/memory_plan.py)
shares buffers.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

from irc.ir.graph import Graph, Node, Value


@dataclass(frozen=True, slots=True)
class Cost:
    """Multiply-accumulates and floating-point operations of one node (or a sum of them)."""

    macs: int = 0
    flops: int = 0

    def __add__(self, other: Cost) -> Cost:
        return Cost(self.macs + other.macs, self.flops + other.flops)


CostFn = Callable[[Node], Cost]


def _out(n: Node) -> int:
    return sum(v.type.size for v in n.outputs)


def _free(n: Node) -> Cost:
    return Cost()


def _per_output(n: Node) -> Cost:
    return Cost(0, _out(n))


def _per_output_times(k: int) -> CostFn:
    return lambda n: Cost(0, k * _out(n))


def _per_input(n: Node) -> Cost:
    return Cost(0, n.inputs[0].type.size)


def _reduce_mean(n: Node) -> Cost:
    return Cost(0, n.inputs[0].type.size + _out(n))


def _contraction(n: Node, macs: int) -> Cost:
    """2 FLOPs per MAC, plus one per output element for each operand added after the product
    (a bias, gemm's C, a fused residual) and for a fused activation."""
    extra = len(n.inputs) - 2 + (n.attrs.get("act", n.attrs.get("epilogue", "none")) != "none")
    return Cost(macs, 2 * macs + extra * _out(n))


def _conv(n: Node) -> Cost:
    # weight (Cout, Cin/group, *kernel): each output element reads Cin/group * prod(kernel) weights.
    return _contraction(n, _out(n) * math.prod(n.inputs[1].shape[1:]))


def _conv_gemm(n: Node) -> Cost:
    # The weight is packed; the attributes keep the kernel and group.
    cin = n.inputs[0].shape[1]
    return _contraction(n, _out(n) * cin // n.attrs["group"] * math.prod(n.attrs["kernel_shape"]))


def _conv_transpose(n: Node) -> Cost:
    # weight (Cin, Cout/group, *kernel): each input element scatters into Cout/group * prod(kernel).
    return _contraction(n, n.inputs[0].type.size * math.prod(n.inputs[1].shape[1:]))


def _gemm(n: Node) -> Cost:
    m = n.outputs[0].shape[0] if n.outputs[0].shape else 1
    return _contraction(n, _out(n) * (n.inputs[0].type.size // max(m, 1)))  # a is [M, K] or [K, M]


def _matmul(n: Node) -> Cost:
    a = n.inputs[0].shape
    return _contraction(n, _out(n) * (a[-1] if a else 1))


def _chain(n: Node) -> Cost:
    """What the fused sub-graph's own nodes cost (it runs at the node's shapes)."""
    from irc.ir.ops.fused import chain_program

    return graph_cost(chain_program(n.attrs["program"])).total


def _window(n: Node) -> int:
    return math.prod(n.attrs["kernel_shape"])


def _max_pool(n: Node) -> Cost:
    return Cost(0, n.outputs[0].type.size * _window(n))


def _avg_pool(n: Node) -> Cost:
    return Cost(0, n.outputs[0].type.size * (_window(n) + 1))


def _lrn(n: Node) -> Cost:
    return Cost(0, _out(n) * (3 + int(n.attrs.get("size", 1))))


def _resize(n: Node) -> Cost:
    if str(n.attrs.get("mode", "nearest")) == "nearest":
        return Cost()
    spatial = max(n.outputs[0].type.rank - 2, 1)
    return Cost(0, _out(n) * 2**spatial)


_ELEMENTWISE = (
    "neg abs sqrt exp log erf reciprocal floor ceil round sign sin cos tanh sigmoid softplus softsign relu "
    "leaky_relu elu selu hard_sigmoid hard_swish clip add sub mul div pow max min prelu equal less less_equal "
    "greater greater_equal and or xor not where cast"
).split()

_DATA_MOVEMENT = (
    "identity reshape flatten squeeze unsqueeze transpose concat slice split pad expand tile "
    "gather gather_elements gather_nd scatter_elements depth_to_space space_to_depth"
).split()

#: Op name -> cost of one node. Every op in the registry has an entry (tests/ir/test_cost.py).
COSTS: dict[str, CostFn] = {
    **{name: _per_output for name in _ELEMENTWISE},
    **{name: _free for name in _DATA_MOVEMENT},
    "resize": _resize,
    "elementwise_chain": _chain,
    "conv": _conv,
    "conv_fused": _conv,
    "conv_gemm": _conv_gemm,
    "conv_transpose": _conv_transpose,
    "gemm": _gemm,
    "gemm_fused": _matmul,
    "gemm_packed": _matmul,
    "matmul": _matmul,
    "max_pool": _max_pool,
    "average_pool": _avg_pool,
    "global_max_pool": _per_input,
    "global_average_pool": _reduce_mean,
    "batch_norm": _per_output_times(2),
    "layer_norm": _per_output_times(8),
    "instance_norm": _per_output_times(8),
    "group_norm": _per_output_times(8),
    "lrn": _lrn,
    "softmax": _per_output_times(5),
    "log_softmax": _per_output_times(5),
    "reduce_sum": _per_input,
    "reduce_max": _per_input,
    "reduce_min": _per_input,
    "reduce_prod": _per_input,
    "reduce_l1": _per_input,
    "reduce_l2": _per_input,
    "reduce_sum_square": _per_input,
    "reduce_log_sum": _per_input,
    "reduce_log_sum_exp": _per_input,
    "reduce_mean": _reduce_mean,
    "argmax": _per_input,
    "argmin": _per_input,
    # int8 quantization (irc/ir/ops/quant.py): integer MACs as MACs; a requantize epilogue is
    # counted like a bias (one per output for each of bias, multiplier, shift).
    "quantize_linear": _per_output,
    "dequantize_linear": _per_output,
    "qconv": _conv,
    "qgemm": _matmul,
    "qadd": _per_output_times(3),
    "qglobal_average_pool": _reduce_mean,
    "conv_integer": _conv,
    "matmul_integer": _matmul,
    "qconv_gemm": _conv_gemm,
    "qgemm_packed": _matmul,
    # backward-only ops (irc/ir/ops/grad.py): max_pool_grad compares each window element once and
    # adds one cotangent per output.
    "max_pool_grad": lambda n: Cost(0, n.inputs[1].type.size * (_window(n) + 1)),
}

def node_cost(n: Node) -> Cost | None:
    """The cost of ``n``, or None if its op has no entry in COSTS."""
    fn = COSTS.get(n.op)
    return fn(n) if fn is not None else None


@dataclass(slots=True)
class OpCost:
    """What all nodes of one op add up to."""

    count: int = 0
    cost: Cost = Cost()


@dataclass(slots=True)
class GraphCost:
    """Per-op totals (in first-appearance order), the grand total, and ops without a cost entry."""

    by_op: dict[str, OpCost] = field(default_factory=dict)
    total: Cost = Cost()
    uncosted: list[str] = field(default_factory=list)


def graph_cost(g: Graph) -> GraphCost:
    out = GraphCost()
    for n in g.nodes:
        entry = out.by_op.setdefault(n.op, OpCost())
        entry.count += 1
        c = node_cost(n)
        if c is None:
            if n.op not in out.uncosted:
                out.uncosted.append(n.op)
            continue
        entry.cost += c
        out.total += c
    return out


@dataclass(frozen=True, slots=True)
class ActivationMemory:
    """Bytes of activations (data inputs and node outputs; parameters excluded)."""

    total_bytes: int  # every activation added up, as if none were ever freed
    peak_bytes: int  # the most bytes live at once over the node order
    peak_node: str | None  # label of the node where the peak is first reached


def activation_memory(g: Graph) -> ActivationMemory:
    """Sum and peak of live activation bytes, walking the nodes in order (see module doc)."""
    end = len(g.nodes)
    last_use: dict[Value, int] = {}
    for i, n in enumerate(g.nodes):
        for v in n.inputs:
            last_use[v] = i
    for v in g.outputs:
        last_use[v] = end
    live = sum(v.type.nbytes for v in g.inputs)
    total = peak = live
    peak_node = None
    dying: dict[int, int] = {}  # node index -> bytes released after it
    for v in g.inputs:
        dying[last_use.get(v, -1)] = dying.get(last_use.get(v, -1), 0) + v.type.nbytes
    live -= dying.pop(-1, 0)  # inputs nothing reads
    for i, n in enumerate(g.nodes):
        made = sum(v.type.nbytes for v in n.outputs)
        live += made
        total += made
        if live > peak:
            peak, peak_node = live, n.label
        for v in n.outputs:
            j = last_use.get(v, i)
            dying[j] = dying.get(j, 0) + v.type.nbytes
        live -= dying.pop(i, 0)
    return ActivationMemory(total, peak, peak_node)
