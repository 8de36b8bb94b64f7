"""Explicit SIMD for the neural-network kernels: a buffer's elements as vectors of its
accumulation type, loops split into whole vectors and a scalar tail, horizontal reductions,
and an exp for f32 vectors.

Kernels write their inner loops with these rather than hoping for LLVM's loop vectoriser:
inside a parallel body the buffer pointers come out of an argument block, so LLVM knows
nothing about their aliasing, and it never vectorises a float reduction without fast-math.
Half-precision data (f16, bf16) is widened to f32 on load and rounded on store, as the
references accumulate it in f32.
"""

from __future__ import annotations

from collections.abc import Callable

from llvmlite import ir

from irc.ir.types import DType
from irc.targets.cpu.kernel import KernelBuilder
from irc.targets.llvm import lltypes as T
from irc.targets.llvm.scalar import Scalar


def acc_dtype(dt: DType) -> DType:
    """The type a kernel computes ``dt`` data in: f32 for half precision, else ``dt`` itself."""
    return DType.f32 if dt in (DType.f16, DType.bf16) else dt


class Lanes:
    """Vector access to ``dt`` data in kernel ``k``: values are in ``acc_dtype(dt)``, ``vl``
    of them per vector (one machine register). ``lanes`` arguments are ``vl`` for a vector
    or 0 for one scalar element."""

    def __init__(self, k: KernelBuilder, dt: DType, vl: int | None = None):
        self.k = k
        self.dt = dt
        self.acc = acc_dtype(dt)
        self.storage = T.storage_type(dt)
        bits = {DType.f64: 64, DType.f32: 32}.get(self.acc) or T.storage_type(self.acc).width
        self.vl = vl or max(1, k.state.ctx.vector_bits // bits)
        self.s = Scalar(k, self.acc)
        self.v = Scalar(k, self.acc, self.vl)

    @property
    def b(self) -> ir.IRBuilder:
        return self.k.b

    def ops(self, lanes: int) -> Scalar:
        return self.v if lanes else self.s

    def at(self, ptr: ir.Value, off: ir.Value) -> ir.Value:
        """Address of element ``off`` of a ``dt`` array at ``ptr``."""
        return self.b.gep(ptr, [off], inbounds=True, source_etype=self.storage)

    def load(self, ptr: ir.Value, off: ir.Value, lanes: int) -> ir.Value:
        b = self.b
        if not lanes:
            raw = b.load(self.at(ptr, off), typ=self.storage)
            return self._widen(raw, self.storage, self.s.t)
        vt = ir.VectorType(self.storage, lanes)
        raw = b.load(self.at(ptr, off), typ=vt, align=self.dt.itemsize)
        return self._widen(raw, vt, ir.VectorType(self.s.t, lanes))

    def store(self, ptr: ir.Value, off: ir.Value, value: ir.Value, lanes: int) -> None:
        b = self.b
        st = ir.VectorType(self.storage, lanes) if lanes else self.storage
        raw = self._narrow(value, st, lanes)
        if lanes:
            b.store(raw, self.at(ptr, off), align=self.dt.itemsize)
        else:
            b.store(raw, self.at(ptr, off))

    def _widen(self, raw: ir.Value, st: ir.Type, ct: ir.Type) -> ir.Value:
        b = self.b
        if self.dt is DType.f16:
            return b.fpext(raw, ct)
        if self.dt is DType.bf16:
            it = ir.VectorType(T.I32, ct.count) if isinstance(ct, ir.VectorType) else T.I32
            return b.bitcast(b.shl(b.zext(raw, it), _splat_const(it, 16)), ct)
        return raw

    def _narrow(self, v: ir.Value, st: ir.Type, lanes: int) -> ir.Value:
        b = self.b
        if self.dt is DType.f16:
            return b.fptrunc(v, st)
        if self.dt is DType.bf16:
            it = ir.VectorType(T.I32, lanes) if lanes else T.I32
            # Round to nearest even on the dropped bits; NaN stays a quiet NaN (as KernelBuilder.to_storage).
            bits = b.bitcast(v, it)
            lsb = b.and_(b.lshr(bits, _splat_const(it, 16)), _splat_const(it, 1))
            rounded = b.add(bits, b.add(_splat_const(it, 0x7FFF), lsb))
            quiet = b.or_(bits, _splat_const(it, 0x00400000))
            bits = b.select(b.fcmp_unordered("uno", v, v), quiet, rounded)
            if not lanes:
                return b.trunc(b.lshr(bits, _splat_const(it, 16)), st)
            # The high halves by a shuffle rather than shift + trunc: LLVM folds a trunc into a
            # following masked store and, when the mask has one constant lane, has been seen to
            # store all 32 bits.
            halves = b.bitcast(bits, ir.VectorType(T.I16, 2 * lanes))
            return b.shuffle_vector(halves, ir.Constant(halves.type, ir.Undefined),
                                    ir.Constant(ir.VectorType(T.I32, lanes), [2 * i + 1 for i in range(lanes)]))
        return v

    # ------------------------------------------------------------------ masked access
    def _intrinsic(self, kind: str, vt: ir.VectorType, ret: ir.Type, args: list[ir.Type]) -> ir.Function:
        return self.k.state.declare(f"llvm.masked.{kind}.{T.suffix(vt)}.p0", ret, args)

    def load_strided(self, ptr: ir.Value, off: ir.Value, lanes: int, stride: int = 1) -> ir.Value:
        """Elements off + i*stride for i < lanes, all inside the buffer: one load of the span
        and a shuffle for strides up to 4, a load per lane above that."""
        b = self.b
        addr = self.at(ptr, off)
        if stride == 1:
            return self.load(ptr, off, lanes)
        if stride > 4:
            raw = ir.Constant(ir.VectorType(self.storage, lanes), None)
            for i in range(lanes):
                val = b.load(b.gep(addr, [ir.Constant(T.I64, i * stride)], inbounds=True, source_etype=self.storage),
                             typ=self.storage)
                raw = b.insert_element(raw, val, ir.Constant(T.I32, i))
        else:
            # The span's last stride-1 elements are not needed and may lie past the buffer.
            span = b.load(addr, typ=ir.VectorType(self.storage, lanes * stride - stride + 1), align=self.dt.itemsize)
            raw = b.shuffle_vector(span, ir.Constant(span.type, ir.Undefined),
                                   ir.Constant(ir.VectorType(T.I32, lanes), [i * stride for i in range(lanes)]))
        return self._widen(raw, raw.type, ir.VectorType(self.s.t, lanes))

    def load_masked(self, ptr: ir.Value, off: ir.Value, mask: ir.Value, stride: int = 1) -> ir.Value:
        """Lanes i of ``mask`` get element off + i*stride; the others 0. Masked-off addresses
        are never touched, so the window may hang over either end of the buffer. Strides up to
        4 load the span in one masked access and pick every stride-th lane; larger ones load
        lane by lane from clamped addresses."""
        b = self.b
        lanes = mask.type.count
        addr = b.gep(ptr, [off], source_etype=self.storage)  # may point outside: not inbounds
        if stride > 4:
            idx = b.mul(iota(lanes), ir.Constant(ir.VectorType(T.I32, lanes), [stride] * lanes))
            return self.gather(addr, idx, mask, safe=ptr)
        wide = lanes * stride
        vt = ir.VectorType(self.storage, wide)
        if stride > 1:
            spread = b.shuffle_vector(mask, ir.Constant(mask.type, None),
                                      ir.Constant(ir.VectorType(T.I32, wide), [j // stride for j in range(wide)]))
            mask = b.and_(spread, ir.Constant(ir.VectorType(T.I1, wide), [int(j % stride == 0) for j in range(wide)]))
        fn = self._intrinsic("load", vt, vt, [T.PTR, T.I32, mask.type, vt])
        raw = b.call(fn, [addr, ir.Constant(T.I32, self.dt.itemsize), mask, ir.Constant(vt, None)])
        if stride > 1:
            raw = b.shuffle_vector(raw, ir.Constant(vt, ir.Undefined),
                                   ir.Constant(ir.VectorType(T.I32, lanes), [i * stride for i in range(lanes)]))
        return self._widen(raw, raw.type, ir.VectorType(self.s.t, lanes))

    def load_expand(self, ptr: ir.Value, off: ir.Value, mask: ir.Value, every: int, first: int) -> ir.Value:
        """Lane first + t*every gets element off + t, where ``mask`` allows; all other lanes
        are 0 (an upsampled row: one masked load of the consecutive elements, then a shuffle)."""
        b = self.b
        lanes = mask.type.count
        picks = list(range(first, lanes, every))
        n = len(picks)
        sub = b.shuffle_vector(mask, ir.Constant(mask.type, None), ir.Constant(ir.VectorType(T.I32, n), picks))
        vt = ir.VectorType(self.storage, n)
        fn = self._intrinsic("load", vt, vt, [T.PTR, T.I32, sub.type, vt])
        raw = b.call(fn, [b.gep(ptr, [off], source_etype=self.storage), ir.Constant(T.I32, self.dt.itemsize), sub,
                          ir.Constant(vt, None)])
        wide = self._widen(raw, vt, ir.VectorType(self.s.t, n))
        spread = [(lane - first) // every if lane >= first and (lane - first) % every == 0 else n
                  for lane in range(lanes)]
        return b.shuffle_vector(wide, ir.Constant(wide.type, None), ir.Constant(ir.VectorType(T.I32, lanes), spread))

    def gather(self, ptr: ir.Value, idx: ir.Value, mask: ir.Value, safe: ir.Value | None = None) -> ir.Value:
        """Lane i: element ptr[idx[i]] where mask[i], else 0; one scalar load per lane, from
        ``safe`` (a valid element address, ``ptr`` by default) where the lane is off."""
        b = self.b
        lanes = mask.type.count
        raw = ir.Constant(ir.VectorType(self.storage, lanes), None)
        for i in range(lanes):
            lane = ir.Constant(T.I32, i)
            ok = b.extract_element(mask, lane)
            at = b.gep(ptr, [b.sext(b.extract_element(idx, lane), T.I64)], source_etype=self.storage)
            val = b.load(b.select(ok, at, safe or ptr), typ=self.storage)
            raw = b.insert_element(raw, b.select(ok, val, ir.Constant(self.storage, None)), lane)
        return self._widen(raw, raw.type, ir.VectorType(self.s.t, lanes))

    def store_masked(self, ptr: ir.Value, off: ir.Value, value: ir.Value, mask: ir.Value) -> None:
        lanes = mask.type.count
        vt = ir.VectorType(self.storage, lanes)
        raw = self._narrow(value, vt, lanes)
        fn = self._intrinsic("store", vt, T.VOID, [vt, T.PTR, T.I32, mask.type])
        self.b.call(fn, [raw, self.b.gep(ptr, [off], source_etype=self.storage), ir.Constant(T.I32, self.dt.itemsize),
                         mask])

    def round_trip(self, v: ir.Value, lanes: int) -> ir.Value:
        """v rounded to the storage type and back: what a reference computing in ``dt`` sees."""
        if self.acc is self.dt:
            return v
        st = ir.VectorType(self.storage, lanes) if lanes else self.storage
        return self._widen(self._narrow(v, st, lanes), st, v.type)

    # ------------------------------------------------------------------ vectors
    def splat(self, x: ir.Value, lanes: int | None = None) -> ir.Value:
        lanes = self.vl if lanes is None else lanes
        if not lanes:
            return x
        vt = ir.VectorType(x.type, lanes)
        v = self.b.insert_element(ir.Constant(vt, ir.Undefined), x, ir.Constant(T.I32, 0))
        zeros = ir.Constant(ir.VectorType(T.I32, lanes), [0] * lanes)
        return self.b.shuffle_vector(v, ir.Constant(vt, ir.Undefined), zeros)

    def hreduce(self, v: ir.Value, combine: Callable[[Scalar, ir.Value, ir.Value], ir.Value]) -> ir.Value:
        """combine() over the lanes of ``v`` by halving, down to one scalar."""
        return fold_lanes(self.k, self.acc, v, combine)

    def slot(self, lanes: int, init: ir.Value) -> ir.Value:
        """A stack slot (promoted to a register by LLVM) holding a vector or scalar accumulator."""
        t = ir.VectorType(self.s.t, lanes) if lanes else self.s.t
        with self.b.goto_entry_block():
            p = self.b.alloca(t)
        self.b.store(init, p)
        return p

    def get(self, slot: ir.Value) -> ir.Value:
        return self.b.load(slot, typ=slot.allocated_type)

    # ------------------------------------------------------------------ loops
    def for_each(self, n: int, body: Callable[[ir.Value, int], None], start: int = 0) -> None:
        """body(i, lanes) over i in [start, n): whole vectors first, then a scalar tail."""
        vl = self.vl
        main = start + (n - start) // vl * vl
        if main > start:
            with self.k.loop(main, start=start, step=vl, name="v") as i:
                body(i, vl)
        if n > main:
            with self.k.loop(n, start=main, name="t") as i:
                body(i, 0)

    def reduce(self, n: int, elem: Callable[[ir.Value, int], ir.Value],
               combine: Callable[[Scalar, ir.Value, ir.Value], ir.Value], init, unroll: int = 4) -> ir.Value:
        """combine() of elem(i, lanes) over i in [0, n), as one scalar. ``unroll`` independent
        vector accumulators hide the latency of the combining instruction."""
        vl = self.vl
        k = self.k
        accs = [self.slot(vl, self.v.c(init)) for _ in range(unroll)] if n >= vl else []
        tail = self.slot(0, self.s.c(init))
        big = n // (vl * unroll) * vl * unroll
        if big:
            with k.loop(big, step=vl * unroll, name="ru") as i:
                for u, slot in enumerate(accs):
                    x = elem(self.b.add(i, k.i64(u * vl)), vl)
                    self.b.store(combine(self.v, self.get(slot), x), slot)
        whole = n // vl * vl
        if whole > big:
            with k.loop(whole, start=big, step=vl, name="rv") as i:
                self.b.store(combine(self.v, self.get(accs[0]), elem(i, vl)), accs[0])
        if n > whole:
            with k.loop(n, start=whole, name="rt") as i:
                self.b.store(combine(self.s, self.get(tail), elem(i, 0)), tail)
        out = self.get(tail)
        if accs:
            v = self.get(accs[0])
            for slot in accs[1:]:
                v = combine(self.v, v, self.get(slot))
            out = combine(self.s, self.hreduce(v, combine), out)
        return out


def constant_array(k: KernelBuilder, values, dt: DType) -> ir.GlobalVariable:
    """A read-only table in the module (index tables, window counts), usable in any function."""
    elem = T.storage_type(dt)
    arr = ir.ArrayType(elem, max(1, len(values)))
    g = ir.GlobalVariable(k.module, arr, k.state.unique("table"))
    g.global_constant = True
    g.linkage = "internal"
    g.initializer = ir.Constant(arr, [ir.Constant(elem, v.item() if hasattr(v, "item") else v) for v in values] or None)
    return g


def iota(lanes: int) -> ir.Constant:
    """<0, 1, ..., lanes-1> as i32."""
    return ir.Constant(ir.VectorType(T.I32, lanes), list(range(lanes)))


def _splat_const(t: ir.Type, v: int) -> ir.Constant:
    if isinstance(t, ir.VectorType):
        return ir.Constant(t, [ir.Constant(t.element, v).constant] * t.count)
    return ir.Constant(t, v)


def add(s: Scalar, a, b):
    return s.add(a, b)


def maximum(s: Scalar, acc, x):
    """NaN-propagating maximum (numpy.max) for floats; plain maximum for integers.

    For floats ``x > acc ? x : acc`` (one vmaxps) then ``x`` where x is NaN: a NaN in ``acc``
    is kept because no comparison with it is true. Three instructions instead of the seven
    of LLVM's llvm.maximum, which also orders -0 below +0 (numpy.max does not)."""
    if not s.is_float:
        return s.max(acc, x)
    m = s.select(s.b.fcmp_ordered(">", x, acc), x, acc)
    return s.select(s.is_nan(x), x, m)


#: exp(x) = 2**n * e**r with n = round(x / ln 2), r = x - n ln 2 (|r| <= ln2 / 2); e**r by the
#: Cephes expf polynomial (error about 1 ulp). ln 2 is split in two so n ln 2 is exact.
_LOG2E = 1.44269504088896341
_LN2_HI, _LN2_LO = 0.693359375, -2.12194440e-4
_EXP_POLY = (1.9875691500e-4, 1.3981999507e-3, 8.3334519073e-3, 4.1665795894e-2, 1.6666665459e-1, 5.0000001201e-1)
#: 1.5 * 2**23: adding it rounds a float to an integer held in the low mantissa bits.
_ROUND_MAGIC = 12582912.0
_EXP_MIN, _EXP_MAX = -87.33654475, 88.72283935


def exp(s: Scalar, x: ir.Value) -> ir.Value:
    """e**x for f32 (vector or scalar) without a libm call per lane, so it vectorises; other
    types use the LLVM intrinsic. Results below FLT_MIN are 0; NaN stays NaN."""
    if s.dt is not DType.f32:
        return s.intrinsic("exp", x)
    b = s.b
    lanes = s.lanes
    it = ir.VectorType(T.I32, lanes) if lanes else T.I32
    under = b.fcmp_ordered("<", x, s.c(_EXP_MIN))
    xc = s.select(under, s.c(_EXP_MIN), x)
    xc = s.select(b.fcmp_ordered(">", xc, s.c(_EXP_MAX)), s.c(_EXP_MAX), xc)
    t = s.add(s.mul(xc, s.c(_LOG2E)), s.c(_ROUND_MAGIC))
    n = s.sub(t, s.c(_ROUND_MAGIC))
    r = s.sub(s.sub(xc, s.mul(n, s.c(_LN2_HI))), s.mul(n, s.c(_LN2_LO)))
    p = s.c(_EXP_POLY[0])
    for coef in _EXP_POLY[1:]:
        p = s.add(s.mul(p, r), s.c(coef))
    y = s.add(s.add(s.mul(s.mul(p, r), r), r), s.c(1.0))
    magic_bits = _splat_const(it, 0x4B400000)  # the bits of _ROUND_MAGIC
    ni = b.sub(b.bitcast(t, it), magic_bits)
    # 2**n built in the exponent field; n = 128 (x near the top) gives inf, as it should.
    scale = b.bitcast(b.shl(b.add(ni, _splat_const(it, 127)), _splat_const(it, 23)), s.t)
    return s.select(under, s.c(0.0), s.mul(y, scale))


def fold_lanes(k: KernelBuilder, acc: DType, v: ir.Value, combine: Callable[[Scalar, ir.Value, ir.Value], ir.Value]):
    """combine() over the lanes of vector ``v`` (of compute type ``acc``) by halving, down to one
    scalar."""
    b = k.b
    n = v.type.count
    while n > 1:
        half = n // 2
        undef = ir.Constant(v.type, ir.Undefined)
        lo = b.shuffle_vector(v, undef, ir.Constant(ir.VectorType(T.I32, half), list(range(half))))
        hi = b.shuffle_vector(v, undef, ir.Constant(ir.VectorType(T.I32, half), list(range(half, 2 * half))))
        if n % 2:  # an odd lane left over joins the first lane afterwards
            odd = b.extract_element(v, ir.Constant(T.I32, n - 1))
            merged = combine(Scalar(k, acc, half), lo, hi)
            first = b.extract_element(merged, ir.Constant(T.I32, 0))
            v = b.insert_element(merged, combine(Scalar(k, acc), first, odd), ir.Constant(T.I32, 0))
        else:
            v = combine(Scalar(k, acc, half), lo, hi)
        n = half
    return b.extract_element(v, ir.Constant(T.I32, 0))
