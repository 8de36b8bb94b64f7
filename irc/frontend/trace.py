"""Tracing: the numpy-like tensors that record what a Python function computes into a Graph.

    def mlp(x):
        h = np.maximum(x @ w0 + b0, 0)      # w0, b0: numpy arrays captured by the function
        return softmax(h @ w1)              # softmax: from irc.frontend.trace

    g = irc.trace(mlp, np.zeros((8, 784), np.float32))

While a function is traced its arguments are :class:`Tensor` objects. A Tensor holds one graph
value; every operation on it (operators, methods, numpy functions and ufuncs through numpy's
``__array_ufunc__`` / ``__array_function__`` protocols, and the functions of this module) appends
a node to the graph being built, type-checked at once, so an error names the line that made it.
Python scalars and numpy arrays met on the way become constants (parameters) of the tensor's
element type, as numpy's weak scalar typing would give.

The same tensors are the language of gradient rules (passes/grads) and of irc.nn layers:
a :class:`Tracer` wraps a GraphBuilder, and ``tracer.wrap(value)`` turns any value of it into a
Tensor.
"""

from __future__ import annotations

import numbers
import types
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from irc.errors import InputError, ModelError, ShapeError
from irc.ir.builder import GraphBuilder
from irc.ir.graph import Graph, Value
from irc.ir.types import DType, TensorType


class Tracer:
    """A GraphBuilder with a constant cache, making and wrapping Tensors."""

    def __init__(self, builder: GraphBuilder | str = "traced", names: dict[int, str] | None = None):
        self.builder = builder if isinstance(builder, GraphBuilder) else GraphBuilder(builder)
        self._consts: dict[tuple, Value] = {}
        #: id(array) -> the Python name it was found under (see variable_names): the name its
        #: parameter gets, so a traced model's weights read "w1", "b1", not "c", "c_2".
        self.names: dict[int, str] = dict(names or {})

    # -- values -------------------------------------------------------------------------
    def wrap(self, v: Value) -> Tensor:
        return Tensor(self, v)

    def input(self, name: str, shape: Sequence[int], dtype=np.float32) -> Tensor:
        return self.wrap(self.builder.input(name, tuple(shape), DType.from_numpy(dtype)))

    def param(self, name: str, data: np.ndarray) -> Tensor:
        return self.wrap(self.builder.param(name, np.asarray(data)))

    def const(self, data, dtype=None, name: str = "c") -> Tensor:
        """A constant; equal small constants are made once."""
        arr = np.asarray(data, dtype=np.dtype(dtype) if dtype is not None else None)
        key = None
        if arr.size <= 16:
            key = (arr.dtype.str, arr.shape, arr.tobytes())
            hit = self._consts.get(key)
            if hit is not None:
                return self.wrap(hit)
        v = self.builder.param(name, arr)
        if key is not None:
            self._consts[key] = v
        return self.wrap(v)

    def op(self, op: str, *inputs, **attrs) -> Tensor:
        """One-output op on tensors (or constants, given the first tensor's element type)."""
        return self.wrap(self.builder.op(op, *self._values(inputs), **attrs))

    def ops(self, op: str, *inputs, **attrs) -> tuple[Tensor, ...]:
        """Op with several outputs."""
        return tuple(self.wrap(v) for v in self.builder.add_node(op, self._values(inputs), attrs))

    def _values(self, inputs) -> list[Value]:
        like = next((t for t in inputs if isinstance(t, Tensor)), None)
        out = []
        for t in inputs:
            if isinstance(t, Tensor):
                if t.tracer is not self:
                    raise ModelError("a tensor from another trace was used; trace the whole function at once")
                out.append(t.value)
            elif isinstance(t, Value):
                out.append(t)
            else:
                out.append(self.lift(t, like).value)
        return out

    def lift(self, x, like: Tensor | None = None) -> Tensor:
        """``x`` as a tensor: a Tensor as is, a Python scalar or numpy array as a constant of
        ``like``'s element type (floats stay floats: a float constant never turns an int tensor)."""
        if isinstance(x, Tensor):
            return x
        if isinstance(x, Value):
            return self.wrap(x)
        arr = np.asarray(x)
        if arr.dtype == object:
            raise ModelError(f"cannot use a {type(x).__name__} in a traced computation")
        if like is not None:
            want = like.dtype
            if arr.dtype != want and (np.issubdtype(want, np.floating) or not np.issubdtype(arr.dtype, np.floating)):
                arr = arr.astype(want)
        return self.const(arr, name=self.names.get(id(x), "c"))

    def build(self, *outputs: Tensor) -> Graph:
        return self.builder.build(*(self.lift(o).value for o in outputs))


def _binary(op: str, reverse: bool = False):
    def method(self, other):
        other = self.tracer.lift(other, self)
        a, b = (other, self) if reverse else (self, other)
        return self.tracer.op(op, a, b)

    return method


class Tensor:
    """A traced value: numpy-like, but every operation appends a node to its tracer's graph."""

    __slots__ = ("tracer", "value")
    __array_priority__ = 1000

    def __init__(self, tracer: Tracer, value: Value):
        self.tracer = tracer
        self.value = value

    # -- what it is ---------------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, ...]:
        return self.value.shape

    @property
    def dtype(self) -> np.dtype:
        return self.value.dtype.numpy

    @property
    def type(self) -> TensorType:
        return self.value.type

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        return self.value.type.size

    def __len__(self) -> int:
        if not self.shape:
            raise TypeError("len() of a 0-d tensor")
        return self.shape[0]

    def __repr__(self) -> str:
        return f"Tensor({self.value!r})"

    def __bool__(self):
        raise ModelError("a traced tensor has no truth value: its data is not known while tracing "
                         "(use irc.trace.where instead of if)")

    def __array__(self, *args, **kwargs):
        raise ModelError("a traced tensor cannot become a numpy array: its data is not known while tracing")

    __hash__ = object.__hash__

    # -- arithmetic ---------------------------------------------------------------------
    __add__ = _binary("add")
    __radd__ = _binary("add", True)
    __sub__ = _binary("sub")
    __rsub__ = _binary("sub", True)
    __mul__ = _binary("mul")
    __rmul__ = _binary("mul", True)
    __truediv__ = _binary("div")
    __rtruediv__ = _binary("div", True)
    __pow__ = _binary("pow")
    __rpow__ = _binary("pow", True)
    __matmul__ = _binary("matmul")
    __rmatmul__ = _binary("matmul", True)
    __lt__ = _binary("less")
    __le__ = _binary("less_equal")
    __gt__ = _binary("greater")
    __ge__ = _binary("greater_equal")
    __eq__ = _binary("equal")  # type: ignore[assignment]
    __and__ = _binary("and")
    __or__ = _binary("or")
    __xor__ = _binary("xor")

    def __ne__(self, other):  # type: ignore[override]
        return ~(self == other)

    def __neg__(self):
        return self.tracer.op("neg", self)

    def __pos__(self):
        return self

    def __abs__(self):
        return self.tracer.op("abs", self)

    def __invert__(self):
        return self.tracer.op("not", self)

    # -- shape --------------------------------------------------------------------------
    def reshape(self, *shape) -> Tensor:
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        return reshape(self, shape)

    def transpose(self, *axes) -> Tensor:
        if len(axes) == 1 and isinstance(axes[0], (tuple, list)):
            axes = tuple(axes[0])
        return transpose(self, axes or None)

    @property
    def T(self) -> Tensor:
        return transpose(self)

    def flatten(self) -> Tensor:
        return reshape(self, (self.size,))

    def astype(self, dtype) -> Tensor:
        dt = DType.from_numpy(dtype)
        return self if dt is self.value.dtype else self.tracer.op("cast", self, to=dt)

    def __getitem__(self, index) -> Tensor:
        return _getitem(self, index)

    # -- reductions ---------------------------------------------------------------------
    def sum(self, axis=None, keepdims=False):
        return _reduce("reduce_sum", self, axis, keepdims)

    def mean(self, axis=None, keepdims=False):
        return _reduce("reduce_mean", self, axis, keepdims)

    def max(self, axis=None, keepdims=False):
        return _reduce("reduce_max", self, axis, keepdims)

    def min(self, axis=None, keepdims=False):
        return _reduce("reduce_min", self, axis, keepdims)

    def prod(self, axis=None, keepdims=False):
        return _reduce("reduce_prod", self, axis, keepdims)

    def argmax(self, axis=None, keepdims=False):
        return _arg("argmax", self, axis, keepdims)

    def argmin(self, axis=None, keepdims=False):
        return _arg("argmin", self, axis, keepdims)

    # -- numpy protocols ----------------------------------------------------------------
    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        if method != "__call__" or kwargs.get("out") is not None:
            return NotImplemented
        op = _UFUNCS.get(ufunc.__name__)
        if op is None:
            raise ModelError(f"numpy.{ufunc.__name__} is not supported on traced tensors")
        tr = next(t.tracer for t in inputs if isinstance(t, Tensor))
        like = next(t for t in inputs if isinstance(t, Tensor))
        args = [tr.lift(t, like) for t in inputs]
        if isinstance(op, str):
            return tr.op(op, *args)
        return op(*args)

    def __array_function__(self, func, types, args, kwargs):
        fn = _FUNCTIONS.get(func.__name__)
        if fn is None:
            raise ModelError(f"numpy.{func.__name__} is not supported on traced tensors")
        return fn(*args, **kwargs)


# ----------------------------------------------------------------------------------------
# Functions (also reached through numpy's protocols).


def _tracer_of(*xs) -> Tracer:
    for x in xs:
        if isinstance(x, Tensor):
            return x.tracer
        if isinstance(x, (list, tuple)):
            for y in x:
                if isinstance(y, Tensor):
                    return y.tracer
    raise ModelError("no traced tensor among the arguments")


def _axes(axis, ndim: int) -> tuple[int, ...]:
    if axis is None:
        return tuple(range(ndim))
    if isinstance(axis, numbers.Integral):
        axis = (int(axis),)
    out = []
    for a in axis:
        if not -ndim <= a < max(ndim, 1):
            raise ShapeError(f"axis {a} is out of range for rank {ndim}")
        out.append(a % ndim if ndim else 0)
    return tuple(sorted(set(out)))


def _reduce(op: str, x: Tensor, axis, keepdims: bool) -> Tensor:
    return x.tracer.op(op, x, axes=_axes(axis, x.ndim), keepdims=int(bool(keepdims)))


def _arg(op: str, x: Tensor, axis, keepdims: bool) -> Tensor:
    if axis is None:
        x, axis = reshape(x, (x.size,)), 0
    return x.tracer.op(op, x, axis=axis, keepdims=int(bool(keepdims)))


def reshape(x: Tensor, shape) -> Tensor:
    if isinstance(shape, numbers.Integral):
        shape = (int(shape),)
    shape = tuple(int(d) for d in shape)
    if shape == x.shape:
        return x
    return x.tracer.op("reshape", x, shape=shape)


def transpose(x: Tensor, axes=None) -> Tensor:
    perm = tuple(axes) if axes is not None else tuple(range(x.ndim))[::-1]
    if perm == tuple(range(x.ndim)):
        return x
    return x.tracer.op("transpose", x, perm=perm)


def expand_dims(x: Tensor, axis) -> Tensor:
    axes = (axis,) if isinstance(axis, numbers.Integral) else tuple(axis)
    rank = x.ndim + len(axes)
    axes = sorted(a % rank for a in axes)
    shape = list(x.shape)
    for a in axes:
        shape.insert(a, 1)
    return reshape(x, shape)


def squeeze(x: Tensor, axis=None) -> Tensor:
    axes = _axes(axis, x.ndim) if axis is not None else tuple(i for i, d in enumerate(x.shape) if d == 1)
    if any(x.shape[a] != 1 for a in axes):
        raise ShapeError(f"cannot squeeze axes {list(axes)} of {x.type}: not all of size 1")
    return reshape(x, [d for i, d in enumerate(x.shape) if i not in axes])


def broadcast_to(x: Tensor, shape) -> Tensor:
    shape = tuple(shape)
    return x if x.shape == shape else x.tracer.op("expand", x, shape=shape)


def concatenate(xs, axis=0) -> Tensor:
    tr = _tracer_of(xs)
    like = next(t for t in xs if isinstance(t, Tensor))
    xs = [tr.lift(t, like) for t in xs]
    return xs[0] if len(xs) == 1 else tr.op("concat", *xs, axis=axis)


def stack(xs, axis=0) -> Tensor:
    tr = _tracer_of(xs)
    like = next(t for t in xs if isinstance(t, Tensor))
    return concatenate([expand_dims(tr.lift(t, like), axis) for t in xs], axis=axis)


def where(cond, a, b) -> Tensor:
    tr = _tracer_of(cond, a, b)
    like = a if isinstance(a, Tensor) else b if isinstance(b, Tensor) else None
    cond = tr.lift(cond)
    if cond.dtype != np.bool_:
        cond = cond.astype(np.bool_)
    return tr.op("where", cond, tr.lift(a, like), tr.lift(b, like))


def clip(x: Tensor, a_min=None, a_max=None) -> Tensor:
    lo = -np.inf if a_min is None else float(a_min)
    hi = np.inf if a_max is None else float(a_max)
    return x.tracer.op("clip", x, min=lo, max=hi)


def matmul(a, b) -> Tensor:
    tr = _tracer_of(a, b)
    like = a if isinstance(a, Tensor) else b
    return tr.op("matmul", tr.lift(a, like), tr.lift(b, like))


def pad(x: Tensor, pad_width, mode="constant", constant_values=0) -> Tensor:
    widths = np.broadcast_to(np.asarray(pad_width, np.int64), (x.ndim, 2))
    pads = tuple(int(v) for v in widths[:, 0]) + tuple(int(v) for v in widths[:, 1])
    return x.tracer.op("pad", x, pads=pads, mode=mode, value=float(constant_values))


def softmax(x: Tensor, axis: int = -1) -> Tensor:
    return x.tracer.op("softmax", x, axis=axis)


def log_softmax(x: Tensor, axis: int = -1) -> Tensor:
    return x.tracer.op("log_softmax", x, axis=axis)


def relu(x: Tensor) -> Tensor:
    return x.tracer.op("relu", x)


def sigmoid(x: Tensor) -> Tensor:
    return x.tracer.op("sigmoid", x)


def apply(op: str, *inputs, **attrs) -> Tensor:
    """Any registered op (one output) on tensors: ``apply("conv", x, w, b, strides=(2, 2))``."""
    return _tracer_of(*inputs).op(op, *inputs, **attrs)


def _slice_axis(x: Tensor, axis: int, start: int, stop: int, step: int = 1) -> Tensor:
    return x.tracer.op("slice", x, starts=(start,), ends=(stop,), axes=(axis,), steps=(step,))


def _getitem(x: Tensor, index) -> Tensor:
    """Basic indexing: ints, slices, None and one Ellipsis; a 1-D int array or tensor gathers."""
    if not isinstance(index, tuple):
        index = (index,)
    if any(isinstance(i, (Tensor, np.ndarray, list)) for i in index):
        if len(index) != 1:
            raise ModelError("traced tensors support one integer-array index (x[idx]) at a time")
        idx = x.tracer.lift(np.asarray(index[0], np.int64) if not isinstance(index[0], Tensor) else index[0])
        return x.tracer.op("gather", x, idx, axis=0)
    n_real = sum(1 for i in index if i is not None and i is not Ellipsis)
    if n_real > x.ndim:
        raise ShapeError(f"too many indices for {x.type}")
    expanded: list = []
    for i in index:
        if i is Ellipsis:
            expanded.extend([slice(None)] * (x.ndim - n_real))
        else:
            expanded.append(i)
    expanded.extend([slice(None)] * (x.ndim - sum(1 for i in expanded if i is not None)))
    starts, ends, steps, axes = [], [], [], []
    out_shape: list[int] = []
    axis = 0
    for i in expanded:
        if i is None:
            out_shape.append(1)
            continue
        dim = x.shape[axis]
        if isinstance(i, slice):
            s, e, st = i.indices(dim)
            if (s, e, st) != (0, dim, 1):
                starts.append(s)
                ends.append(e if e >= 0 else -dim - 1)
                steps.append(st)
                axes.append(axis)
            out_shape.append(len(range(s, e, st)))
        elif isinstance(i, numbers.Integral):
            k = int(i)
            if not -dim <= k < dim:
                raise ShapeError(f"index {k} is out of bounds for axis {axis} of size {dim}")
            k %= dim
            starts.append(k)
            ends.append(k + 1)
            steps.append(1)
            axes.append(axis)
        else:
            raise ModelError(f"unsupported index {i!r} on a traced tensor")
        axis += 1
    y = x
    if axes:
        y = x.tracer.op("slice", x, starts=starts, ends=ends, axes=axes, steps=steps)
    return reshape(y, out_shape)


_UFUNCS: dict[str, Any] = {
    "add": "add", "subtract": "sub", "multiply": "mul", "true_divide": "div", "divide": "div",
    "power": "pow", "maximum": "max", "minimum": "min", "matmul": "matmul",
    "negative": "neg", "absolute": "abs", "sqrt": "sqrt", "exp": "exp", "log": "log", "tanh": "tanh",
    "sin": "sin", "cos": "cos", "floor": "floor", "ceil": "ceil", "sign": "sign", "reciprocal": "reciprocal",
    "rint": "round", "equal": "equal", "less": "less", "less_equal": "less_equal", "greater": "greater",
    "greater_equal": "greater_equal", "logical_and": "and", "logical_or": "or", "logical_xor": "xor",
    "logical_not": "not",
    "not_equal": lambda a, b: ~(a == b),
    "square": lambda a: a * a,
    "log1p": lambda a: np.log(a + 1),
    "expm1": lambda a: np.exp(a) - 1,
}

_FUNCTIONS: dict[str, Callable] = {
    "reshape": lambda a, newshape=None, shape=None, **kw: reshape(a, shape if shape is not None else newshape),
    "transpose": lambda a, axes=None: transpose(a, axes),
    "expand_dims": expand_dims,
    "squeeze": squeeze,
    "broadcast_to": broadcast_to,
    "concatenate": concatenate,
    "stack": stack,
    "where": where,
    "clip": clip,
    "matmul": matmul,
    "dot": matmul,
    "pad": pad,
    "sum": lambda a, axis=None, keepdims=False, **kw: a.sum(axis, keepdims),
    "mean": lambda a, axis=None, keepdims=False, **kw: a.mean(axis, keepdims),
    "max": lambda a, axis=None, keepdims=False, **kw: a.max(axis, keepdims),
    "amax": lambda a, axis=None, keepdims=False, **kw: a.max(axis, keepdims),
    "min": lambda a, axis=None, keepdims=False, **kw: a.min(axis, keepdims),
    "amin": lambda a, axis=None, keepdims=False, **kw: a.min(axis, keepdims),
    "prod": lambda a, axis=None, keepdims=False, **kw: a.prod(axis, keepdims),
    "argmax": lambda a, axis=None, keepdims=False, **kw: a.argmax(axis, keepdims),
    "argmin": lambda a, axis=None, keepdims=False, **kw: a.argmin(axis, keepdims),
    "shape": lambda a: a.shape,
    "ndim": lambda a: a.ndim,
    "size": lambda a: a.size,
}


def variable_names(fn: Callable) -> dict[int, str]:
    """id(array) -> name for the numpy arrays ``fn`` can reach by name: its closure variables,
    the globals its code names, its defaults, and one level into dicts, lists/tuples and objects
    found there (``params["w1"]`` -> "w1", ``self.conv1_w`` -> "conv1_w", ``ws[0]`` -> "ws_0").
    The first name found wins; an array reached by no name keeps the default "c"."""
    found: dict[int, str] = {}

    def note(name: str, obj, depth: int = 0) -> None:
        if isinstance(obj, np.ndarray):
            found.setdefault(id(obj), name)
        elif depth == 0 and isinstance(obj, dict):
            for k, v in obj.items():
                if isinstance(k, str) and k.isidentifier():
                    note(k, v, 1)
        elif depth == 0 and isinstance(obj, (list, tuple)):
            for i, v in enumerate(obj):
                note(f"{name}_{i}", v, 1)
        elif (depth == 0 and hasattr(obj, "__dict__") and not callable(obj)
              and not isinstance(obj, (type, types.ModuleType))):
            for k, v in vars(obj).items():
                note(k, v, 1)

    target = getattr(fn, "__func__", fn)
    code = getattr(target, "__code__", None)
    if code is None:
        return found
    if getattr(fn, "__self__", None) is not None:
        note("self", fn.__self__)
    for name, cell in zip(code.co_freevars, target.__closure__ or ()):
        try:
            note(name, cell.cell_contents)
        except ValueError:  # an empty cell
            pass
    glb = getattr(target, "__globals__", {})
    for name in code.co_names:
        if name in glb:
            note(name, glb[name])
    for i, v in enumerate(target.__defaults__ or ()):
        note(code.co_varnames[code.co_argcount - len(target.__defaults__) + i], v)
    return found


def trace(fn: Callable, *examples, name: str | None = None, input_names: Sequence[str] | None = None) -> Graph:
    """The Graph of what ``fn`` computes on inputs shaped and typed like ``examples``.

    ``fn`` receives one Tensor per example (numpy arrays, or (shape, dtype) pairs) and returns a
    Tensor or a tuple/list of them: the graph's outputs. Numpy arrays it uses become parameters.
    """
    tr = Tracer(name or getattr(fn, "__name__", "traced").strip("<>") or "traced", variable_names(fn))
    names = list(input_names) if input_names is not None else [f"x{i}" if len(examples) > 1 else "x"
                                                               for i in range(len(examples))]
    if len(names) != len(examples):
        raise InputError(f"{len(names)} input names for {len(examples)} example inputs")
    args = []
    for nm, ex in zip(names, examples):
        if isinstance(ex, tuple) and len(ex) == 2 and not isinstance(ex[0], numbers.Number):
            shape, dtype = ex
        else:
            arr = np.asarray(ex)
            shape, dtype = arr.shape, arr.dtype
        args.append(tr.input(nm, shape, dtype))
    out = fn(*args)
    outs = list(out) if isinstance(out, (tuple, list)) else [out]
    if not outs:
        raise ModelError(f"traced function {tr.builder.name} returned no outputs")
    return tr.build(*outs)
