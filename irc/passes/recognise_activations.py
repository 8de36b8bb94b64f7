"""Recognition of GELU and SiLU as exported: the element-wise arithmetic exporters write for
them becomes one ``gelu`` / ``gelu_tanh`` / ``silu`` node, which the fuse pass can then make a
GEMM epilogue.

    gelu       0.5 * x * (1 + erf(x / sqrt 2))           (x * sqrt(1/2) for the division)
    gelu_tanh  0.5 * x * (1 + tanh(sqrt(2/pi) * (x + 0.044715 * x^3)))   (x^3 as pow or muls)
    silu       x * sigmoid(x)

Products are matched as multisets of factors (nested muls in any order and association: torch's
``x * (1 + erf) * 0.5``, ONNX's Gelu expansion ``(x * 0.5) * (1 + erf)``...), constants within
1e-6 relative of the exact values, sums in either operand order. Every intermediate value must be
read only inside the pattern: then nothing else needs it (a training graph's backward reads
them, so the forward stays as written there and the gradient sees what it differentiated).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

from irc.ir.graph import Graph, Node, Value
from irc.ir.ops.self_gated import GELU_TANH_CUBIC, INV_SQRT2, SQRT_2_OVER_PI
from irc.passes.registry import Pass, register_pass
from irc.passes.rewrite import RewriteContext, rewrite

_RTOL = 1e-6


def _is_const(ctx: RewriteContext, v: Value, want: float) -> bool:
    c = ctx.const(v)
    return c is not None and c.size == 1 and c.dtype.kind == "f" and math.isclose(float(c.reshape(())), want,
                                                                                   rel_tol=_RTOL)


def _inner(ctx: RewriteContext, v: Value, op: str) -> Node | None:
    """The ``op`` node producing v, if v is read only by the node being matched."""
    p = ctx.producer(v)
    return p if p is not None and p.op == op and ctx.single_use(v) else None


def _factors(ctx: RewriteContext, inputs) -> list[Value]:
    """The factors of a product: muls whose results are read only inside it are opened."""
    out = []
    for v in inputs:
        p = _inner(ctx, v, "mul")
        out.extend(_factors(ctx, p.inputs) if p is not None else [v])
    return out


def _take_const(ctx: RewriteContext, factors: list[Value], want: float) -> bool:
    """Remove the one factor that is the constant ``want``; False if there is none."""
    for i, v in enumerate(factors):
        if _is_const(ctx, v, want):
            del factors[i]
            return True
    return False


def _one_plus(ctx: RewriteContext, v: Value, op: str) -> Value | None:
    """u where v = 1 + op(u) (either order), each step read only here."""
    add = _inner(ctx, v, "add")
    if add is None:
        return None
    for side in (0, 1):
        f = _inner(ctx, add.inputs[side], op)
        if f is not None and _is_const(ctx, add.inputs[1 - side], 1.0):
            return f.inputs[0]
    return None


def _scaled(ctx: RewriteContext, u: Value, x: Value, scale: float) -> bool:
    """u = x * scale, written as a product or as a division by 1/scale."""
    div = _inner(ctx, u, "div")
    if div is not None:
        return div.inputs[0] is x and _is_const(ctx, div.inputs[1], 1 / scale)
    if _inner(ctx, u, "mul") is None:
        return False
    fs = _factors(ctx, [u])
    return _take_const(ctx, fs, scale) and fs == [x]


def _cube_term(ctx: RewriteContext, v: Value, x: Value) -> bool:
    """v = 0.044715 * x^3, the cube as pow(x, 3) or as x * x * x."""
    if _inner(ctx, v, "mul") is None:
        return False
    fs = _factors(ctx, [v])
    if not _take_const(ctx, fs, GELU_TANH_CUBIC):
        return False
    if len(fs) == 1:
        p = _inner(ctx, fs[0], "pow")
        return p is not None and p.inputs[0] is x and _is_const(ctx, p.inputs[1], 3.0)
    return fs == [x, x, x]


def _tanh_arg(ctx: RewriteContext, t: Value, x: Value) -> bool:
    """t = sqrt(2/pi) * (x + 0.044715 x^3)."""
    if _inner(ctx, t, "mul") is None:
        return False
    fs = _factors(ctx, [t])
    if not _take_const(ctx, fs, SQRT_2_OVER_PI) or len(fs) != 1:
        return False
    s = _inner(ctx, fs[0], "add")
    if s is None:
        return False
    a, b = s.inputs
    return (a is x and _cube_term(ctx, b, x)) or (b is x and _cube_term(ctx, a, x))


def _gelu(node: Node, ctx: RewriteContext) -> tuple[str, Value] | None:
    """0.5 * x * (1 + erf(x/sqrt2)) -> gelu(x); 0.5 * x * (1 + tanh(...)) -> gelu_tanh(x)."""
    fs = _factors(ctx, node.inputs)
    if len(fs) != 3 or not _take_const(ctx, fs, 0.5):
        return None
    for x, gate in (fs, fs[::-1]):
        if (u := _one_plus(ctx, gate, "erf")) is not None and _scaled(ctx, u, x, INV_SQRT2):
            return "gelu", x
        if (t := _one_plus(ctx, gate, "tanh")) is not None and _tanh_arg(ctx, t, x):
            return "gelu_tanh", x
    return None


def _silu(node: Node, ctx: RewriteContext) -> tuple[str, Value] | None:
    """x * sigmoid(x), either order -> silu(x)."""
    a, b = node.inputs
    for x, s in ((a, b), (b, a)):
        sig = _inner(ctx, s, "sigmoid")
        if sig is not None and sig.inputs[0] is x:
            return "silu", x
    return None


def _mul(node: Node, ctx: RewriteContext):
    found = _silu(node, ctx) or _gelu(node, ctx)
    # a constant that broadcast x to a larger shape: not this activation
    if found is None or found[1].type != node.outputs[0].type:
        return None
    return (ctx.make(found[0], [found[1]]),)


def recognise_activations(g: Graph) -> Graph:
    """The recognise_activations pass as a function (see RecogniseActivations)."""
    return rewrite(g, {"mul": [_mul]})


@register_pass
@dataclass(frozen=True)
class RecogniseActivations(Pass):
    """Matches the exported element-wise forms of GELU (erf and tanh) and SiLU and replaces each
    by its one op, so ``fuse`` can make it an epilogue. Runs before ``fuse``; leaves everything
    else (and any pattern whose intermediates are read elsewhere) as it is."""

    name: ClassVar[str] = "recognise_activations"

    def run(self, g: Graph) -> Graph:
        return recognise_activations(g)
