"""Control flow: ``if`` and ``loop``, whose bodies are sub-graphs held as graph attributes.

A body's values are its own scope. What it reads from the enclosing graph (ONNX lets a subgraph
name outer values implicitly) is made explicit: a run-time outer value is passed as an extra
node input, received by an extra body input; an outer constant is copied into the body's params.

irc shapes are static, so every output type is known at compile time: the two branches of an
``if`` must give the same types, a loop-carried value keeps its type through the iterations, and
a loop with scan outputs carries its trip count (``trips``) as an attribute, found at import.
The interpreter runs both ops with full semantics (a loop may stop on a data-dependent
condition); compiled targets inline them (irc/passes/inline_control.py) or refuse them.
"""

from __future__ import annotations

import numpy as np

from irc.errors import IRCError, ShapeError
from irc.ir.graph import Graph
from irc.ir.ops import costs
from irc.ir.ops.registry import Attr, defop, get_op
from irc.ir.types import DType, TensorType

#: What autodiff says of both ops.
_NO_GRAD = "autodiff does not go through control flow: inline the if/loop first (fold_constants, inline_control)"

ITER_TYPE = TensorType((), DType.i64)
COND_TYPE = TensorType((), DType.bool)


def _flag(t: TensorType, dtype: DType, what: str) -> None:
    if t.dtype is not dtype or t.size != 1 or t.rank > 1:
        raise ShapeError(f"{what} must be a single {dtype.value} element, got {t}")


def _types(vs) -> list[TensorType]:
    return [v.type for v in vs]


def _shown(ts) -> str:
    return "(" + ", ".join(map(str, ts)) + ")"


def body_cost(g: Graph) -> costs.Cost:
    """What one run of a body costs: the sum of its nodes'."""
    total = costs.Cost()
    for m in g.nodes:
        fn = get_op(m.op).cost
        if fn is not None:
            total = total + fn(m)
    return total


def scalar(a: np.ndarray):
    """The one element of a size-1 array, as a python scalar."""
    return np.asarray(a).reshape(-1)[0].item()


@defop("if", ("cond", "xs*"), {"then_branch": Attr("graph"), "else_branch": Attr("graph")}, no_grad=_NO_GRAD)
class If:
    """The outputs of ``then_branch`` when ``cond`` (one bool) is true, else of ``else_branch``.
    Both branches take ``xs`` (the run-time outer values they read) as their inputs, and must
    give the same output types: irc shapes are static."""

    def infer(cond, *xs, then_branch, else_branch):
        _flag(cond, DType.bool, "cond")
        for g in (then_branch, else_branch):
            if _types(g.inputs) != list(xs):
                raise ShapeError(f"branch '{g.name}' takes {_shown(_types(g.inputs))}, "
                                 f"but the node passes {_shown(xs)}")
        a, b = _types(then_branch.outputs), _types(else_branch.outputs)
        if a != b:
            raise ShapeError(f"the branches give different types, then {_shown(a)} and else {_shown(b)}; "
                             "irc shapes are static, so both must give the same")
        return tuple(a)

    def reference(cond, *xs, then_branch, else_branch):
        from irc.ir.interp import interpret

        return tuple(interpret(then_branch if scalar(cond) else else_branch, list(xs)))

    def cost(n):
        """The costlier branch's (only one runs; which is known at run time)."""
        a, b = body_cost(n.attrs["then_branch"]), body_cost(n.attrs["else_branch"])
        return max(a, b, key=lambda c: (c.flops, c.macs))


@defop("loop", ("m", "cond", "xs*"), {"body": Attr("graph"), "carried": Attr("int"), "trips": Attr("int", -1)},
       no_grad=_NO_GRAD)
class Loop:
    """ONNX Loop: ``for i in range(m) while cond: cond, v... = body(i, cond, v..., captured...)``.

    ``xs`` are the ``carried`` initial loop-carried values, then the captured outer values. The
    body takes (i: i64[], cond: bool[], carried..., captured...) and gives (cond, carried...,
    scan...). Outputs: the final carried values, then each scan value stacked over the
    iterations. ``trips``: the number of iterations, known at compile time (-1: known only when
    it runs, allowed only without scan outputs, whose leading dimension it is)."""

    def infer(m, cond, *xs, body, carried, trips):
        _flag(m, DType.i64, "trip count m")
        _flag(cond, DType.bool, "cond")
        if not 0 <= carried <= len(xs):
            raise ShapeError(f"carried={carried} but the node passes {len(xs)} value(s) after m and cond")
        want = [ITER_TYPE, COND_TYPE, *xs]
        if _types(body.inputs) != want:
            raise ShapeError(f"the body takes {_shown(_types(body.inputs))}, expected {_shown(want)} "
                             "(iteration number, condition, carried values, captured values)")
        outs = _types(body.outputs)
        if len(outs) < 1 + carried:
            raise ShapeError(f"the body gives {len(outs)} output(s); expected the condition and {carried} carried")
        _flag(outs[0], DType.bool, "the body's condition output")
        for k in range(carried):
            if outs[1 + k] != xs[k]:
                raise ShapeError(f"loop-carried value {k} enters as {xs[k]} and leaves the body as {outs[1 + k]}; "
                                 "irc shapes are static, so it must keep its type")
        scans = outs[1 + carried:]
        if scans and trips < 0:
            raise ShapeError("scan outputs need the trip count known at compile time (trips); irc shapes are static")
        return tuple(xs[:carried]) + tuple(TensorType((trips, *s.shape), s.dtype) for s in scans)

    def reference(m, cond, *xs, body, carried, trips):
        from irc.ir.interp import interpret

        limit, going = scalar(m), bool(scalar(cond))
        values, captured = list(xs[:carried]), list(xs[carried:])
        scans: list[list[np.ndarray]] = [[] for _ in body.outputs[1 + carried:]]
        i = 0
        while i < limit and going:
            outs = interpret(body, [np.array(i, np.int64), np.array(going), *values, *captured])
            going = bool(scalar(outs[0]))
            values = list(outs[1:1 + carried])
            for acc, s in zip(scans, outs[1 + carried:]):
                acc.append(s)
            i += 1
        if scans and i != trips:
            raise IRCError(f"the loop ran {i} iteration(s); its scan outputs were typed for {trips}")
        stacked = [np.stack(acc) if acc else np.zeros((0, *v.shape), v.dtype.numpy)
                   for acc, v in zip(scans, body.outputs[1 + carried:])]
        return tuple(values + stacked)

    def cost(n):
        """The body's cost times the trip count (one iteration when it is known only at run time)."""
        c = body_cost(n.attrs["body"])
        k = max(n.attrs["trips"], 1)
        return costs.Cost(c.macs * k, c.flops * k)


def condition_slice(body: Graph) -> Graph | None:
    """The part of a loop body that computes its condition output, as a graph of (i, cond), or
    None when the condition reads loop-carried or captured values (it depends on the data)."""
    free = {body.inputs[0], body.inputs[1]}
    producer = {v: n for n in body.nodes for v in n.outputs}
    need, todo, seen = [], [body.outputs[0]], set()
    while todo:
        v = todo.pop()
        if v in seen:
            continue
        seen.add(v)
        if v in producer:
            need.append(producer[v])
            todo.extend(producer[v].inputs)
        elif v not in free and v not in body.params:
            return None
    order = {id(n): k for k, n in enumerate(body.nodes)}
    nodes = sorted({id(n): n for n in need}.values(), key=lambda n: order[id(n)])
    params = {v: a for v, a in body.params.items() if v in seen}
    return Graph(body.name + "_cond", [body.inputs[0], body.inputs[1]], params, nodes, [body.outputs[0]])


def static_trips(body: Graph, m: int, cond: bool, limit: int) -> int | None:
    """How many iterations a loop runs when its condition is computed from the iteration number
    alone (and constants); None when the condition depends on the data or more than ``limit``
    iterations would run. A condition that does not read the iteration number is a function of
    the previous condition only: once it repeats, it holds to the end (no walk to M)."""
    from irc.ir.interp import interpret

    cut = condition_slice(body)
    if cut is None:
        return None
    reads_i = any(body.inputs[0] in n.inputs for n in cut.nodes)
    i = 0
    while i < m and cond:
        if i >= limit:
            return None
        nxt = bool(scalar(interpret(cut, [np.array(i, np.int64), np.array(cond)])[0]))
        i += 1
        if not reads_i and nxt == cond:  # true forever: the loop runs to M
            return m if m <= limit else None
        cond = nxt
    return i
