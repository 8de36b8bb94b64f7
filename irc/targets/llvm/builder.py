"""The base of every kernel builder: one LLVM function over pointers to its tensors (outputs
first, then inputs) with every shape a compile-time constant, and the vocabulary kernels are
written in on any target: index arithmetic in the kernel's index type, counted loops, flat
offsets, and typed loads and stores that convert between storage and compute types.

A target's builder subclasses ``KernelBase`` and adds what only it has (the CPU's thread pool,
the GPU's thread indices and shared memory). ``state`` is the target's module object; it offers
``declare(name, ret, args)`` and ``unique(base)``, which is all the scalar helpers need.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from llvmlite import ir

from irc.ir.types import DType, TensorType
from irc.targets.llvm import lltypes as T


def c_strides(shape: Sequence[int]) -> tuple[int, ...]:
    out, acc = [], 1
    for d in reversed(shape):
        out.append(acc)
        acc *= d
    return tuple(reversed(out))


def elements(shape: Sequence[int]) -> int:
    return math.prod(shape)


@dataclass(frozen=True, slots=True)
class Buf:
    """A tensor argument of a kernel: its position in the argument list and its type."""

    index: int
    type: TensorType

    @property
    def shape(self) -> tuple[int, ...]:
        return self.type.shape

    @property
    def dtype(self) -> DType:
        return self.type.dtype

    @property
    def strides(self) -> tuple[int, ...]:
        return c_strides(self.type.shape)

    @property
    def size(self) -> int:
        return self.type.size


class ModuleBase:
    """One LLVM module of kernels: unique names and declared functions."""

    #: what joins a base name and its counter
    separator = "."

    def __init__(self, module: ir.Module):
        self.module = module
        self._n = 0

    def unique(self, base: str) -> str:
        self._n += 1
        return f"{base}{self.separator}{self._n}"

    def declare_raw(self, name: str, ret: ir.Type, args: Sequence[ir.Type]) -> ir.Function:
        """The function ``name`` of the module, declared on first use."""
        fn = self.module.globals.get(name)
        if fn is None:
            fn = ir.Function(self.module, ir.FunctionType(ret, list(args)), name)
        return fn

    def declare(self, name: str, ret: ir.Type, args: Sequence[ir.Type]) -> ir.Function:
        """A function by name, as the scalar helpers ask for it (a target may define it)."""
        return self.declare_raw(name, ret, args)

    def vector_libm(self, name: str, t: ir.VectorType) -> ir.Function | None:
        """libm function ``name`` (erf, log1p...) on vector type ``t`` where the target defines
        one; None: the scalar helpers call libm lane by lane."""
        return None


class KernelBase:
    """Builds one kernel function in ``module``; ``bufs`` are its tensor arguments in order,
    ``extra_args`` more pointers follow them. Indices are of type ``index_type``."""

    def __init__(self, state: ModuleBase, module: ir.Module, name: str, out_types: Sequence[TensorType],
                 in_types: Sequence[TensorType], *, noalias: Sequence[bool] | None = None, extra_args: int = 0,
                 index_type: ir.IntType = T.I64):
        types = list(out_types) + list(in_types)
        self.state = state
        self.module = module
        self.fn = ir.Function(module, ir.FunctionType(T.VOID, [T.PTR] * (len(types) + extra_args)), name)
        self.fn.attributes.add("nounwind")
        for i, a in enumerate(self.fn.args):
            if noalias is None or (i < len(noalias) and noalias[i]):
                a.add_attribute("noalias")
        self.bufs = [Buf(i, t) for i, t in enumerate(types)]
        self.outs = self.bufs[: len(out_types)]
        self.ins = self.bufs[len(out_types):]
        self.ity: ir.IntType = index_type
        self.b = ir.IRBuilder(self.fn.append_basic_block("entry"))
        #: the pointer arguments as seen by the function being emitted right now
        self._args: list[ir.Value] = list(self.fn.args)

    @property
    def name(self) -> str:
        return self.fn.name

    # ---------------------------------------------------------------- constants and indices
    def i(self, v: int) -> ir.Constant:
        """An index constant (of the kernel's index type)."""
        return ir.Constant(self.ity, int(v))

    @staticmethod
    def i32(v: int) -> ir.Constant:
        return ir.Constant(T.I32, int(v))

    @staticmethod
    def i64(v: int) -> ir.Constant:
        return ir.Constant(T.I64, int(v))

    @staticmethod
    def f32(v: float) -> ir.Constant:
        return ir.Constant(T.F32, float(v))

    @staticmethod
    def const(dt: DType, v) -> ir.Constant:
        """``v`` as a compute-type constant of ``dt``."""
        t = T.compute_type(dt)
        if dt is DType.bool:
            return ir.Constant(t, int(bool(v)))
        if dt.is_float:
            return ir.Constant(t, float(v))
        return ir.Constant(t, int(v))

    def _idx(self, v) -> ir.Value:
        return self.i(v) if isinstance(v, int) else v

    def add(self, a, b):
        return self.b.add(a, self._idx(b), flags=["nsw"])

    def mul(self, a, b):
        return self.b.mul(a, self._idx(b), flags=["nsw"])

    def udiv(self, a, d: int):
        return a if d == 1 else self.b.udiv(a, self.i(d))

    def urem(self, a, d: int):
        return self.i(0) if d == 1 else self.b.urem(a, self.i(d))

    def lt(self, a, b):
        return self.b.icmp_signed("<", a, self._idx(b))

    def ge(self, a, b):
        return self.b.icmp_signed(">=", a, self._idx(b))

    def unravel(self, flat: ir.Value, shape: Sequence[int]) -> list[ir.Value]:
        """Coordinates of a row-major flat index in ``shape`` (constant divisions)."""
        idx: list[ir.Value] = []
        rest = flat
        for d in reversed(shape[1:]):
            idx.append(self.urem(rest, d))
            rest = self.udiv(rest, d)
        idx.append(rest)
        return idx[::-1]

    def offset(self, idx: Sequence[ir.Value], strides: Sequence[int]) -> ir.Value:
        """sum(idx[d] * strides[d]), skipping zero strides."""
        acc = None
        for v, s in zip(idx, strides):
            if s == 0:
                continue
            term = v if s == 1 else self.mul(v, s)
            acc = term if acc is None else self.add(acc, term)
        return acc if acc is not None else self.i(0)

    # ---------------------------------------------------------------- memory
    def ptr(self, buf: Buf | int) -> ir.Value:
        """The pointer of a buffer, valid in the function being emitted right now."""
        return self._args[buf.index if isinstance(buf, Buf) else buf]

    def addr(self, buf: Buf, offset: ir.Value, dt: DType | None = None) -> ir.Value:
        return self.b.gep(self.ptr(buf), [offset], inbounds=True, source_etype=T.storage_type(dt or buf.dtype))

    def load(self, buf: Buf, offset: ir.Value, dt: DType | None = None) -> ir.Value:
        """Element ``offset`` of ``buf``, converted to its compute type."""
        dt = dt or buf.dtype
        st = T.storage_type(dt)
        raw = self.b.load(self.addr(buf, offset, dt), typ=st, align=T.align(st))
        return self.from_storage(raw, dt)

    def store(self, buf: Buf, offset: ir.Value, value: ir.Value, dt: DType | None = None) -> None:
        dt = dt or buf.dtype
        st = T.storage_type(dt)
        self.b.store(self.to_storage(value, dt), self.addr(buf, offset, dt), align=T.align(st))

    def from_storage(self, raw: ir.Value, dt: DType) -> ir.Value:
        if dt is DType.bool:
            return self.b.icmp_unsigned("!=", raw, ir.Constant(T.I8, 0))
        if dt is DType.bf16:
            wide = self.b.shl(self.b.zext(raw, T.I32), ir.Constant(T.I32, 16))
            return self.b.bitcast(wide, T.F32)
        return raw

    def to_storage(self, v: ir.Value, dt: DType) -> ir.Value:
        if dt is DType.bool:
            return self.b.zext(v, T.I8)
        if dt is DType.bf16:
            # Round to nearest even on the 16 bits dropped; NaN stays a (quiet) NaN.
            bits = self.b.bitcast(v, T.I32)
            lsb = self.b.and_(self.b.lshr(bits, ir.Constant(T.I32, 16)), ir.Constant(T.I32, 1))
            rounded = self.b.add(bits, self.b.add(ir.Constant(T.I32, 0x7FFF), lsb))
            is_nan = self.b.fcmp_unordered("uno", v, v)
            quiet = self.b.or_(bits, ir.Constant(T.I32, 0x00400000))
            bits = self.b.select(is_nan, quiet, rounded)
            return self.b.trunc(self.b.lshr(bits, ir.Constant(T.I32, 16)), T.I16)
        return v

    # ---------------------------------------------------------------- loops
    @contextlib.contextmanager
    def loop(self, stop, start=0, step=1, name: str = "i") -> Iterator[ir.Value]:
        """``for i in range(start, stop, step)`` with step > 0 (constants or values); the body
        is the with-block."""
        b = self.b
        start, stop, step = self._idx(start), self._idx(stop), self._idx(step)
        pre = b.block
        head = b.append_basic_block(f"{name}.head")
        body = b.append_basic_block(f"{name}.body")
        done = b.append_basic_block(f"{name}.done")
        b.branch(head)
        b.position_at_end(head)
        i = b.phi(start.type, name=name)
        i.add_incoming(start, pre)
        b.cbranch(b.icmp_signed("<", i, stop), body, done)
        b.position_at_end(body)
        yield i
        nxt = b.add(i, step, flags=["nsw"])
        i.add_incoming(nxt, b.block)
        b.branch(head)
        b.position_at_end(done)

    @contextlib.contextmanager
    def nest(self, dims: Sequence[int], name: str = "d") -> Iterator[list[ir.Value]]:
        """Nested loops over ``dims`` (outermost first); yields the index list."""
        with contextlib.ExitStack() as stack:
            idx = [stack.enter_context(self.loop(d, name=f"{name}{k}")) for k, d in enumerate(dims)]
            yield idx

    @contextlib.contextmanager
    def if_(self, cond: ir.Value) -> Iterator[None]:
        with self.b.if_then(cond):
            yield
