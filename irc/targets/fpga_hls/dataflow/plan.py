"""From the per-layer kernel plan to a streaming dataflow network: stages joined by FIFOs.

Every tensor between layers travels as a stream of pixels in raster order (one beat is one
pixel: all C channels of position (h, w), an ``irc::pack<T, C>``), so a frame of an N x C x H x W
tensor is H*W beats. A stage is one layer (the kernel kinds of kernels.py), a reader of a graph
input from memory, a writer of a graph output, or a fork that copies a stream consumed by more
than one layer (a residual branch). Views (reshape) cost nothing: the consumer reads the
producer's stream; a dense layer after a flatten takes the pixels in stream order, so its weight
rows are permuted from the graph's channel-major order to the stream's pixel-major order.

Folding: each compute stage does ``pe`` outputs (output channels, or channels) times ``simd``
inputs (reduction terms) per cycle; ``pe_choices``/``simd_choices`` list the factors the stage
accepts (divisors, so loops have no remainder).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from irc.errors import UnsupportedOpError
from irc.ir.graph import Graph, Value
from irc.targets.fpga_hls.kernels import Kernel, Plan, c_name, plan_kernels
from irc.targets.fpga_hls.precision import Precision

#: kernel kinds a dataflow stage implements (kernels.py kinds)
LAYER_KINDS = ("conv", "qconv", "pool", "dense", "qdense", "global_pool", "qgpool", "qadd", "quantize",
               "dequantize", "elementwise")
#: stage kinds that hold a sliding window over a line buffer
WINDOW_KINDS = ("conv", "qconv", "pool")
MAC_KINDS = ("conv", "qconv", "dense", "qdense")


def divisors(n: int) -> list[int]:
    n = max(int(n), 1)
    return [d for d in range(1, n + 1) if n % d == 0]


def hwc(shape: tuple[int, ...]) -> tuple[int, int, int]:
    """(H, W, C) of one frame of a tensor: NCHW -> H, W, C; NCL -> 1, L, C; NK -> 1, 1, K."""
    if len(shape) == 4:
        return shape[2], shape[3], shape[1]
    if len(shape) == 3:
        return 1, shape[2], shape[1]
    if len(shape) == 2:
        return 1, 1, shape[1]
    if len(shape) == 1:
        return 1, 1, shape[0]
    raise UnsupportedOpError(f"a dataflow stream carries rank 1-4 tensors, not shape {shape}")


def to_stream(a: np.ndarray) -> np.ndarray:
    """A tensor (batch first) in stream order: per frame, pixel-major (N, H, W, C), flattened."""
    a = np.asarray(a)
    if a.ndim == 4:
        a = a.transpose(0, 2, 3, 1)
    elif a.ndim == 3:
        a = a.transpose(0, 2, 1)
    return np.ascontiguousarray(a).reshape(-1)


@dataclass(slots=True)
class Fifo:
    """One stream between two stages: pixels of ``channels`` values of C type ``ctype``."""

    index: int
    value: Value
    ctype: str
    shape: tuple[int, int, int]   # (H, W, C) of a frame
    producer: int = -1
    consumer: int = -1
    depth: int = 2

    @property
    def name(self) -> str:
        return f"f{self.index}"

    @property
    def pixels(self) -> int:
        return self.shape[0] * self.shape[1]

    @property
    def channels(self) -> int:
        return self.shape[2]


@dataclass(slots=True)
class Stage:
    """One function of the DATAFLOW top."""

    index: int
    kind: str                      # a LAYER_KINDS kind, or "read", "write", "fork"
    kernel: Kernel | None
    ins: list[int] = field(default_factory=list)    # fifo indices (read: none)
    outs: list[int] = field(default_factory=list)   # fifo indices (write: none)
    value: Value | None = None     # read/write: the graph input/output
    pe: int = 1
    simd: int = 1
    overlap: int = 0   # window stages: walk on while an output is computed (a window copy)
    rom: str = ""      # MAC stages: where the weights go (BIND_STORAGE impl: lutram, bram, uram)
    extra: dict = field(default_factory=dict)

    @property
    def name(self) -> str:
        label = self.kernel.label if self.kernel is not None else (self.value.name if self.value is not None else "")
        return f"s{self.index}_{self.kind}_{c_name(label)}"[:56]

    @property
    def label(self) -> str:
        if self.kernel is not None:
            return self.kernel.label
        return self.value.name if self.value is not None else self.kind


@dataclass(slots=True)
class Network:
    """The stages (in a topological order) and the FIFOs of one dataflow design."""

    graph: Graph
    kernels: Plan
    stages: list[Stage]
    fifos: list[Fifo]
    weights: dict[int, dict[str, np.ndarray]]   # stage index -> its ROM arrays (device values)

    def fifo_in(self, s: Stage, port: int = 0) -> Fifo:
        return self.fifos[s.ins[port]]

    def fifo_out(self, s: Stage, port: int = 0) -> Fifo:
        return self.fifos[s.outs[port]]


def _ctype(v: Value, precision: Precision) -> str:
    if v.dtype.is_float:
        return "float" if precision.kind in ("float32", "int8") else "irc_precision::data_t"
    return {"u8": "uint8_t", "i8": "int8_t", "i32": "int32_t"}.get(v.dtype.value, "int32_t")


def build_network(g: Graph, precision: Precision) -> Network:
    """Stages and FIFOs of graph ``g`` (after the target's passes); UnsupportedOpError names a
    layer the streaming architecture does not map."""
    plan = plan_kernels(g)
    stages: list[Stage] = []
    fifos: list[Fifo] = []
    readers: dict[Value, list[tuple[int, int]]] = {}   # buffer -> [(stage, input port)]
    producer_of: dict[Value, int] = {}                 # buffer -> stage index

    def add_stage(kind, kernel=None, value=None) -> Stage:
        s = Stage(len(stages), kind, kernel, value=value)
        stages.append(s)
        return s

    for v in g.inputs:
        producer_of[v] = add_stage("read", value=v).index
    for k in plan.kernels:
        _check(k)
        s = add_stage(k.kind, k)
        for port, a in enumerate(k.inputs):
            if a.value in g.params:
                continue
            readers.setdefault(plan.buffer_of(a.value), []).append((s.index, port))
        for a in k.outputs:
            producer_of[plan.buffer_of(a.value)] = s.index
    for v in g.outputs:
        w = add_stage("write", value=v)
        readers.setdefault(plan.buffer_of(v), []).append((w.index, 0))

    # one fifo per (producer, consumer) pair; a fork where a stream has several consumers
    pending: dict[tuple[int, int], int] = {}   # (stage, port) -> fifo

    def new_fifo(v: Value, prod: int, cons: int) -> int:
        f = Fifo(len(fifos), v, _ctype(v, precision), hwc(v.shape), prod, cons)
        fifos.append(f)
        return f.index

    for buf, users in readers.items():
        if buf not in producer_of:
            raise UnsupportedOpError(f"value %{buf.name} has no producer in the dataflow design")
        prod = producer_of[buf]
        if len(users) == 1:
            pending[users[0]] = new_fifo(buf, prod, users[0][0])
            stages[prod].outs.append(pending[users[0]])
            continue
        fork = add_stage("fork", value=buf)
        fin = new_fifo(buf, prod, fork.index)
        stages[prod].outs.append(fin)
        fork.ins.append(fin)
        for u in users:
            pending[u] = new_fifo(buf, fork.index, u[0])
            fork.outs.append(pending[u])
    for (si, port), fi in sorted(pending.items()):
        s = stages[si]
        while len(s.ins) <= port:
            s.ins.append(-1)
        s.ins[port] = fi
    for s in stages:
        s.ins = [i for i in s.ins if i >= 0]
    stages = _topological(stages, fifos)
    net = Network(g, plan, stages, fifos, {})
    for s in stages:
        _check_shapes(net, s)
    return net


def _topological(stages: list[Stage], fifos: list[Fifo]) -> list[Stage]:
    """Stages in an order where every producer comes before its consumers; indices renumbered."""
    done: list[Stage] = []
    placed: set[int] = set()
    remaining = list(stages)
    while remaining:
        for s in remaining:
            if all(fifos[i].producer in placed for i in s.ins):
                done.append(s)
                placed.add(s.index)
                remaining.remove(s)
                break
        else:  # a graph is acyclic; this cannot happen
            raise UnsupportedOpError("the dataflow stages form a cycle")
    old = {s.index: i for i, s in enumerate(done)}
    for s in done:
        s.index = old[s.index]
    for f in fifos:
        f.producer, f.consumer = old[f.producer], old[f.consumer]
    return done


def _check(k: Kernel) -> None:
    if k.kind not in LAYER_KINDS:
        raise UnsupportedOpError(f"the dataflow architecture has no streaming stage for kernel kind '{k.kind}' "
                                 f"(it streams {', '.join(LAYER_KINDS)}); use architecture='layers'",
                                 node=k.label, op=k.node.op)
    q = k.params
    if q.get("NB", 1) != 1 or q.get("M", 1) != 1:
        raise UnsupportedOpError("a dataflow design streams one frame at a time: compile the model with batch 1 "
                                 "(the top function takes the number of frames)", node=k.label, op=k.node.op)
    if k.kind in WINDOW_KINDS:
        if (q["DH"], q["DW"]) != (1, 1):
            raise UnsupportedOpError("dilated windows have no line-buffer stage (dilation 1 only)",
                                     node=k.label, op=k.node.op)
    if k.kind in ("conv", "qconv") and q["G"] != 1 and not q["G"] == q["CI"] == q["CO"]:
        raise UnsupportedOpError(f"grouped convolution with {q['G']} groups: the dataflow stage takes dense "
                                 f"(1 group) or depthwise (groups = channels = output channels)",
                                 node=k.label, op=k.node.op)
    if k.kind == "elementwise" and any(t is not None for t in k.extra["index"]):
        raise UnsupportedOpError("an element-wise stage takes streams of one shape (no broadcasting)",
                                 node=k.label, op=k.node.op)
    if k.kind == "pool" and q["AVG"]:
        raise UnsupportedOpError("average pooling over windows has no dataflow stage (max pooling and global "
                                 "pooling do)", node=k.label, op=k.node.op)


def _check_shapes(net: Network, s: Stage) -> None:
    """Every stage but a dense layer needs its input stream in its own (H, W, C) layout."""
    if s.kernel is None or s.kind in ("dense", "qdense"):
        return
    for port, fi in enumerate(s.ins):
        f = net.fifos[fi]
        a = [a for a in s.kernel.inputs if a.value not in net.graph.params][port]
        if hwc(a.value.shape) != f.shape:
            raise UnsupportedOpError(f"input %{a.value.name} is a view ({a.value.shape}) of a stream of "
                                     f"{f.shape[0]}x{f.shape[1]} pixels of {f.shape[2]} channels; only dense "
                                     f"layers read a reshaped stream", node=s.label, op=s.kernel.node.op)


def is_depthwise(s: Stage) -> bool:
    q = s.kernel.params
    return s.kind in ("conv", "qconv") and q["G"] != 1


def fold_dims(s: Stage, net: Network) -> tuple[int, int]:
    """(outputs, reduction terms per output): PE divides the first, SIMD the second (a dense
    layer's SIMD also divides its input pixel's channels: a step reads within one pixel)."""
    q = s.kernel.params if s.kernel is not None else {}
    if s.kind in ("conv", "qconv"):
        taps = q["KH"] * q["KW"]
        return (q["CO"], taps) if is_depthwise(s) else (q["CO"], taps * q["CI"])
    if s.kind in ("dense", "qdense"):
        return q["N"], q["K"]
    if s.kind in ("read", "write", "fork"):
        return 1, 1
    return net.fifo_out(s).channels, 1


def pe_choices(s: Stage, net: Network) -> list[int]:
    return divisors(fold_dims(s, net)[0])


def simd_choices(s: Stage, net: Network) -> list[int]:
    if s.kind in ("dense", "qdense"):
        return divisors(net.fifo_in(s).channels)
    return divisors(fold_dims(s, net)[1])
