"""Memory planning: where every value of a graph lives at run time.

An analysis, not a rewrite: ``plan_memory`` returns a MemoryPlan for a graph and a target's
rules. Graph inputs and outputs live in the caller's buffers, parameters in the weights blob,
everything else in ONE arena. Buffers are packed by liveness over the node order (greedy by
size, first fit), each 64-byte aligned so the widest vector loads never straddle a line.

Two kinds of sharing cut the arena further:
- views: ops whose output has exactly the input's bytes (reshape, flatten, squeeze...) reuse the
  input's buffer and cost no code at all;
- in-place: an element-wise op may write its output over an input that dies at that node.
Kernels may also ask for scratch space (im2col columns, packed panels), live for their node only.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field

from irc.ir.graph import Graph, Node, Value

ALIGN = 64


def align(n: int, a: int = ALIGN) -> int:
    return (n + a - 1) // a * a


@dataclass(frozen=True, slots=True)
class Location:
    """Where a value's bytes are: ``kind`` is input/output/param/arena, ``index`` the input or
    output position (or -1), ``offset`` bytes into the arena or weights blob."""

    kind: str
    index: int = -1
    offset: int = 0


@dataclass(slots=True, eq=False)
class _Buffer:
    size: int
    first: int
    last: int
    offset: int = 0


@dataclass
class MemoryPlan:
    locations: dict[Value, Location]
    arena_bytes: int
    weights_bytes: int
    #: node index -> arena offset of that node's scratch space
    scratch: dict[int, int] = field(default_factory=dict)
    #: nodes whose output is a view of their input: no code runs for them
    views: set[int] = field(default_factory=set)
    #: largest sum of live activation bytes at any node (a lower bound on any arena)
    peak_live_bytes: int = 0
    #: output positions no node writes (the output is a graph input, a parameter, or a value an
    #: earlier output position already holds): the target copies their bytes in after the nodes
    output_copies: list[int] = field(default_factory=list)

    def where(self, v: Value) -> Location:
        return self.locations[v]


def plan_memory(
    g: Graph,
    *,
    is_view: Callable[[Node], bool] = lambda n: False,
    inplace_inputs: Callable[[Node], list[int]] = lambda n: [],
    scratch_bytes: Callable[[Node], int] = lambda n: 0,
    reuse: bool = True,
) -> MemoryPlan:
    """Plan ``g``. ``is_view(node)``: the output may share input 0's bytes; ``inplace_inputs(node)``:
    input positions the output may overwrite; ``scratch_bytes(node)``: temporary bytes a node needs.
    ``reuse=False``: every value (views aside, which are their source's bytes) and scratch area
    keeps bytes of its own for the whole run, nothing written in place: the most memory, and no
    kernel waits on another only because they share bytes."""
    locations: dict[Value, Location] = {}
    for i, v in enumerate(g.inputs):
        locations[v] = Location("input", i)
    woff = 0
    for v in g.params:
        locations[v] = Location("param", -1, woff)
        woff += align(v.type.nbytes)
    out_values = set(g.outputs)
    copies: list[int] = []
    for i, v in enumerate(g.outputs):
        if v in locations:  # a graph input, a parameter, or a value already in an earlier output
            copies.append(i)
        else:
            locations[v] = Location("output", i)

    last_use: dict[Value, int] = {}
    for i, n in enumerate(g.nodes):
        for v in n.inputs:
            last_use[v] = i
    root: dict[Value, _Buffer] = {}  # arena values -> their buffer
    holders: dict[_Buffer, list[Value]] = {}
    buffers: list[_Buffer] = []
    scratch_buf: dict[int, _Buffer] = {}
    views: set[int] = set()

    def dead_after(buf: _Buffer, i: int) -> bool:
        return all(last_use.get(v, -1) <= i and v not in out_values for v in holders[buf])

    for i, n in enumerate(g.nodes):
        s = scratch_bytes(n)
        if s:
            scratch_buf[i] = _Buffer(align(s), i, i)
            buffers.append(scratch_buf[i])
        for v in n.outputs:
            if v in out_values:
                continue
            src = n.inputs[0] if n.inputs else None
            if src is not None and is_view(n) and len(n.outputs) == 1:
                views.add(i)
                if src in root:
                    buf = root[src]
                    root[v] = buf
                    holders[buf].append(v)
                else:
                    locations[v] = locations[src]  # a view of an input, a parameter or an output
                continue
            buf = None
            if len(n.outputs) == 1 and reuse:
                for k in inplace_inputs(n):
                    x = n.inputs[k]
                    cand = root.get(x)
                    if cand is not None and x.type.nbytes == v.type.nbytes and dead_after(cand, i):
                        buf = cand
                        break
            if buf is None:
                buf = _Buffer(align(v.type.nbytes), i, i)
                buffers.append(buf)
                holders[buf] = []
            root[v] = buf
            holders[buf].append(v)
    for buf, vals in holders.items():
        buf.last = max([buf.first] + [last_use.get(v, buf.first) for v in vals])
    if not reuse:
        for buf in buffers:
            buf.first, buf.last = 0, len(g.nodes)
    arena = _pack(buffers)
    for v, buf in root.items():
        locations[v] = Location("arena", -1, buf.offset)
    for v in g.values():
        if v not in locations:  # defined but never stored: outputs of dead nodes
            locations[v] = Location("arena", -1, 0)
    # bytes live at each node: a running sum of buffers starting and ending (linear, not nodes x buffers)
    change = [0] * (len(g.nodes) + 2)
    for b in buffers:
        change[b.first] += b.size
        change[b.last + 1] -= b.size
    peak = max(itertools.accumulate(change[:len(g.nodes)]), default=0)
    return MemoryPlan(locations, arena, woff, {i: b.offset for i, b in scratch_buf.items()}, views, peak, copies)


def _pack(buffers: list[_Buffer]) -> int:
    """Greedy by size: biggest first, each at the lowest offset free over its lifetime."""
    placed: list[_Buffer] = []
    top = 0
    for b in sorted(buffers, key=lambda b: (-b.size, b.first)):
        if b.size == 0:
            continue
        busy = sorted((p.offset, p.offset + p.size) for p in placed if p.first <= b.last and b.first <= p.last)
        off = 0
        for lo, hi in busy:
            if off + b.size <= lo:
                break
            off = max(off, hi)
        b.offset = off
        placed.append(b)
        top = max(top, off + b.size)
    return top
