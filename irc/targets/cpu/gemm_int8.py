"""The int8 GEMM micro-kernel of the CPU target: u8 x s8 -> s32, with the requantize epilogue.

One side of the product is read as vectors, the other broadcast, both in groups of 4 k:

    acc[r][c] += sum_{t<4} vec[k4][c][t] * bcast[r][k4][t]      (one int32 lane per column c)

- ``vnni512``: ``vpdpbusd`` (llvm.x86.avx512.vpdpbusd.512) does 64 of these byte products into
  16 int32 lanes per instruction, exactly (no saturation: the non-"s" form wraps, and a sum of
  4 products of u8 and s8 cannot overflow 32 bits).
- ``pmaddubsw256``: AVX2 without VNNI, for layers whose weights cannot saturate it (the
  lowering checks, see int8_gemm.fits_pmaddubsw): ``vpmaddubsw`` (llvm.x86.avx2.pmadd.ub.sw)
  multiplies 32 u8 x s8 byte pairs and adds each pair into a saturating int16, then ``vpmaddwd``
  with ones adds the two int16 of a column into its int32 lane: 32 products in two multiplies,
  with no widening of the bytes. Exact because no pair sum leaves the int16 range.
- ``pmaddwd<bits>``: without VNNI the bytes are widened to 16 bits (zero-extended for the
  unsigned side, sign-extended for the signed side) and ``pmaddwd`` multiplies and adds pairs
  into int32 lanes (|u*s| < 2**15, so pair sums are exact); the two pair sums of a column are
  added once, after the k loop.

A tile is ``rows`` x (C * nv) columns held in rows * nv vector registers across the k loop.
After the loop the epilogue adds the bias, requantizes exactly as irc.ir.quant_arith defines it
(64-bit product with the multiplier, rounding constant, arithmetic shift, zero point,
saturation; per row or per column multipliers; the arithmetic shift is done as a logical one of
the sum moved up by 2**62, which AVX2 has as one instruction where a 64-bit arithmetic shift
takes four) and stores the bytes (one by one at a ragged edge).
Conv computes rows = output channels x columns = output positions (the im2col matrix is the
unsigned vector side, weights broadcast); dense computes rows = samples x columns = features
(activations broadcast, weights the signed vector side).
"""

from __future__ import annotations

from dataclasses import dataclass

from llvmlite import ir

from irc.targets.cpu.kernel import ModuleState
from irc.targets.cpu.lowering.int8_gemm import tile_of
from irc.targets.llvm import lltypes as T

_PMADDUBSW = "llvm.x86.avx2.pmadd.ub.sw"
_PMADD = {
    "pmaddwd512": ("llvm.x86.avx512.pmaddw.d.512", 32),
    "pmaddwd256": ("llvm.x86.avx2.pmadd.wd", 16),
    "pmaddwd128": ("llvm.x86.sse2.pmadd.wd", 8),
}


@dataclass(frozen=True)
class MicroKernel:
    """Compile-time shape of one micro-kernel function (see module doc). Strides in bytes,
    ``ldo`` in output elements."""

    isa: str
    rows: int
    cols: int  # valid columns (<= C * nv); stores beyond are masked off
    k4: int
    vec_k4_stride: int
    bc_k4_stride: int
    bc_row_stride: int
    vec_unsigned: bool
    ldo: int
    per_row: bool  # epilogue parameters per row (conv) or per column (dense)
    zero_point: int
    lo: int
    hi: int

    @property
    def c(self) -> int:
        return tile_of(self.isa)[0]

    @property
    def nv(self) -> int:
        return tile_of(self.isa)[1]


def _const_vec(t: ir.Type, n: int, v: int) -> ir.Constant:
    return ir.Constant(ir.VectorType(t, n), [v] * n)


def _splat(b: ir.IRBuilder, s: ir.Value, n: int) -> ir.Value:
    vt = ir.VectorType(s.type, n)
    v = b.insert_element(ir.Constant(vt, ir.Undefined), s, ir.Constant(T.I32, 0))
    return b.shuffle_vector(v, ir.Constant(vt, ir.Undefined), ir.Constant(ir.VectorType(T.I32, n), [0] * n))


def micro_kernel(state: ModuleState, mk: MicroKernel) -> ir.Function:
    """``uk(vec, bcast, out, bias, multiplier, shift)``: one tile, pointers at its first element."""
    key = ("uk8", mk)
    fn = state.kernels.get(key)
    if fn is not None:
        return fn
    fn = ir.Function(state.module, ir.FunctionType(T.VOID, [T.PTR] * 6), state.unique(f"uk8_{mk.isa}_{mk.rows}x{mk.cols}"))
    fn.linkage = "internal"
    fn.attributes.add("nounwind")
    vec_p, bc_p, out_p, bias_p, m0_p, shift_p = fn.args
    for a in fn.args:
        a.add_attribute("noalias")
    entry, loop, done = (fn.append_basic_block(n) for n in ("entry", "k", "epilogue"))
    b = ir.IRBuilder(entry)
    b.branch(loop)
    b.position_at_end(loop)
    c, nv = mk.c, mk.nv
    vnni = mk.isa == "vnni512"
    ubsw = mk.isa == "pmaddubsw256"
    lanes = c if vnni or ubsw else 2 * c  # int32 lanes of one accumulator
    acc_t = ir.VectorType(T.I32, lanes)
    k = b.phi(T.I64, name="k4")
    k.add_incoming(ir.Constant(T.I64, 0), entry)
    acc = [[b.phi(acc_t) for _ in range(nv)] for _ in range(mk.rows)]
    for row in acc:
        for a in row:
            a.add_incoming(ir.Constant(acc_t, None), entry)
    vec_base = b.gep(vec_p, [b.mul(k, ir.Constant(T.I64, mk.vec_k4_stride))], inbounds=True, source_etype=T.I8)
    bc_base = b.gep(bc_p, [b.mul(k, ir.Constant(T.I64, mk.bc_k4_stride))], inbounds=True, source_etype=T.I8)
    bytes_t = ir.VectorType(T.I8, 4 * c)
    raw = [b.load(b.gep(vec_base, [ir.Constant(T.I64, v * 4 * c)], inbounds=True, source_etype=T.I8), typ=bytes_t,
                  align=1) for v in range(nv)]
    if vnni:
        dp = state.declare("llvm.x86.avx512.vpdpbusd.512", acc_t, [acc_t] * 3)
        vecs = [b.bitcast(r, acc_t) for r in raw]
    elif ubsw:
        i16v = ir.VectorType(T.I16, 2 * c)
        ubsw_fn = state.declare(_PMADDUBSW, i16v, [bytes_t, bytes_t])
        dp = state.declare(_PMADD["pmaddwd256"][0], acc_t, [i16v, i16v])
        ones = _const_vec(T.I16, 2 * c, 1)
        vecs = raw
    else:
        name, w16 = _PMADD[mk.isa]
        i16v = ir.VectorType(T.I16, w16)
        dp = state.declare(name, acc_t, [i16v, i16v])
        vecs = [b.zext(r, i16v) if mk.vec_unsigned else b.sext(r, i16v) for r in raw]
    nxt = []
    for r in range(mk.rows):
        d = b.load(b.gep(bc_base, [ir.Constant(T.I64, r * mk.bc_row_stride)], inbounds=True, source_etype=T.I8),
                   typ=T.I32, align=1)
        if vnni:
            s = _splat(b, d, lanes)
            nxt.append([b.call(dp, [acc[r][v], vecs[v], s] if mk.vec_unsigned else [acc[r][v], s, vecs[v]])
                        for v in range(nv)])
        elif ubsw:
            s = b.bitcast(_splat(b, d, lanes), bytes_t)
            nxt.append([b.add(acc[r][v], b.call(dp, [b.call(ubsw_fn, [vecs[v], s] if mk.vec_unsigned else [s, vecs[v]]),
                                                     ones])) for v in range(nv)])
        else:
            four = b.bitcast(d, ir.VectorType(T.I8, 4))
            four = b.sext(four, ir.VectorType(T.I16, 4)) if mk.vec_unsigned else b.zext(four, ir.VectorType(T.I16, 4))
            s = b.shuffle_vector(four, ir.Constant(four.type, ir.Undefined),
                                 ir.Constant(ir.VectorType(T.I32, 4 * c), [i % 4 for i in range(4 * c)]))
            nxt.append([b.add(acc[r][v], b.call(dp, [vecs[v], s])) for v in range(nv)])
    k1 = b.add(k, ir.Constant(T.I64, 1), flags=["nsw"])
    k.add_incoming(k1, loop)
    for r in range(mk.rows):
        for v in range(nv):
            acc[r][v].add_incoming(nxt[r][v], loop)
    b.cbranch(b.icmp_signed("<", k1, ir.Constant(T.I64, mk.k4)), loop, done)

    b.position_at_end(done)
    _epilogue(b, state, mk, nxt, out_p, bias_p, m0_p, shift_p)
    b.ret_void()
    state.kernels[key] = fn
    return fn


def _epilogue(b: ir.IRBuilder, state: ModuleState, mk: MicroKernel, acc, out_p, bias_p, m0_p, shift_p) -> None:
    c = mk.c
    i32v, i64v = ir.VectorType(T.I32, c), ir.VectorType(T.I64, c)
    if mk.isa.startswith("pmaddwd"):
        even = ir.Constant(ir.VectorType(T.I32, c), list(range(0, 2 * c, 2)))
        odd = ir.Constant(ir.VectorType(T.I32, c), list(range(1, 2 * c, 2)))
        acc = [[b.add(b.shuffle_vector(a, a, even), b.shuffle_vector(a, a, odd)) for a in row] for row in acc]
    one = _const_vec(T.I64, c, 1)

    def wide(t, m0, sh):
        """Any shift in [1, 62], in 64-bit lanes. v = acc * M0 + rounding lies in (-2**62,
        2**62 + 2**61] (|acc|, M0 < 2**31), so v + 2**62 is in [0, 2**64) and its logical shift
        is floor(v / 2**sh) + 2**(62 - sh): one vpsrlq where an arithmetic shift takes four."""
        zp, lo, hi = (_const_vec(T.I64, c, v) for v in (mk.zero_point, mk.lo, mk.hi))
        sh64 = b.sext(sh, i64v)
        rnd = b.add(b.shl(one, b.sub(sh64, one)), _const_vec(T.I64, c, 1 << 62))
        y = b.lshr(b.add(b.mul(b.sext(t, i64v), b.sext(m0, i64v)), rnd), sh64)
        y = b.add(b.sub(y, b.shl(one, b.sub(_const_vec(T.I64, c, 62), sh64))), zp)
        y = b.select(b.icmp_signed("<", y, lo), lo, y)
        return b.trunc(b.select(b.icmp_signed(">", y, hi), hi, y), ir.VectorType(T.I8, c))

    def narrow(t, m0, sh):
        """Shifts >= 32 (every layer whose rescale factor is below 1/2), in 32-bit lanes after
        the product: floor(v / 2**sh) = (high 32 bits of v) >> (sh - 32), and |v| < 2**63
        keeps that high half within int32, so zero point and saturation need no 64-bit lanes."""
        zp, lo, hi = (_const_vec(T.I32, c, v) for v in (mk.zero_point, mk.lo, mk.hi))
        v = b.add(b.mul(b.sext(t, i64v), b.sext(m0, i64v)), b.shl(one, b.sext(b.sub(sh, _const_vec(T.I32, c, 1)), i64v)))
        y = b.ashr(b.trunc(b.lshr(v, _const_vec(T.I64, c, 32)), i32v), b.sub(sh, _const_vec(T.I32, c, 32)))
        y = b.add(y, zp)
        y = b.select(b.icmp_signed("<", y, lo), lo, y)
        return b.trunc(b.select(b.icmp_signed(">", y, hi), hi, y), ir.VectorType(T.I8, c))

    def param(ptr, idx, lanes):
        p = b.gep(ptr, [ir.Constant(T.I64, idx)], inbounds=True, source_etype=T.I32)
        if lanes:
            return b.load(p, typ=i32v, align=4)
        return b.load(p, typ=T.I32)

    def store(y8, r, v, valid):
        dst = b.gep(out_p, [ir.Constant(T.I64, r * mk.ldo + v * c)], inbounds=True, source_etype=T.I8)
        if valid == c:
            b.store(y8, dst, align=1)
        else:  # a ragged edge: byte by byte (a masked store of a truncation is not trusted)
            for i in range(valid):
                b.store(b.extract_element(y8, ir.Constant(T.I32, i)),
                        b.gep(dst, [ir.Constant(T.I64, i)], inbounds=True, source_etype=T.I8))

    def row(r, vs, params, form):
        bias, m0, sh = params
        for v, valid in vs:
            store(form(b.add(acc[r][v], bias), m0, sh), r, v, valid)

    thirty_two = ir.Constant(T.I32, 32)
    for r in range(mk.rows):
        vs = [(v, min(c, mk.cols - v * c)) for v in range(mk.nv) if mk.cols - v * c > 0]
        if mk.per_row:  # one shift for the row: one branch for all its vectors
            bias, m0, sh = (param(p, r, False) for p in (bias_p, m0_p, shift_p))
            splat = [_splat(b, x, c) for x in (bias, m0, sh)]
            with b.if_else(b.icmp_signed(">=", sh, thirty_two)) as (then, other):
                with then:
                    row(r, vs, splat, narrow)
                with other:
                    row(r, vs, splat, wide)
            continue
        for v, valid in vs:
            params = [param(p, v * c, True) for p in (bias_p, m0_p, shift_p)]
            small = b.icmp_signed("<", params[2], _splat(b, thirty_two, c))
            any_small = b.icmp_unsigned("!=", b.bitcast(small, ir.IntType(c)), ir.Constant(ir.IntType(c), 0))
            with b.if_else(any_small) as (then, other):
                with then:
                    row(r, [(v, valid)], params, wide)
                with other:
                    row(r, [(v, valid)], params, narrow)
