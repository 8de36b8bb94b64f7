"""If and Loop: import (subgraph attributes become irc sub-graphs) and export.

A subgraph is imported by the same node loop as the model (``_Importer.import_nodes``), in a scope
of its own. A name it does not define is looked up in the enclosing scopes (ONNX's implicit
capture): an outer constant is copied into the subgraph's params, a run-time outer value becomes
an extra subgraph input fed by an extra node input (irc/ir/ops/control.py).

An If whose condition is known at import is replaced by its branch. A Loop with scan outputs
needs its trip count at import (it is their leading dimension): its ``M`` and ``cond`` must be
known then (a graph input is specialised on its value, irc/frontend/onnx/value_inputs.py), and
its body's condition must follow from the iteration number alone.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper

from irc.errors import ModelError, UnsupportedOpError
from irc.frontend.onnx.rules import EXPORT_RULES, IMPORT_RULES, ExportContext, NodeContext, export_rule, import_rule
from irc.frontend.onnx.value_inputs import refused_input
from irc.ir.builder import GraphBuilder
from irc.ir.graph import Graph, Node, Value
from irc.ir.ops.control import COND_TYPE, ITER_TYPE, static_trips
from irc.ir.types import DType, TensorType
from irc.passes.inline_control import MAX_UNROLLED_NODES

#: The most iterations the import runs a Loop's condition to find a scan output's length.
MAX_STATIC_TRIPS = 1 << 16


class _SubImporter:
    """Imports one ONNX subgraph; names it does not define resolve in the enclosing importer."""

    def __init__(self, outer, g: onnx.GraphProto):
        from irc.frontend.onnx.importer import _Importer

        self.outer = outer
        self.opset = outer.opset
        names = {v.name for v in g.input} | {o for n in g.node for o in n.output if o} | {t.name for t in g.initializer}
        self.builder = GraphBuilder(g.name or "body", reserved=names)
        self.env: dict[str, Value] = {}
        self.captured: dict[Value, Value] = {}  # outer run-time value -> the subgraph input receiving it
        self.import_nodes = _Importer.import_nodes.__get__(self)
        self._name_outputs = _Importer._name_outputs.__get__(self)

    def lookup(self, name: str, node: str, op: str) -> Value:
        v = self.env.get(name)
        if v is not None:
            return v
        outer = self.outer.lookup(name, node, op)
        data = self.outer.builder.params.get(outer)
        if data is not None:
            v = self.builder.param(name, data)
        else:
            v = Value(self.builder.fresh(name), outer.type)
            self.builder.inputs.append(v)
            self.captured[outer] = v
        self.env[name] = v
        return v


def import_subgraph(ctx: NodeContext, attr: str, input_types: list[TensorType]) -> tuple[Graph, list[Value]]:
    """(the irc graph of subgraph attribute ``attr``, the outer values it captures, in the order
    of its extra inputs). Its declared inputs take ``input_types``."""
    proto = next((a.g for a in ctx.node.attribute if a.name == attr and a.type == onnx.AttributeProto.GRAPH), None)
    if proto is None:
        raise ModelError(f"attribute '{attr}' (a graph) is required")
    bad = _unsupported(proto)
    if bad:
        raise UnsupportedOpError(f"subgraph '{attr}' uses op(s) irc cannot import: {', '.join(sorted(bad))}")
    if len(proto.input) != len(input_types):
        raise ModelError(f"subgraph '{attr}' declares {len(proto.input)} input(s); "
                         f"{ctx.op_type} passes {len(input_types)}")
    sub = _SubImporter(ctx._imp, proto)
    for vi, t in zip(proto.input, input_types):
        sub.env[vi.name] = sub.builder.input(vi.name, t)
    for t in proto.initializer:
        sub.env[t.name] = sub.builder.param(t.name, numpy_helper.to_array(t), exact=True)
    sub.import_nodes(proto)
    outs = [sub.lookup(o.name, o.name, f"{ctx.op_type} {attr} output") for o in proto.output]
    graph = _as_node_outputs(sub.builder, outs)
    return graph, list(sub.captured)


def _as_node_outputs(b: GraphBuilder, outs: list[Value]) -> Graph:
    """The built subgraph, each output a distinct node output (identity where it is an input, a
    constant or repeated), so that passes may splice it anywhere."""
    made = {v for n in b.nodes for v in n.outputs}
    seen: set[Value] = set()
    final = []
    for v in outs:
        if v not in made or v in seen:
            v = b.add_node("identity", [v])[0]
        seen.add(v)
        final.append(v)
    return b.build(*final)


def _unsupported(g: onnx.GraphProto) -> set[str]:
    bad = set()
    for n in g.node:
        if n.domain not in ("", "ai.onnx") or n.op_type not in IMPORT_RULES:
            bad.add(n.op_type if n.domain in ("", "ai.onnx") else f"{n.domain}.{n.op_type}")
        for a in n.attribute:
            for sub in ([a.g] if a.HasField("g") else []) + list(a.graphs):
                bad |= _unsupported(sub)
    return bad


def _with_captures(g: Graph, captured: list[Value], order: list[Value]) -> Graph:
    """``g`` taking the outer values ``order`` (a superset of its ``captured``) as its trailing
    inputs: inputs for the ones it does not read are added."""
    head = g.inputs[: len(g.inputs) - len(captured)]
    mine = dict(zip(captured, g.inputs[len(head):]))
    b = GraphBuilder(g.name, taken=(v.name for v in g.values()))
    extra = [mine.get(v) or Value(b.fresh(v.name), v.type) for v in order]
    return g.replace(inputs=head + extra)


@import_rule("If", op="if")
def _if(ctx: NodeContext):
    cond = ctx.input(0)
    known = ctx.const(0)
    if known is not None:
        if known.size != 1 or known.dtype != np.bool_:
            raise ModelError(f"cond must be one bool, got {cond.type}")
        return _folding_splice(ctx, *import_subgraph(ctx, "then_branch" if known.reshape(-1)[0] else "else_branch", []))
    then_g, then_cap = import_subgraph(ctx, "then_branch", [])
    else_g, else_cap = import_subgraph(ctx, "else_branch", [])
    order = list(dict.fromkeys(then_cap + else_cap))
    then_g, else_g = _with_captures(then_g, then_cap, order), _with_captures(else_g, else_cap, order)
    if [v.type for v in then_g.outputs] != [v.type for v in else_g.outputs]:
        # The output types follow the condition: specialise on its value (value_inputs.py).
        raise UnsupportedOpError("input 'cond' must be a constant known at import: the branches give different "
                                 "types and irc shapes are static")
    return ctx.ops("if", [cond, *order], {"then_branch": then_g, "else_branch": else_g})


def _folding_splice(ctx: NodeContext, g: Graph, captured: list[Value]) -> list[Value]:
    """The branch's nodes imported in place, each folded when its inputs are constants."""
    env: dict[Value, Value] = dict(zip(g.inputs, captured))
    for v, a in g.params.items():
        env[v] = ctx.constant(a)
    for n in g.nodes:
        outs = ctx.ops(n.op, [env[v] for v in n.inputs], dict(n.attrs))
        env.update(zip(n.outputs, outs))
    return [env[v] for v in g.outputs]


@import_rule("Loop", op="loop")
def _loop(ctx: NodeContext):
    m = ctx.input(0) if ctx.has_input(0) else ctx.constant(np.array(np.iinfo(np.int64).max, np.int64))
    cond = ctx.input(1) if ctx.has_input(1) else ctx.constant(np.array(True))
    if m.type.dtype is not DType.i64 or m.type.size != 1 or cond.type.dtype is not DType.bool or cond.type.size != 1:
        raise ModelError(f"M must be one int64 and cond one bool, got {m.type} and {cond.type}")
    carried = [ctx.input(i) for i in range(2, len(ctx.node.input))]
    proto = next((a.g for a in ctx.node.attribute if a.name == "body" and a.type == onnx.AttributeProto.GRAPH), None)
    if proto is not None and len(proto.output) < 1 + len(carried):
        raise ModelError(f"the body gives {len(proto.output)} output(s); expected the condition and "
                         f"{len(carried)} loop-carried value(s)")
    try:
        body, captured = import_subgraph(ctx, "body", [ITER_TYPE, COND_TYPE, *(v.type for v in carried)])
        for k, (v, out) in enumerate(zip(carried, body.outputs[1:])):
            if v.type != out.type:
                raise UnsupportedOpError(f"loop-carried value '{ctx.node.input[2 + k]}' enters as {v.type} and "
                                         f"leaves the body as {out.type}; irc shapes are static")
    except UnsupportedOpError as e:
        if refused_input(e) is None and "irc shapes are static" not in e.detail:
            raise
        # The body needs a value per iteration (a Slice at the iteration number, a carried value
        # that grows): with the trip count known here, import it once per iteration.
        return _unroll(ctx, m, cond, carried, e)
    trips = _import_trips(ctx, body, m, cond) if len(body.outputs) > 1 + len(carried) else -1
    return ctx.ops("loop", [m, cond, *carried, *captured], {"body": body, "carried": len(carried), "trips": trips})


class _InlineScope:
    """Imports a subgraph's nodes straight into the enclosing graph, its declared inputs bound
    to given outer values (one unrolled iteration of a Loop)."""

    def __init__(self, outer, bindings: dict[str, Value]):
        from irc.frontend.onnx.importer import _Importer

        self.outer, self.opset, self.builder = outer, outer.opset, outer.builder
        self.env = dict(bindings)
        self.import_nodes = _Importer.import_nodes.__get__(self)
        self._name_outputs = _Importer._name_outputs.__get__(self)

    def lookup(self, name: str, node: str, op: str) -> Value:
        return self.env[name] if name in self.env else self.outer.lookup(name, node, op)


def _unroll(ctx: NodeContext, m: Value, cond: Value, carried: list[Value], first: UnsupportedOpError) -> list[Value]:
    """The Loop imported iteration by iteration, its iteration number a constant in each."""
    params = ctx.builder.params
    # (worded so that value_inputs reads only this node's own refusal of M or cond)
    cause = first.detail.replace(" must be a constant known at import", " is not known at import")
    why = f"(the body cannot be imported once for all iterations: {cause})"
    for name, v in (("M", m), ("cond", cond)):
        if v not in params:
            raise UnsupportedOpError(f"input '{name}' must be a constant known at import {why}")
    proto = next(a.g for a in ctx.node.attribute if a.name == "body")
    limit, going = int(params[m].reshape(-1)[0]), bool(params[cond].reshape(-1)[0])
    values, scans, i = list(carried), [], 0
    while i < limit and going:
        if (i + 1) * max(len(proto.node), 1) > MAX_UNROLLED_NODES:
            raise UnsupportedOpError(f"unrolling this Loop takes over {MAX_UNROLLED_NODES} nodes {why}")
        bound = {t.name: ctx.constant(numpy_helper.to_array(t)) for t in proto.initializer}
        ins = [ctx.constant(np.array(i, np.int64)), ctx.constant(np.array(True)), *values]
        bound.update((vi.name, v) for vi, v in zip(proto.input, ins))
        scope = _InlineScope(ctx._imp, bound)
        scope.import_nodes(proto)
        outs = [scope.lookup(o.name, o.name, "Loop body output") for o in proto.output]
        done = ctx.builder.params.get(outs[0])  # (the builder rebuilds its params dict on a rename)
        if done is None:
            raise UnsupportedOpError(f"the loop's condition depends on its data {why}")
        going = bool(done.reshape(-1)[0])
        values = outs[1:1 + len(carried)]
        scans.append(outs[1 + len(carried):])
        i += 1
    if len(proto.output) > 1 + len(carried) and not scans:
        raise UnsupportedOpError(f"the loop runs no iteration, so its scan outputs have no known type {why}")
    stacked = [_stack(ctx, [it[k] for it in scans]) for k in range(len(proto.output) - 1 - len(carried))]
    return values + stacked


def _stack(ctx: NodeContext, parts: list[Value]) -> Value:
    rows = [ctx.op("reshape", v, shape=(1, *v.type.shape)) for v in parts]
    if len({v.type for v in rows}) != 1:
        shown = ", ".join(str(v.type) for v in parts)
        raise UnsupportedOpError(f"a scan output changes type across iterations ({shown}); irc shapes are static")
    return rows[0] if len(rows) == 1 else ctx.op("concat", *rows, axis=0)


def _import_trips(ctx: NodeContext, body: Graph, m: Value, cond: Value) -> int:
    why = "(the loop has scan outputs, whose length is the trip count; irc shapes are static)"
    params = ctx.builder.params
    for name, v in (("M", m), ("cond", cond)):
        if v not in params:
            raise UnsupportedOpError(f"input '{name}' must be a constant known at import {why}")
    mv, cv = int(params[m].reshape(-1)[0]), bool(params[cond].reshape(-1)[0])
    trips = static_trips(body, mv, cv, MAX_STATIC_TRIPS)
    if trips is None:
        raise UnsupportedOpError("a Loop with scan outputs must stop after a number of iterations known at import: "
                                 "its condition depends on the loop's data (or it runs over "
                                 f"{MAX_STATIC_TRIPS} iterations), so the scan length is known only at run time "
                                 "and irc shapes are static")
    return trips


# ---------------------------------------------------------------------------------------- export


def export_subgraph(ctx: ExportContext, g: Graph, outer_names: list[str], n_own: int, name: str) -> onnx.GraphProto:
    """``g`` as an ONNX subgraph: its first ``n_own`` inputs stay declared inputs, the rest read
    the outer values ``outer_names`` by name (implicit captures). Its other value names are made
    distinct from every name in the model."""
    from irc.frontend.onnx.exporter import _Exporter, _value_info

    ren = {}
    for v, outer in zip(g.inputs[n_own:], outer_names):
        ren[v] = outer
    taken = ctx._exp.names
    for v in g.values():
        if v not in ren:
            new = v.name
            if new in taken:
                new = ctx._exp.fresh(v.name)
            taken.add(new)
            ren[v] = new
    g = _renamed(g, ren)
    sub = _Exporter(g)
    sub.names = taken
    sub._n = ctx._exp._n
    missing = sorted({n.op for n in g.nodes if n.op not in EXPORT_RULES})
    if missing:
        raise UnsupportedOpError(f"no ONNX export for op(s): {', '.join(missing)}")
    sctx = ExportContext(sub)
    for v, data in g.params.items():
        sub.initializers.append(numpy_helper.from_array(data, v.name))
    for n in g.nodes:
        EXPORT_RULES[n.op](sctx, n)
    ctx._exp._n = sub._n
    read = {i for node in sub.nodes for i in node.input} | {v.name for v in g.outputs}
    return helper.make_graph(sub.nodes, name, [_value_info(v) for v in g.inputs[:n_own]],
                             [_value_info(v) for v in g.outputs],
                             initializer=[t for t in sub.initializers if t.name in read])


def _renamed(g: Graph, ren: dict[Value, str]) -> Graph:
    new = {v: Value(ren[v], v.type) for v in g.values()}
    nodes = [Node(n.op, tuple(new[v] for v in n.inputs), tuple(new[v] for v in n.outputs), n.attrs, n.name)
             for n in g.nodes]
    return g.replace(inputs=[new[v] for v in g.inputs], params={new[v]: a for v, a in g.params.items()},
                     nodes=nodes, outputs=[new[v] for v in g.outputs])


@export_rule("if")
def _export_if(ctx: ExportContext, n: Node):
    outer = [v.name for v in n.inputs[1:]]
    then_g = export_subgraph(ctx, n.attrs["then_branch"], outer, 0, ctx.tmp("then"))
    else_g = export_subgraph(ctx, n.attrs["else_branch"], outer, 0, ctx.tmp("else"))
    cond = n.inputs[0]
    if cond.type.rank:
        cond = ctx.emit("Reshape", [cond, ctx.const(np.array([], np.int64), "scalar")], [ctx.tmp("cond")])[0]
    ctx.emit("If", [cond], n.outputs, then_branch=then_g, else_branch=else_g)


@export_rule("loop")
def _export_loop(ctx: ExportContext, n: Node):
    k = n.attrs["carried"]
    outer = [v.name for v in n.inputs[2 + k:]]
    body = export_subgraph(ctx, n.attrs["body"], outer, 2 + k, ctx.tmp("body"))
    ctx.emit("Loop", n.inputs[: 2 + k], n.outputs, body=body)
