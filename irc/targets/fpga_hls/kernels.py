"""From a fused graph to HLS kernels: one kernel per fused group (a node after ``fuse`` and
``fuse_elementwise``), each of a kind the kernel library implements.

A kernel records what code generation, the resource model and the runtime need: its C name, its
kind, its arguments (which graph value each one carries, in or out), the shape constants of its
loops, and ``par_dim``, the loop extent its parallelism factor divides (so unrolled loops have
no remainder). Views (reshape) become aliases: the consumer reads the producer's buffer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from irc.errors import TargetError, UnsupportedOpError
from irc.ir.graph import Graph, Node, Value
from irc.ir.types import DType

#: element-wise ops a kernel can compute (the C++ for each is in render.py)
ELEMENTWISE_OPS = (
    "relu", "leaky_relu", "clip", "sigmoid", "tanh", "hard_sigmoid", "hard_swish", "elu", "softplus",
    "gelu", "gelu_tanh", "silu",
    "exp", "log", "sqrt", "neg", "abs", "reciprocal", "identity",
    "add", "sub", "mul", "div", "max", "min", "prelu",
)
VIEW_OPS = ("reshape",)


@dataclass(slots=True)
class Arg:
    """One pointer argument of a kernel: its C name, the value it carries, and its direction."""

    name: str
    value: Value
    output: bool = False


@dataclass(slots=True)
class Kernel:
    """One HLS kernel (a Vitis compute unit)."""

    name: str
    kind: str
    node: Node
    args: list[Arg]
    params: dict[str, Any]
    par_dim: int
    parallelism: int = 1
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def inputs(self) -> list[Arg]:
        return [a for a in self.args if not a.output]

    @property
    def outputs(self) -> list[Arg]:
        return [a for a in self.args if a.output]

    @property
    def label(self) -> str:
        return self.node.label

    def candidates(self) -> list[int]:
        """Parallelism factors this kernel accepts: the divisors of ``par_dim``."""
        n = max(self.par_dim, 1)
        return [d for d in range(1, n + 1) if n % d == 0]

    def describe(self) -> str:
        return f"kernel '{self.name}' ({self.node.op}, node '{self.label}')"


@dataclass(slots=True)
class Alias:
    """``dst`` is ``src`` seen with another shape: the same device buffer."""

    src: Value
    dst: Value


@dataclass(slots=True)
class Plan:
    """The kernels of a graph in execution order, and the aliases between buffers."""

    graph: Graph
    kernels: list[Kernel]
    aliases: list[Alias]

    def buffer_of(self, v: Value) -> Value:
        """The value whose device buffer holds ``v`` (following aliases)."""
        src = {a.dst: a.src for a in self.aliases}
        while v in src:
            v = src[v]
        return v


def c_name(text: str) -> str:
    s = re.sub(r"\W", "_", text).strip("_") or "k"
    return s


def plan_kernels(g: Graph) -> Plan:
    """One kernel per node (views become aliases); UnsupportedOpError names a node without one."""
    consts = g.params
    kernels: list[Kernel] = []
    aliases: list[Alias] = []
    for n in g.nodes:
        if n.op in VIEW_OPS:
            aliases.append(Alias(n.inputs[0], n.outputs[0]))
            continue
        make = _KINDS.get(n.op)
        if make is None and n.op in ELEMENTWISE_OPS:
            make = _elementwise
        if make is None:
            raise UnsupportedOpError(
                f"the fpga target (flow hls) has no kernel for this op; it maps "
                f"{', '.join(sorted(set(_KINDS) | {'elementwise ops'}))} (run the fuse passes first)",
                node=n.label, op=n.op)
        _check_dtypes(n)
        k = make(n, consts) if make in _NEED_CONSTS else make(n)
        k.name = f"k{len(kernels)}_{c_name(n.label)}"[:60]
        kernels.append(k)
    if not kernels:
        raise TargetError(f"graph '{g.name}' has no operation for the FPGA to run (its outputs are its inputs, "
                          f"constants or views of them); there is no design to build")
    return Plan(g, kernels, aliases)


_INT_OPS = ("qgemm", "qconv", "qadd", "qglobal_average_pool", "quantize_linear", "dequantize_linear",
            "max_pool", "global_max_pool", "argmax")


def _check_dtypes(n: Node) -> None:
    """f32 tensors everywhere, except the integer tensors of int8 layers (and argmax's index)."""
    ok = (DType.f32,) if n.op not in _INT_OPS else (DType.f32, DType.u8, DType.i8, DType.i32, DType.i64)
    for v in n.inputs:
        if v.dtype not in ok or (v.dtype is not DType.f32 and n.op == "argmax"):
            raise UnsupportedOpError(f"input %{v.name} is {v.type}; the HLS kernels take f32 tensors (and u8/i8 "
                                     f"in int8 layers)", node=n.label, op=n.op)
    for v in n.outputs:
        if v.dtype not in ok or (v.dtype is DType.i64 and n.op != "argmax"):
            raise UnsupportedOpError(f"output %{v.name} is {v.type}; expected f32 (or u8/i8 in int8 layers)",
                                     node=n.label, op=n.op)


def _spatial2d(shape: tuple[int, ...]) -> tuple[int, int, int, int]:
    """(N, C, H, W) of a rank-3 (1-D: H = 1) or rank-4 tensor."""
    if len(shape) == 3:
        return shape[0], shape[1], 1, shape[2]
    return shape


def _window2d(n: Node, key: str = "kernel_shape", ks=None):
    """Kernel, strides, begin/end pads and dilations as 2-D tuples (a 1-D window gets H = 1)."""
    a = n.attrs
    ks = tuple(ks if ks is not None else a[key])
    s, d, p = tuple(a["strides"]), tuple(a["dilations"]), tuple(a["pads"])
    if len(ks) == 1:
        return (1, ks[0]), (1, s[0]), (0, p[0]), (0, p[1]), (1, d[0])
    if len(ks) != 2:
        raise UnsupportedOpError(f"{len(ks)}-D windows are not supported by the HLS kernels (1-D and 2-D are)",
                                 node=n.label, op=n.op)
    return ks, s, (p[0], p[1]), (p[2], p[3]), d


def _dense(n: Node) -> Kernel:
    a, b = n.inputs[0], n.inputs[1]
    m, k = a.shape
    nn = b.shape[1]
    return Kernel("", "dense", n, _float_args(n), {"M": m, "K": k, "N": nn}, nn,
                  extra={"act": _act(n)})


def _act(n: Node) -> tuple[str, float, float]:
    return n.attrs.get("act", "none"), n.attrs.get("act_alpha", 0.0), n.attrs.get("act_beta", 0.0)


def _float_args(n: Node) -> list[Arg]:
    """x, w, then the optional bias and residual of a fused gemm or conv, and y."""
    names = ("x", "w", "bias", "res")
    return [Arg(name, v) for name, v in zip(names, n.inputs)] + [Arg("y", n.outputs[0], True)]


def _conv_params(n: Node) -> dict[str, int]:
    """Loop constants of a 1-D or 2-D convolution (float or int8)."""
    x, w = n.inputs[0], n.inputs[1]
    if x.type.rank not in (3, 4):
        raise UnsupportedOpError(f"only 1-D and 2-D convolutions have an HLS kernel, got input {x.type}",
                                 node=n.label, op=n.op)
    nb, ci, h, wd = _spatial2d(x.shape)
    _, co, oh, ow = _spatial2d(n.outputs[0].shape)
    (kh, kw), (sh, sw), (pt, pl), _, (dh, dw) = _window2d(n, ks=w.shape[2:])
    return dict(NB=nb, CI=ci, H=h, W=wd, CO=co, OH=oh, OW=ow, KH=kh, KW=kw, SH=sh, SW=sw, PT=pt, PL=pl,
                DH=dh, DW=dw, G=n.attrs["group"])


def _conv(n: Node) -> Kernel:
    p = _conv_params(n)
    return Kernel("", "conv", n, _float_args(n), p, p["CO"] // p["G"], extra={"act": _act(n)})


def _pool(n: Node) -> Kernel:
    x = n.inputs[0]
    if x.type.rank not in (3, 4):
        raise UnsupportedOpError(f"only 1-D and 2-D pooling have an HLS kernel, got input {x.type}",
                                 node=n.label, op=n.op)
    nb, c, h, wd = _spatial2d(x.shape)
    _, _, oh, ow = _spatial2d(n.outputs[0].shape)
    (kh, kw), (sh, sw), (pt, pl), (pb, pr), (dh, dw) = _window2d(n)
    avg = n.op == "average_pool"
    p = dict(NB=nb, C=c, H=h, W=wd, OH=oh, OW=ow, KH=kh, KW=kw, SH=sh, SW=sw, PT=pt, PL=pl, PB=pb, PR=pr,
             DH=dh, DW=dw, AVG=int(avg), COUNT_PAD=int(avg and n.attrs["count_include_pad"]))
    return Kernel("", "pool", n, [Arg("x", x), Arg("y", n.outputs[0], True)], p, c)


def _global_pool(n: Node) -> Kernel:
    x = n.inputs[0]
    nb, c = x.shape[0], x.shape[1]
    hw = x.type.size // max(nb * c, 1)
    p = dict(NB=nb, C=c, HW=hw, AVG=int(n.op == "global_average_pool"))
    return Kernel("", "global_pool", n, [Arg("x", x), Arg("y", n.outputs[0], True)], p, c)


def _axis_split(shape: tuple[int, ...], axis: int) -> dict[str, int]:
    outer = 1
    for d in shape[:axis]:
        outer *= d
    inner = 1
    for d in shape[axis + 1:]:
        inner *= d
    return {"OUTER": outer, "LEN": shape[axis], "INNER": inner}


def _softmax(n: Node) -> Kernel:
    x = n.inputs[0]
    p = _axis_split(x.shape, n.attrs["axis"])
    return Kernel("", "softmax", n, [Arg("x", x), Arg("y", n.outputs[0], True)], p, p["LEN"])


def _argmax(n: Node) -> Kernel:
    x = n.inputs[0]
    p = _axis_split(x.shape, n.attrs["axis"])
    p["LAST"] = int(n.attrs["select_last_index"])
    return Kernel("", "argmax", n, [Arg("x", x), Arg("y", n.outputs[0], True)], p, p["LEN"])


def broadcast_terms(in_shape: tuple[int, ...], out_shape: tuple[int, ...]) -> list[tuple[int, int, int]] | None:
    """How flat output index j maps to the input's flat index: None if they are the same
    (index j), else terms (div, mod, mul) with index = sum(((j / div) % mod) * mul)."""
    if tuple(in_shape) == tuple(out_shape):
        return None
    rank = len(out_shape)
    ins = (1,) * (rank - len(in_shape)) + tuple(in_shape)
    terms = []
    out_stride, in_stride = 1, 1
    for d in range(rank - 1, -1, -1):
        if ins[d] != 1:
            terms.append((out_stride, out_shape[d], in_stride))
        out_stride *= out_shape[d]
        in_stride *= ins[d]
    return terms[::-1]


def _elementwise(n: Node) -> Kernel:
    out = n.outputs[0]
    if n.op == "elementwise_chain":
        prog = n.attrs["body"]
        bad = sorted({m.op for m in prog.nodes if m.op not in ELEMENTWISE_OPS})
        if bad:
            raise UnsupportedOpError(f"element-wise op(s) {', '.join(bad)} have no HLS code "
                                     f"(supported: {', '.join(ELEMENTWISE_OPS)})", node=n.label, op=n.op)
    args = [Arg(f"x{i}", v) for i, v in enumerate(n.inputs)] + [Arg("y", out, True)]
    total = out.type.size
    return Kernel("", "elementwise", n, args, {"TOTAL": total}, total,
                  extra={"index": [broadcast_terms(v.shape, out.shape) for v in n.inputs]})


_KINDS = {
    "gemm_fused": _dense,
    "conv_fused": _conv,
    "max_pool": _pool,
    "average_pool": _pool,
    "global_average_pool": _global_pool,
    "global_max_pool": _global_pool,
    "softmax": _softmax,
    "argmax": _argmax,
    "elementwise_chain": _elementwise,
}


# ---------------------------------------------------------------------------- int8 layers
def _requant(a: dict) -> dict[str, int]:
    return {"YZP": a["y_zero_point"], "YMIN": a["y_min"], "YMAX": a["y_max"]}


def _int8_args(n: Node) -> list[Arg]:
    """x, w, the int32 bias, the per-channel requantize multiplier and shift, and y."""
    names = ("x", "w", "bias", "mult", "shift")
    return [Arg(name, v) for name, v in zip(names, n.inputs, strict=True)] + [Arg("y", n.outputs[0], True)]


def _qdense(n: Node) -> Kernel:
    a, b = n.inputs[0], n.inputs[1]
    m, k = a.shape
    p = {"M": m, "K": k, "N": b.shape[1], "XZP": n.attrs["a_zero_point"], **_requant(n.attrs)}
    return Kernel("", "qdense", n, _int8_args(n), p, b.shape[1])


def _qconv(n: Node) -> Kernel:
    p = {**_conv_params(n), "XZP": n.attrs["x_zero_point"], **_requant(n.attrs)}
    return Kernel("", "qconv", n, _int8_args(n), p, p["CO"] // p["G"])


def _qadd(n: Node) -> Kernel:
    a = n.attrs
    total = n.outputs[0].type.size
    p = {"TOTAL": total, "AZP": a["a_zero_point"], "BZP": a["b_zero_point"], "AM": a["a_mult"], "BM": a["b_mult"],
         "M0": a["multiplier"], "SH": a["shift"], **_requant(a)}
    args = [Arg("a", n.inputs[0]), Arg("b", n.inputs[1]), Arg("y", n.outputs[0], True)]
    return Kernel("", "qadd", n, args, p, total)


def _qgpool(n: Node) -> Kernel:
    x = n.inputs[0]
    nb, c = x.shape[0], x.shape[1]
    a = n.attrs
    p = {"NB": nb, "C": c, "HW": x.type.size // max(nb * c, 1), "XZP": a["x_zero_point"], "M0": a["multiplier"],
         "SH": a["shift"], **_requant(a)}
    return Kernel("", "qgpool", n, [Arg("x", x), Arg("y", n.outputs[0], True)], p, c)


def _scalar_qparams(n: Node, consts) -> tuple[float, int]:
    scale = consts.get(n.inputs[1])
    zp = consts.get(n.inputs[2]) if len(n.inputs) > 2 else np.zeros((), np.int64)
    if scale is None or zp is None or scale.size != 1 or zp.size != 1:
        raise UnsupportedOpError("the HLS kernels take per-tensor constant scales and zero points",
                                 node=n.label, op=n.op)
    return float(scale.reshape(())), int(zp.reshape(()))


def _quantize(n: Node, consts) -> Kernel:
    scale, zp = _scalar_qparams(n, consts)
    info = np.iinfo(n.outputs[0].dtype.numpy)
    total = n.outputs[0].type.size
    p = {"TOTAL": total, "ZP": zp, "LO": int(info.min), "HI": int(info.max)}
    return Kernel("", "quantize", n, [Arg("x", n.inputs[0]), Arg("y", n.outputs[0], True)], p, total,
                  extra={"scale": scale})


def _dequantize(n: Node, consts) -> Kernel:
    scale, zp = _scalar_qparams(n, consts)
    total = n.outputs[0].type.size
    return Kernel("", "dequantize", n, [Arg("x", n.inputs[0]), Arg("y", n.outputs[0], True)], {"TOTAL": total,
                  "ZP": zp}, total, extra={"scale": scale})


_KINDS.update({"qgemm": _qdense, "qconv": _qconv, "qadd": _qadd, "qglobal_average_pool": _qgpool,
               "quantize_linear": _quantize, "dequantize_linear": _dequantize})
_NEED_CONSTS = (_quantize, _dequantize)
INT8_KINDS = frozenset({"qdense", "qconv", "qadd", "qgpool", "quantize"})


def op_list(n: Node) -> list[Node]:
    """The element-wise nodes a kernel computes (a chain's body, or the node itself)."""
    if n.op == "elementwise_chain":
        return list(n.attrs["body"].nodes)
    return [n]


def is_supported(op: str) -> bool:
    return op in _KINDS or op in ELEMENTWISE_OPS or op in VIEW_OPS


__all__ = ["Alias", "Arg", "Kernel", "Plan", "broadcast_terms", "is_supported", "op_list", "plan_kernels"]
