"""Arithmetic cost and activation memory of a graph: what ``irc info`` reports.

Each op declares the cost of one of its nodes next to its reference (``opdef.cost``; the shared
formulas and their conventions are in irc/ir/ops/costs.py; a test fails when a registered op has
none). Here they are added up per op and for the graph:

- MACs are multiply-accumulates of the contractions: conv is N*Cout*Hout*Wout*(Cin/group)*kh*kw
  (output elements times the weight's elements per output channel), and so are the fused and
  lowered convolutions; conv_transpose is input elements times Cout/group*kh*kw; gemm (and its
  fused and packed forms) is M*N*K; matmul is output elements times K.
- FLOPs count 2 per MAC plus one per output element for each operand added after the product
  (a bias, gemm's C, a fused residual) and one for a fused activation (``act``).
- Element-wise ops: one FLOP per output element; identity none. A fused elementwise_chain costs
  what the ops of its body cost. Views and data movement: zero. Resize: zero for nearest,
  2**spatial-dims per output element otherwise.
- Pools: max_pool one compare per window element per output; average_pool one add per window
  element plus one divide per output; global pools one per input element (plus one divide per
  output for the average).
- Norms (inference): batch_norm 2 per element; layer/instance norm 8 per element; lrn 3 per
  element plus one per window element. Softmax and log_softmax 5 per element.
- Reductions: one per input element (mean adds one divide per output); argmax/argmin likewise.

Activation memory is a liveness walk over the node order: every data input and node output
is live from its definition to its last use (graph outputs to the end); the peak is the most
bytes live at once. Views are counted as new buffers and no buffer is reused in place: this is
the simple bound ``irc info`` shows, before a target's memory plan (passes/memory_plan.py)
shares buffers.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from irc.ir.graph import Graph, Node, Value
from irc.ir.ops import REGISTRY
from irc.ir.ops.costs import Cost


def node_cost(n: Node) -> Cost | None:
    """The cost of ``n`` by its op's formula (``opdef.cost``), or None if the op has none."""
    op = REGISTRY.get(n.op)
    fn = op.cost if op is not None else None
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
