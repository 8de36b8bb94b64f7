"""Fused and lowered ops: what the fusion and lowering passes produce.

The study found that GEMM or convolution followed by the bias add and the activation is best
one kernel (one pass over the output instead of three); a residual add joins the same epilogue:

    y = act(conv(x, w) + bias + residual)

``conv_fused`` / ``gemm_fused`` are that, target independent. ``conv_gemm`` / ``gemm_packed``
are the CPU lowering: weights re-laid out at compile time into the panels the GEMM micro-kernel
streams through (``conv_gemm`` computes the convolution as im2col + GEMM, the im2col done while
packing). Every op keeps a numpy reference, so the interpreter can check every rewrite.

Epilogue activations: ``act`` names one of ACTIVATIONS; ``act_alpha`` and ``act_beta`` are its
parameters (leaky_relu: alpha; clip: min, max; hard_sigmoid: alpha, beta).
"""

from __future__ import annotations

import functools
import math

import numpy as np

from irc.errors import ShapeError
from irc.ir.ops.registry import Attr, defop, get_op, same_dtype
from irc.ir.types import TensorType

#: act name -> (op applied, how (alpha, beta) map to its attributes)
ACTIVATIONS = {
    "none": None,
    "relu": ("relu", lambda a, b: {}),
    "leaky_relu": ("leaky_relu", lambda a, b: {"alpha": a}),
    "clip": ("clip", lambda a, b: {"min": a, "max": b}),
    "sigmoid": ("sigmoid", lambda a, b: {}),
    "tanh": ("tanh", lambda a, b: {}),
    "hard_sigmoid": ("hard_sigmoid", lambda a, b: {"alpha": a, "beta": b}),
    "hard_swish": ("hard_swish", lambda a, b: {}),
}

EPILOGUE_ATTRS = {
    "act": Attr("str", "none", tuple(ACTIVATIONS)),
    "act_alpha": Attr("float", 0.0),
    "act_beta": Attr("float", 0.0),
}


def activation_of(node_op: str, attrs: dict) -> tuple[str, float, float] | None:
    """(act, alpha, beta) if an element-wise node can be an epilogue activation, else None."""
    if node_op in ("relu", "sigmoid", "tanh", "hard_swish"):
        return node_op, 0.0, 0.0
    if node_op == "leaky_relu":
        return node_op, attrs["alpha"], 0.0
    if node_op == "clip":
        return node_op, attrs["min"], attrs["max"]
    if node_op == "hard_sigmoid":
        return node_op, attrs["alpha"], attrs["beta"]
    return None


def apply_epilogue(y: np.ndarray, bias, residual, act: str, act_alpha: float, act_beta: float,
                   bias_axis: int) -> np.ndarray:
    """act(y + bias + residual) in y's dtype, bias broadcast along ``bias_axis``."""
    if bias is not None:
        shape = [1] * y.ndim
        shape[bias_axis] = -1
        y = y + bias.reshape(shape)
    if residual is not None:
        y = y + residual
    spec = ACTIVATIONS[act]
    if spec is not None:
        op = get_op(spec[0])
        y = op.evaluate([y], op.check_attrs(spec[1](act_alpha, act_beta)))[0]
    return y


def _check_extra(out: TensorType, bias: TensorType | None, residual: TensorType | None, channels: int) -> None:
    if bias is not None and bias.shape != (channels,):
        raise ShapeError(f"bias must be [{channels}], got {bias}")
    if residual is not None and residual != out:
        raise ShapeError(f"residual must match the output {out}, got {residual}")


_CONV_ATTRS = {
    "strides": Attr("ints"),
    "pads": Attr("ints"),
    "dilations": Attr("ints"),
    "group": Attr("int", 1),
}


@defop("conv_fused", ("x", "w", "bias?", "residual?"), {**_CONV_ATTRS, **EPILOGUE_ATTRS}, tags=("conv", "fused"))
class ConvFused:
    """act(conv(x, w) + bias + residual): a convolution with its epilogue in one kernel."""

    def infer(x, w, bias=None, residual=None, *, strides, pads, dilations, group, act, act_alpha, act_beta):
        _, (out,) = get_op("conv").type_check([x, w], dict(strides=strides, pads=pads, dilations=dilations, group=group))
        same_dtype(x, w, *(t for t in (bias, residual) if t is not None))
        _check_extra(out, bias, residual, w.shape[0])
        return out

    def reference(x, w, bias=None, residual=None, *, strides, pads, dilations, group, act, act_alpha, act_beta):
        y = get_op("conv").reference(x, w, strides=strides, pads=pads, dilations=dilations, group=group)
        return apply_epilogue(y, bias, residual, act, act_alpha, act_beta, 1)


@defop("gemm_fused", ("a", "b", "bias?", "residual?"), EPILOGUE_ATTRS, tags=("linalg", "fused"))
class GemmFused:
    """act(a @ b + bias + residual) for matrices a [M, K], b [K, N]; bias [N]."""

    def infer(a, b, bias=None, residual=None, *, act, act_alpha, act_beta):
        same_dtype(a, b, *(t for t in (bias, residual) if t is not None))
        if a.rank != 2 or b.rank != 2 or a.shape[1] != b.shape[0]:
            raise ShapeError(f"a and b must be matrices with a's columns equal to b's rows, got {a} and {b}")
        out = TensorType((a.shape[0], b.shape[1]), a.dtype)
        _check_extra(out, bias, residual, b.shape[1])
        return out

    def reference(a, b, bias=None, residual=None, *, act, act_alpha, act_beta):
        y = get_op("matmul").reference(a, b)
        return apply_epilogue(y, bias, residual, act, act_alpha, act_beta, 1)


# ---------------------------------------------------------------------------- packed (CPU lowering)


def pack_panels(mat: np.ndarray, width: int) -> np.ndarray:
    """[R, K] -> [ceil(R/width), K, width]: row panels, zero padded, K-major inside a panel."""
    r, k = mat.shape
    panels = math.ceil(r / width) if r else 0
    padded = np.zeros((panels * width, k), mat.dtype)
    padded[:r] = mat
    return np.ascontiguousarray(padded.reshape(panels, width, k).transpose(0, 2, 1))


def unpack_panels(packed: np.ndarray, rows: int) -> np.ndarray:
    """Inverse of pack_panels: [P, K, width] -> [rows, K]."""
    p, k, width = packed.shape
    return packed.transpose(0, 2, 1).reshape(p * width, k)[:rows]


@defop("gemm_packed", ("a", "bp", "bias?", "residual?"), {"n": Attr("int"), **EPILOGUE_ATTRS},
       tags=("linalg", "fused", "lowered"))
class GemmPacked:
    """act(a @ B + bias + residual) with B [K, n] stored packed: bp = pack_panels(B.T, NR), i.e.
    [ceil(n/NR), K, NR]. The micro-kernel streams one NR-wide panel of B per tile."""

    def infer(a, bp, bias=None, residual=None, *, n, act, act_alpha, act_beta):
        same_dtype(a, bp, *(t for t in (bias, residual) if t is not None))
        if a.rank != 2 or bp.rank != 3 or bp.shape[1] != a.shape[1] or bp.shape[0] * bp.shape[2] < n:
            raise ShapeError(f"a [M, K] and packed b [panels, K, NR] covering {n} columns expected, got {a} and {bp}")
        out = TensorType((a.shape[0], n), a.dtype)
        _check_extra(out, bias, residual, n)
        return out

    def reference(a, bp, bias=None, residual=None, *, n, act, act_alpha, act_beta):
        b = unpack_panels(bp, n).T
        y = get_op("matmul").reference(a, np.ascontiguousarray(b))
        return apply_epilogue(y, bias, residual, act, act_alpha, act_beta, 1)


@defop("conv_gemm", ("x", "wp", "bias?", "residual?"),
       {"kernel_shape": Attr("ints"), "cout": Attr("int"), **_CONV_ATTRS, **EPILOGUE_ATTRS},
       tags=("conv", "fused", "lowered"))
class ConvGemm:
    """A 2-D convolution as im2col + GEMM: per group g, W_g [Cout/group, Cin/group*kh*kw] is the
    GEMM's left operand stored packed, wp[g] = pack_panels(W_g, MR) -> wp [group, panels, K, MR];
    the im2col matrix of x is the right operand (formed while packing, never stored whole)."""

    def infer(x, wp, bias=None, residual=None, *, kernel_shape, cout, strides, pads, dilations, group,
              act, act_alpha, act_beta):
        if x.rank != 4 or wp.rank != 4 or len(kernel_shape) != 2:
            raise ShapeError(f"conv_gemm is 2-D: x [N, C, H, W] and wp [group, panels, K, MR], got {x} and {wp}")
        cin_g = x.shape[1] // group
        k = cin_g * kernel_shape[0] * kernel_shape[1]
        if wp.shape[0] != group or wp.shape[2] != k or wp.shape[1] * wp.shape[3] < cout // group:
            raise ShapeError(f"packed weights {wp} do not match {group} group(s) of {cout // group} rows x {k}")
        w = TensorType((cout, cin_g, *kernel_shape), x.dtype)
        _, (out,) = get_op("conv").type_check([x, w], dict(strides=strides, pads=pads, dilations=dilations, group=group))
        same_dtype(x, wp, *(t for t in (bias, residual) if t is not None))
        _check_extra(out, bias, residual, cout)
        return out

    def reference(x, wp, bias=None, residual=None, *, kernel_shape, cout, strides, pads, dilations, group,
                  act, act_alpha, act_beta):
        cin_g = x.shape[1] // group
        w = np.concatenate([unpack_panels(wp[g], cout // group) for g in range(group)])
        w = w.reshape(cout, cin_g, *kernel_shape)
        y = get_op("conv").reference(x, w, strides=strides, pads=pads, dilations=dilations, group=group)
        return apply_epilogue(y, bias, residual, act, act_alpha, act_beta, 1)


# ---------------------------------------------------------------------------- element-wise chains


@functools.lru_cache(maxsize=512)
def chain_program(program: str):
    """The sub-graph an elementwise_chain runs, parsed once per distinct program text."""
    from irc.ir.parser import parse_graph

    return parse_graph(program)


@defop("elementwise_chain", ("xs*",), {"program": Attr("str")}, tags=("fused", "lowered"))
class ElementwiseChain:
    """Several element-wise ops run as one loop over the output: ``program`` is the IR text of
    the sub-graph (its inputs are this node's inputs; only element-wise ops inside), so each
    element is read once, computed through the whole chain in registers, and written once."""

    def infer(*xs, program):
        g = chain_program(program)
        want = [v.type for v in g.inputs]
        if list(xs) != want:
            raise ShapeError(f"inputs {', '.join(map(str, xs))} do not match the program's {', '.join(map(str, want))}")
        bad = sorted({n.op for n in g.nodes if "elementwise" not in get_op(n.op).tags})
        if bad or len(g.outputs) != 1:
            raise ShapeError(f"an element-wise chain holds element-wise ops and one output (found {', '.join(bad)})")
        return g.outputs[0].type

    def reference(*xs, program):
        from irc.ir.interp import interpret

        return interpret(chain_program(program), list(xs))[0]
