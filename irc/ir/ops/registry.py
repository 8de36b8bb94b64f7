"""The one op registry: everything irc knows about an op is reachable from its :class:`OpDef`.

Every op is defined once, by a class decorated with :func:`defop`: its inputs, its attribute
schema (kinds, defaults, allowed values), its typed :class:`Trait` set, and side by side the
functions that give it meaning:

- ``resolve(*types, **attrs) -> dict`` (optional): fills attributes whose defaults depend on the
  input types (strides of a conv, negative axes made positive), so every node carries explicit,
  canonical attributes and no backend has to re-derive them;
- ``infer(*types, **attrs) -> TensorType | tuple``: output types, raising ShapeError when the
  inputs do not fit;
- ``reference(*arrays, **attrs) -> ndarray | tuple``: numpy semantics, the oracle of every backend;
- ``cost(node) -> Cost``: multiply-accumulates and FLOPs of one node (formulas in
  ``irc/ir/ops/costs.py``; ``irc/ir/cost.py`` adds them up for ``irc info``).

Where each fact about op ``X`` lives, at most two hops from ``get_op("X")``:

- semantics, shape rule, cost: the op's class in ``irc/ir/ops/<family>.py`` (``opdef.reference``,
  ``opdef.infer``, ``opdef.cost``);
- gradient: ``opdef.grad``, the vector-Jacobian rule written in ``irc/passes/grads/<family>.py``
  and stored here when that package loads. An op without a rule says why: the ZERO_GRAD trait
  (its derivative is zero, autodiff stops there) or ``opdef.no_grad`` (autodiff refuses it, with
  this reason);
- ONNX: ``opdef.onnx_names``, the ONNX op types that import to it, filled when
  ``irc.frontend.onnx`` loads its rule tables (``irc/frontend/onnx/rules_<family>.py``);
- lowering: each target's ``KERNELS`` table, keyed by the op name (``targets/<t>/kernels/registry.py``,
  one emitter per op family in ``targets/<t>/kernels/<family>.py``); ops only the CPU target makes
  are defined in ``targets/cpu/lowering/``.
- fused activations: ``act`` / ``act_alpha`` / ``act_beta`` attributes (``irc/ir/ops/activation.py``).
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from irc.errors import ModelError, ShapeError, UnsupportedOpError
from irc.ir.graph import Graph
from irc.ir.types import DType, TensorType

REQUIRED = object()

_KINDS = ("int", "float", "str", "ints", "floats", "dtype", "graph")


class Trait(enum.StrEnum):
    """What passes and targets ask of an op, as a typed set on its OpDef."""

    ELEMENTWISE = "elementwise"  # one output element from the same element of each (broadcast) input
    UNARY = "unary"
    BINARY = "binary"
    ACTIVATION = "activation"  # an activation function (the fuse pass may make it an epilogue)
    COMPARE = "compare"  # a comparison giving bool
    LOGICAL = "logical"  # and, or, xor, not on bools
    LINALG = "linalg"  # matrix products
    CONV = "conv"
    POOL = "pool"
    NORM = "norm"  # normalizations and softmaxes
    REDUCE = "reduce"
    RESIZE = "resize"
    VIEW = "view"  # the same elements in another shape
    FUSED = "fused"  # made by the fuse passes (they run after autodiff)
    LOWERED = "lowered"  # made by a lowering (after autodiff)
    QUANT = "quant"  # integer quantized arithmetic
    GRAD = "grad"  # backward-only: made by autodiff
    # The batch axis stays axis 0 through the op and is sized by the data alone (so an exported
    # model may leave it symbolic).
    BATCH_FREE = "batch_free"
    # Piecewise constant or integer valued: the derivative is zero wherever it exists, so
    # autodiff stops here instead of asking for a rule.
    ZERO_GRAD = "zero_grad"


#: Why autodiff refuses an op of each family (the passes that make them run after it).
_FAMILY_NO_GRAD = {
    Trait.FUSED: "fused ops exist only after the fuse pass, which runs after autodiff: differentiate the unfused graph",
    Trait.LOWERED: "lowered ops exist only after lowering, which runs after autodiff: "
                   "differentiate the graph before lowering",
    Trait.QUANT: "integer quantized ops have no gradient: train in float, then quantize",
    Trait.GRAD: "backward-only ops are not differentiated again (no second derivatives)",
}


@dataclass(frozen=True, slots=True)
class Attr:
    """Schema of one attribute: kind, default (REQUIRED if none), allowed values. A ``graph``
    attribute holds a nested Graph (the body of a fused op), printed nested in the text form."""

    kind: str
    default: Any = REQUIRED
    choices: tuple | None = None

    def __post_init__(self):
        assert self.kind in _KINDS, self.kind

    def check(self, name: str, value: Any) -> Any:
        """The value in canonical form (python scalars, tuples, DType), or ModelError."""
        try:
            value = _coerce(self.kind, value)
        except (TypeError, ValueError):
            raise ModelError(f"attribute '{name}' must be of kind {self.kind}, got {value!r}") from None
        if self.choices is not None and value not in self.choices:
            allowed = ", ".join(repr(c) for c in self.choices)
            raise ModelError(f"attribute '{name}' is {value!r}; expected one of {allowed}")
        return value


def _coerce(kind: str, value: Any) -> Any:
    if value is None:
        return None
    if kind == "int":
        if isinstance(value, (float, np.floating)) and not float(value).is_integer():
            raise ValueError
        return int(value)
    if kind == "float":
        return float(value)
    if kind == "str":
        if isinstance(value, bytes):
            value = value.decode()
        if not isinstance(value, str):
            raise TypeError
        return value
    if kind == "ints":
        return tuple(_coerce("int", v) for v in value)
    if kind == "floats":
        return tuple(float(v) for v in value)
    if kind == "dtype":
        return value if isinstance(value, DType) else DType.parse(str(value))
    if kind == "graph":
        if not isinstance(value, Graph):
            raise TypeError
        return value
    raise AssertionError(kind)


@dataclass(slots=True, eq=False)
class OpDef:
    """Everything irc knows about one op (see the module docstring for where each part is written)."""

    name: str
    inputs: tuple[str, ...]
    attrs: dict[str, Attr]
    infer: Callable[..., Any]
    reference: Callable[..., Any]
    resolve: Callable[..., dict] | None = None
    doc: str = ""
    # Ops that must survive constant folding (quantize/dequantize keep the int8 weights visible).
    foldable: bool = True
    traits: frozenset[Trait] = frozenset()
    # cost(node) -> Cost: the node's multiply-accumulates and FLOPs (irc/ir/ops/costs.py).
    cost: Callable[..., Any] | None = None
    # The gradient rule, rule(node, xs, ys, dys) -> one cotangent per input (irc/passes/grads);
    # grad_inputs lists the inputs it differentiates (None: all).
    grad: Callable[..., Any] | None = None
    grad_inputs: tuple[int, ...] | None = field(default=None)
    # Why autodiff cannot go through this op, for an op that has no rule and is not ZERO_GRAD.
    no_grad: str | None = None
    # ONNX op types that import to this op (filled by irc.frontend.onnx's rule tables).
    onnx_names: tuple[str, ...] = ()

    @property
    def min_inputs(self) -> int:
        return sum(1 for i in self.inputs if not i.endswith(("?", "*")))

    @property
    def variadic(self) -> bool:
        return bool(self.inputs) and self.inputs[-1].endswith("*")

    def check_arity(self, n: int) -> None:
        hi = None if self.variadic else len(self.inputs)
        lo = self.min_inputs if not self.variadic else max(self.min_inputs, 1)
        if n < lo or (hi is not None and n > hi):
            names = ", ".join(self.inputs)
            raise ModelError(f"takes inputs ({names}); got {n}")

    def check_attrs(self, attrs: dict[str, Any]) -> dict[str, Any]:
        """Attributes validated against the schema, with defaults filled in."""
        unknown = sorted(set(attrs) - set(self.attrs))
        if unknown:
            known = ", ".join(sorted(self.attrs)) or "none"
            raise ModelError(f"unknown attribute(s) {', '.join(unknown)} (known: {known})")
        out = {}
        for name, schema in self.attrs.items():
            if name in attrs:
                out[name] = schema.check(name, attrs[name])
            elif schema.default is REQUIRED:
                raise ModelError(f"attribute '{name}' is required")
            else:
                out[name] = schema.default
        return out

    def type_check(self, types: Sequence[TensorType], attrs: dict[str, Any]):
        """(resolved attributes, output types) for inputs of ``types``; raises IRCError."""
        self.check_arity(len(types))
        attrs = self.check_attrs(attrs)
        if self.resolve is not None:
            attrs = self.check_attrs(self.resolve(*types, **attrs))
        out = self.infer(*types, **attrs)
        outs = (out,) if isinstance(out, TensorType) else tuple(out)
        return attrs, outs

    def evaluate(self, arrays: Sequence[np.ndarray], attrs: dict[str, Any]) -> tuple[np.ndarray, ...]:
        """Run the numpy reference; always returns a tuple."""
        out = self.reference(*arrays, **attrs)
        return (out,) if isinstance(out, np.ndarray) or np.isscalar(out) else tuple(out)


REGISTRY: dict[str, OpDef] = {}


def defop(
    name: str,
    inputs: Iterable[str],
    attrs: dict[str, Attr] | None = None,
    *,
    foldable: bool = True,
    traits: Iterable[Trait | str] = (),
    no_grad: str | None = None,
):
    """Class decorator registering an op. The class body holds ``infer``, ``reference``,
    ``cost`` and optionally ``resolve`` as plain functions; its docstring becomes the op's
    documentation. ``no_grad`` says why autodiff refuses the op (fused, lowered, quantized and
    backward-only ops get their family's reason)."""

    def wrap(cls):
        body = cls.__dict__
        if name in REGISTRY:
            raise AssertionError(f"op {name} defined twice")
        typed = frozenset(Trait(t) for t in traits)
        reason = no_grad or next((why for t, why in _FAMILY_NO_GRAD.items() if t in typed), None)
        REGISTRY[name] = OpDef(
            name=name,
            inputs=tuple(inputs),
            attrs=dict(attrs or {}),
            infer=body["infer"],
            reference=body["reference"],
            resolve=body.get("resolve"),
            doc=(cls.__doc__ or "").strip(),
            foldable=foldable,
            traits=typed,
            cost=body.get("cost"),
            no_grad=reason,
        )
        cls.opdef = REGISTRY[name]
        return cls

    return wrap


def get_op(name: str) -> OpDef:
    try:
        return REGISTRY[name]
    except KeyError:
        raise UnsupportedOpError(f"unknown op '{name}'", op=name) from None


# ----------------------------------------------------------------------------------------
# Helpers shared by op definitions.


def broadcast_shapes(*shapes: Sequence[int]) -> tuple[int, ...]:
    """Multidirectional (numpy) broadcasting, as ONNX defines it."""
    rank = max((len(s) for s in shapes), default=0)
    out = []
    for i in range(rank):
        dims = {s[len(s) - rank + i] for s in shapes if len(s) - rank + i >= 0}
        dims.discard(1)
        if len(dims) > 1:
            listed = " and ".join(str(list(s)) for s in shapes)
            raise ShapeError(f"shapes {listed} do not broadcast")
        out.append(dims.pop() if dims else 1)
    return tuple(out)


def same_dtype(*types: TensorType) -> DType:
    dtypes = {t.dtype for t in types}
    if len(dtypes) != 1:
        raise ShapeError(f"inputs must share one element type, got {', '.join(sorted(d.value for d in dtypes))}")
    return dtypes.pop()


def expect_float(t: TensorType, what: str = "input") -> None:
    if not t.dtype.is_float:
        raise ShapeError(f"{what} must be a float tensor, got {t}")


def expect_rank(t: TensorType, rank: int | Iterable[int], what: str = "input") -> None:
    ranks = (rank,) if isinstance(rank, int) else tuple(rank)
    if t.rank not in ranks:
        want = " or ".join(str(r) for r in ranks)
        raise ShapeError(f"{what} must have rank {want}, got {t}")


def norm_axis(axis: int, rank: int, what: str = "axis") -> int:
    """A possibly negative axis made non-negative, or ShapeError."""
    if not -rank <= axis < max(rank, 1):
        raise ShapeError(f"{what} {axis} is out of range for rank {rank}")
    return axis % rank if rank else 0


def norm_axes(axes: Iterable[int], rank: int, what: str = "axes") -> tuple[int, ...]:
    out = tuple(norm_axis(a, rank, what) for a in axes)
    if len(set(out)) != len(out):
        raise ShapeError(f"{what} {list(axes)} repeat an axis")
    return out
