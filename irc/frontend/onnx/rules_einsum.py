"""ONNX Einsum, lowered at import to transpose, reshape, reduce_sum, expand and batched matmul.

Exporters write Einsum for attention scores ("bhqd,bhkd->bhqk"), batched products
("bij,bjk->bik") and transposes ("ij->ji"). Each is a product of two operands over shared labels,
which is one batched matmul once the labels are grouped: batch labels (in both operands and
kept), then the first operand's own labels, then the contracted ones. So irc needs no einsum op:
the lowering reuses ops that every target, autodiff and export already handle. The steps:

1. labels that occur in only one operand and not in the output are summed out (reduce_sum);
2. operands are folded left to right, each pair as one matmul of
   [batch, left, contracted] x [batch, contracted, right];
3. the result is transposed into the output's label order.

"..." stands for the leading dimensions an operand has beyond its labels, aligned from the right
and broadcasting where one side has 1. A label repeated inside one operand (a trace or a
diagonal, "ii->i") is refused with UnsupportedOpError.
"""

from __future__ import annotations

import math

from irc.errors import ModelError, ShapeError, UnsupportedOpError
from irc.frontend.onnx.rules import NodeContext, import_rule
from irc.ir.graph import Value

#: Labels standing for the dimensions under "...", outside the letters an equation may use.
_ELLIPSIS = [chr(0x3B1 + i) for i in range(24)]


def parse_equation(equation: str, ranks: list[int]) -> tuple[list[list[str]], list[str]]:
    """(labels of each operand, labels of the output), with "..." expanded and the implicit
    output (no "->": the labels used once, in alphabetical order, after the "..." ones) made
    explicit."""
    eq = equation.replace(" ", "")
    lhs, arrow, rhs = eq.partition("->")
    terms = lhs.split(",")
    if len(terms) != len(ranks):
        raise ModelError(f"equation '{equation}' names {len(terms)} operands; the node has {len(ranks)}")
    n_ell = max((r - len(t.replace("...", "")) for t, r in zip(terms, ranks) if "..." in t), default=0)
    if n_ell > len(_ELLIPSIS):
        raise UnsupportedOpError(f"'...' covers {n_ell} dimensions; at most {len(_ELLIPSIS)} are supported")
    ins = []
    for t, r in zip(terms, ranks):
        letters = t.replace("...", "")
        if not all(c.isalpha() for c in letters) or t.count("...") > 1:
            raise ModelError(f"equation '{equation}': term '{t}' is not made of letters and at most one '...'")
        if "..." in t:
            k = r - len(letters)
            if k < 0:
                raise ShapeError(f"equation '{equation}': term '{t}' has more labels than its operand's rank {r}")
            head, _, tail = t.partition("...")
            labels = list(head) + _ELLIPSIS[n_ell - k:n_ell] + list(tail)
        else:
            labels = list(t)
        if len(labels) != r:
            raise ShapeError(f"equation '{equation}': term '{t}' has {len(labels)} labels for an operand of rank {r}")
        if len(set(labels)) != len(labels):
            raise UnsupportedOpError(f"equation '{equation}': a label repeated inside one operand (a trace or "
                                     "diagonal) is not supported")
        ins.append(labels)
    if arrow:
        if not all(c.isalpha() for c in rhs.replace("...", "")):
            raise ModelError(f"equation '{equation}': output '{rhs}' is not made of letters and '...'")
        head, dots, tail = rhs.partition("...")
        out = list(head) + (_ELLIPSIS[:n_ell] if dots else []) + list(tail)
    else:
        counts: dict[str, int] = {}
        for labels in ins:
            for c in labels:
                counts[c] = counts.get(c, 0) + 1
        out = _ELLIPSIS[:n_ell] + sorted(c for c, n in counts.items() if n == 1 and c not in _ELLIPSIS)
    used = {c for labels in ins for c in labels}
    if len(set(out)) != len(out) or not set(out) <= used:
        raise ModelError(f"equation '{equation}': the output labels must be distinct and appear in an operand")
    return ins, out


class _Operand:
    """A value and the label of each of its axes."""

    def __init__(self, value: Value, labels: list[str]):
        self.value, self.labels = value, labels

    def size(self, label: str) -> int:
        return self.value.shape[self.labels.index(label)]


def _transpose(ctx: NodeContext, x: _Operand, labels: list[str]) -> _Operand:
    perm = tuple(x.labels.index(c) for c in labels)
    if perm == tuple(range(len(perm))):
        return _Operand(x.value, labels)
    return _Operand(ctx.op("transpose", x.value, perm=perm), labels)


def _reshape(ctx: NodeContext, v: Value, shape) -> Value:
    shape = tuple(shape)
    return v if v.shape == shape else ctx.op("reshape", v, shape=shape)


def _sum_out(ctx: NodeContext, x: _Operand, keep: set[str]) -> _Operand:
    axes = tuple(i for i, c in enumerate(x.labels) if c not in keep)
    if not axes:
        return x
    return _Operand(ctx.op("reduce_sum", x.value, axes=axes, keepdims=0), [c for c in x.labels if c in keep])


def _pair(ctx: NodeContext, a: _Operand, b: _Operand, keep: set[str], equation: str) -> _Operand:
    """a and b multiplied over their shared labels, summing the shared ones not in ``keep``."""
    shared = [c for c in a.labels if c in b.labels]
    batch = [c for c in shared if c in keep]
    contract = [c for c in shared if c not in keep]
    left = [c for c in a.labels if c not in shared]
    right = [c for c in b.labels if c not in shared]
    sizes = {}
    for c in batch + contract:
        da, db = a.size(c), b.size(c)
        if da != db and 1 not in (da, db) or (da != db and c in contract):
            raise ShapeError(f"equation '{equation}': label sizes {da} and {db} do not agree")
        sizes[c] = max(da, db)
    a, b = _transpose(ctx, a, batch + left + contract), _transpose(ctx, b, batch + contract + right)
    for x in (a, b):
        want = tuple(sizes[c] for c in batch) + x.value.shape[len(batch):]
        if x.value.shape != want:
            x.value = ctx.op("expand", x.value, shape=want)
    nb = math.prod(sizes[c] for c in batch)
    nl, nc = math.prod(a.size(c) for c in left), math.prod(sizes[c] for c in contract)
    nr = math.prod(b.size(c) for c in right)
    y = ctx.op("matmul", _reshape(ctx, a.value, (nb, nl, nc)), _reshape(ctx, b.value, (nb, nc, nr)))
    shape = [sizes[c] for c in batch] + [a.size(c) for c in left] + [b.size(c) for c in right]
    return _Operand(_reshape(ctx, y, shape), batch + left + right)


@import_rule("Einsum")
def _einsum(ctx: NodeContext):
    equation = ctx.attr("equation")
    xs = ctx.inputs()
    ins, out = parse_equation(equation, [x.type.rank for x in xs])
    ops = [_Operand(x, labels) for x, labels in zip(xs, ins)]
    for i, x in enumerate(ops):
        others = {c for j, y in enumerate(ops) if j != i for c in y.labels}
        ops[i] = _sum_out(ctx, x, set(out) | others)
    acc = ops[0]
    for i, x in enumerate(ops[1:], start=1):
        later = {c for y in ops[i + 1:] for c in y.labels}
        acc = _pair(ctx, acc, x, set(out) | later, equation)
    acc = _sum_out(ctx, acc, set(out))
    result = _transpose(ctx, acc, out).value
    return result if result is not xs[0] else ctx.op("identity", result)
