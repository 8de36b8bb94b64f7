"""The launch plan: what runs, in order, over which bytes of the GPU's memory.

One plan per (graph, architecture). Device memory is laid out once from the target-independent
memory plan (``irc.passes.memory_plan``): one arena for every intermediate value, one weights
blob, one buffer per graph input and output. A step is one kernel launch: kernel name, grid,
block, shared bytes, and its arguments as (region, index, offset, bytes). The plan is plain data:
the runtime follows it, ``irc compile --target cuda -o DIR`` writes it as JSON, and
``check_plan`` proves it consistent without a GPU: arguments inside their regions, no live
buffer overwritten by a later write, every read preceded by its write, grids covering outputs.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field

from irc.errors import TargetError
from irc.ir.graph import Graph
from irc.passes.memory_plan import MemoryPlan


@dataclass(frozen=True, slots=True)
class ArgRef:
    """A kernel argument: ``region`` input/output/param/arena, ``index`` of the graph input or
    output (-1 otherwise), byte ``offset`` into the region and the tensor's ``nbytes``; ``value``
    names the IR value."""

    region: str
    index: int
    offset: int
    nbytes: int
    value: str


@dataclass(frozen=True, slots=True)
class Step:
    node: str
    op: str
    kernel: str
    grid: tuple[int, int, int]
    block: tuple[int, int, int]
    shared_bytes: int
    #: outputs first, then inputs (the kernel's parameter order)
    args: tuple[ArgRef, ...]
    n_outputs: int
    #: per grid axis (elements of the output along it, elements one block covers); a block
    #: count of 0 covers by a grid-stride loop
    cover: tuple[tuple[int, int], ...] = ()


@dataclass
class LaunchPlan:
    graph: str
    arch: str
    arena_bytes: int
    weights_bytes: int
    peak_live_bytes: int
    inputs: list[dict]
    outputs: list[dict]
    steps: list[Step]
    #: arena values -> (offset, nbytes, first step that writes or aliases it, last step reading it)
    buffers: dict[str, tuple[int, int, int, int]] = field(default_factory=dict)
    #: groups of values that share bytes on purpose (views, in-place updates)
    aliases: list[list[str]] = field(default_factory=list)
    #: (output position, where its bytes are) for outputs no step writes (a graph input, a
    #: parameter, a value another output holds): copied in after the steps
    output_copies: list[tuple[int, ArgRef]] = field(default_factory=list)

    def to_json(self) -> str:
        d = asdict(self)
        return json.dumps(d, indent=1)

    @staticmethod
    def from_json(text: str) -> LaunchPlan:
        d = json.loads(text)
        steps = [Step(s["node"], s["op"], s["kernel"], tuple(s["grid"]), tuple(s["block"]), s["shared_bytes"],
                      tuple(ArgRef(**a) for a in s["args"]), s["n_outputs"], tuple(tuple(c) for c in s["cover"]))
                 for s in d.pop("steps")]
        buffers = {k: tuple(v) for k, v in d.pop("buffers").items()}
        copies = [(i, ArgRef(**a)) for i, a in d.pop("output_copies", [])]
        return LaunchPlan(steps=steps, buffers=buffers, output_copies=copies, **d)

    @property
    def kernels(self) -> list[str]:
        return sorted({s.kernel for s in self.steps})


def io_table(g: Graph) -> tuple[list[dict], list[dict]]:
    def row(v):
        return {"name": v.name, "shape": list(v.shape), "dtype": v.dtype.value, "nbytes": v.type.nbytes}

    return [row(v) for v in g.inputs], [row(v) for v in g.outputs]


def output_copies(g: Graph, plan: MemoryPlan) -> list[tuple[int, ArgRef]]:
    """The outputs no step writes, with the bytes to copy into each."""
    return [(i, arg_ref(plan, g.outputs[i])) for i in plan.output_copies]


def arg_ref(plan: MemoryPlan, v) -> ArgRef:
    loc = plan.where(v)
    return ArgRef(loc.kind, loc.index, loc.offset, v.type.nbytes, v.name)


def buffer_table(g: Graph, plan: MemoryPlan, step_of_node: dict[int, int]) -> tuple[dict, list[list[str]]]:
    """Arena values with their lifetimes in steps (inclusive), and the alias groups: values that
    share bytes on purpose (a view and its source; an in-place output and the input that dies
    at its node). A node that runs no kernel (a view) takes effect at the next step that does."""
    n_steps = len(step_of_node)
    ordered = sorted(step_of_node.items())

    def step(i: int) -> int:
        return next((s for j, s in ordered if j >= i), n_steps)

    first: dict[str, int] = {}
    last: dict[str, int] = {}
    where: dict[str, tuple[int, int]] = {}
    parent: dict[str, str] = {}

    def root(name: str) -> str:
        while parent.get(name, name) != name:
            name = parent[name]
        return name

    for i, n in enumerate(g.nodes):
        for v in n.inputs:
            if v.name in where:
                last[v.name] = max(last.get(v.name, -1), step(i))
        for v in n.outputs:
            loc = plan.where(v)
            if loc.kind != "arena" or not v.type.nbytes:
                continue
            first[v.name] = step(i)
            where[v.name] = (loc.offset, v.type.nbytes)
            for x in n.inputs:
                if x.name in where and where[x.name][0] == loc.offset:
                    parent[root(v.name)] = root(x.name)
    buffers = {name: (*where[name], first[name], max(last.get(name, first[name]), first[name])) for name in where}
    groups: dict[str, list[str]] = {}
    for name in where:
        groups.setdefault(root(name), []).append(name)
    return buffers, [sorted(grp) for grp in groups.values() if len(grp) > 1]


def check_plan(p: LaunchPlan) -> None:
    """TargetError unless the plan is consistent (see the module docstring)."""
    sizes = {"input": [r["nbytes"] for r in p.inputs], "output": [r["nbytes"] for r in p.outputs]}
    region_bytes = {"arena": p.arena_bytes, "param": p.weights_bytes}
    for k, s in enumerate(p.steps):
        where = f"step {k} ({s.node}, {s.kernel})"
        for a in s.args:
            if a.region in sizes:
                if not 0 <= a.index < len(sizes[a.region]) or sizes[a.region][a.index] != a.nbytes:
                    raise TargetError(f"{where}: argument {a.value} does not match {a.region} {a.index}")
            elif a.offset < 0 or a.offset + a.nbytes > region_bytes[a.region] or a.offset % 64:
                raise TargetError(f"{where}: argument {a.value} [{a.offset}, {a.offset + a.nbytes}) is outside "
                                  f"the {a.region} ({region_bytes[a.region]} bytes) or not 64-byte aligned")
        threads = math.prod(s.block)
        if not 0 < threads <= 1024 or min(s.grid) < 1 or s.grid[1] > 65535 or s.grid[2] > 65535:
            raise TargetError(f"{where}: launch {s.grid} x {s.block} is outside CUDA's limits")
        if s.shared_bytes > 48 * 1024:
            raise TargetError(f"{where}: {s.shared_bytes} bytes of static shared memory (limit 48 KiB)")
        for axis, (extent, per_block) in enumerate(s.cover):
            if per_block and s.grid[axis] * per_block < extent:
                raise TargetError(f"{where}: grid axis {axis} covers {s.grid[axis] * per_block} of {extent}")
    alias_of = {name: i for i, grp in enumerate(p.aliases) for name in grp}
    items = sorted(p.buffers.items())
    for ia, (a_name, (ao, an, af, al)) in enumerate(items):
        for b_name, (bo, bn, bf, bl) in items[ia + 1:]:
            if a_name in alias_of and alias_of.get(b_name) == alias_of[a_name]:
                continue
            if ao < bo + bn and bo < ao + an and af <= bl and bf <= al:
                raise TargetError(f"arena values {a_name} [{ao}, {ao + an}) live at steps {af}..{al} and {b_name} "
                                  f"[{bo}, {bo + bn}) live at steps {bf}..{bl} share bytes while both are live")
    written: set[int | str] = set()
    for k, s in enumerate(p.steps):
        for a in s.args[s.n_outputs:]:
            if a.region == "arena" and alias_of.get(a.value, a.value) not in written:
                raise TargetError(f"step {k} ({s.node}) reads {a.value} before any step writes it")
        for a in s.args[: s.n_outputs]:
            written.add(alias_of.get(a.value, a.value))
