"""Fused and lowered ops: what the fusion and lowering passes produce.

GEMM or convolution followed by the bias add and the activation is best run as
one kernel (one pass over the output instead of three); a residual add joins the same epilogue:

    y = act(conv(x, w) + bias + residual)

``conv_fused`` / ``gemm_fused`` are that, target independent (the CPU target lowers them further
to ops of its own: irc/targets/cpu/lowering). Every op keeps a numpy reference, so the
interpreter can check every rewrite.

Epilogue activations: ``act``, ``act_alpha`` and ``act_beta`` (irc/ir/ops/activation.py).
"""

from __future__ import annotations

import numpy as np

from irc.errors import ShapeError
from irc.ir.ops import costs
from irc.ir.ops.activation import EPILOGUE_ATTRS, apply_activation
from irc.ir.ops.registry import Attr, Trait, defop, get_op, same_dtype
from irc.ir.types import TensorType


def apply_epilogue(y: np.ndarray, bias, residual, act: str, act_alpha: float, act_beta: float,
                   bias_axis: int) -> np.ndarray:
    """act(y + bias + residual) in y's dtype, bias broadcast along ``bias_axis``."""
    if bias is not None:
        shape = [1] * y.ndim
        shape[bias_axis] = -1
        y = y + bias.reshape(shape)
    if residual is not None:
        y = y + residual
    return apply_activation(y, act, act_alpha, act_beta)


def check_extra(out: TensorType, bias: TensorType | None, residual: TensorType | None, channels: int) -> None:
    if bias is not None and bias.shape != (channels,):
        raise ShapeError(f"bias must be [{channels}], got {bias}")
    if residual is not None and residual != out:
        raise ShapeError(f"residual must match the output {out}, got {residual}")


CONV_ATTRS = {
    "strides": Attr("ints"),
    "pads": Attr("ints"),
    "dilations": Attr("ints"),
    "group": Attr("int", 1),
}


@defop("conv_fused", ("x", "w", "bias?", "residual?"), {**CONV_ATTRS, **EPILOGUE_ATTRS}, traits=(Trait.CONV, Trait.FUSED))
class ConvFused:
    """act(conv(x, w) + bias + residual): a convolution with its epilogue in one kernel."""

    def infer(x, w, bias=None, residual=None, *, strides, pads, dilations, group, act, act_alpha, act_beta):
        _, (out,) = get_op("conv").type_check([x, w], dict(strides=strides, pads=pads, dilations=dilations, group=group))
        same_dtype(x, w, *(t for t in (bias, residual) if t is not None))
        check_extra(out, bias, residual, w.shape[0])
        return out

    cost = costs.conv

    def reference(x, w, bias=None, residual=None, *, strides, pads, dilations, group, act, act_alpha, act_beta):
        y = get_op("conv").reference(x, w, strides=strides, pads=pads, dilations=dilations, group=group)
        return apply_epilogue(y, bias, residual, act, act_alpha, act_beta, 1)


@defop("gemm_fused", ("a", "b", "bias?", "residual?"), EPILOGUE_ATTRS, traits=(Trait.LINALG, Trait.FUSED))
class GemmFused:
    """act(a @ b + bias + residual) for matrices a [M, K], b [K, N]; bias [N]."""

    def infer(a, b, bias=None, residual=None, *, act, act_alpha, act_beta):
        same_dtype(a, b, *(t for t in (bias, residual) if t is not None))
        if a.rank != 2 or b.rank != 2 or a.shape[1] != b.shape[0]:
            raise ShapeError(f"a and b must be matrices with a's columns equal to b's rows, got {a} and {b}")
        out = TensorType((a.shape[0], b.shape[1]), a.dtype)
        check_extra(out, bias, residual, b.shape[1])
        return out

    cost = costs.matmul

    def reference(a, b, bias=None, residual=None, *, act, act_alpha, act_beta):
        y = get_op("matmul").reference(a, b)
        return apply_epilogue(y, bias, residual, act, act_alpha, act_beta, 1)


# ---------------------------------------------------------------------------- element-wise chains


@defop("elementwise_chain", ("xs*",), {"body": Attr("graph")}, traits=(Trait.FUSED, Trait.LOWERED))
class ElementwiseChain:
    """Several element-wise ops run as one loop over the output: ``body`` is the sub-graph (its
    inputs are this node's inputs; only element-wise ops inside), so each element is read once,
    computed through the whole chain in registers, and written once."""

    def infer(*xs, body):
        want = [v.type for v in body.inputs]
        if list(xs) != want:
            raise ShapeError(f"inputs {', '.join(map(str, xs))} do not match the body's {', '.join(map(str, want))}")
        bad = sorted({n.op for n in body.nodes if Trait.ELEMENTWISE not in get_op(n.op).traits})
        if bad or len(body.outputs) != 1:
            raise ShapeError(f"an element-wise chain holds element-wise ops and one output (found {', '.join(bad)})")
        return body.outputs[0].type

    def reference(*xs, body):
        from irc.ir.interp import interpret

        return interpret(body, list(xs))[0]

    def cost(n):
        """What the body's own nodes cost (it runs at the node's shapes)."""
        return sum((get_op(m.op).cost(m) for m in n.attrs["body"].nodes), costs.Cost())
