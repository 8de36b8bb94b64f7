"""The one op registry.

Every op is defined once, by a class decorated with :func:`defop`: its inputs, its attribute
schema (kinds, defaults, allowed values), and side by side the functions that give it meaning:

- ``resolve(*types, **attrs) -> dict`` (optional): fills attributes whose defaults depend on the
  input types (strides of a conv, negative axes made positive), so every node carries explicit,
  canonical attributes and no backend has to re-derive them;
- ``infer(*types, **attrs) -> TensorType | tuple``: output types, raising ShapeError when the
  inputs do not fit;
- ``reference(*arrays, **attrs) -> ndarray | tuple``: numpy semantics, the oracle of every backend.

The gradient rule of a differentiable op is kept in the ``grad`` slot, filled by the autodiff pass.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from irc.errors import ModelError, ShapeError, UnsupportedOpError
from irc.ir.types import DType, TensorType

REQUIRED = object()

_KINDS = ("int", "float", "str", "ints", "floats", "dtype")


@dataclass(frozen=True, slots=True)
class Attr:
    """Schema of one attribute: kind, default (REQUIRED if none), allowed values."""

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
    raise AssertionError(kind)


@dataclass(slots=True, eq=False)
class OpDef:
    """Everything irc knows about one op."""

    name: str
    inputs: tuple[str, ...]
    attrs: dict[str, Attr]
    infer: Callable[..., Any]
    reference: Callable[..., Any]
    resolve: Callable[..., dict] | None = None
    doc: str = ""
    # Ops that must survive constant folding (quantize/dequantize keep the int8 weights visible).
    foldable: bool = True
    tags: frozenset[str] = frozenset()
    grad: Callable[..., Any] | None = None
    grad_inputs: tuple[int, ...] | None = field(default=None)

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
    tags: Iterable[str] = (),
):
    """Class decorator registering an op. The class body holds ``infer``, ``reference`` and
    optionally ``resolve`` as plain functions; its docstring becomes the op's documentation."""

    def wrap(cls):
        body = cls.__dict__
        if name in REGISTRY:
            raise AssertionError(f"op {name} defined twice")
        REGISTRY[name] = OpDef(
            name=name,
            inputs=tuple(inputs),
            attrs=dict(attrs or {}),
            infer=body["infer"],
            reference=body["reference"],
            resolve=body.get("resolve"),
            doc=(cls.__doc__ or "").strip(),
            foldable=foldable,
            tags=frozenset(tags),
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
