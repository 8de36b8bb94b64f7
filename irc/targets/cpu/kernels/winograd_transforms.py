"""The transforms of the Winograd kernel (kernels/winograd.py), per block of tile rows.

- input: V = B^T d B of every tile and input channel into the GEMM's packed column panels.
  Separable: the column pass (B^T over a input rows) runs in vectors along whole input rows
  (the last one masked) into a row buffer whose borders stay zero (the padding); the row pass
  takes a group of tiles as one vector, each tile's a inputs picked out of two wide loads by
  shuffles, and stores the group's V lanes contiguous (the block numbers its tiles with rows
  padded to whole groups).
- output: Y = A^T M A with the fused epilogue, vectorised over VL tiles of a tile row: M_t of
  consecutive tiles are consecutive, and the m x VL results of one output row are interleaved
  (shuffles) into VL*m contiguous outputs, so bias, residual, activation and the stores run on
  whole vectors; the right edge is masked, rows past the output are skipped.
"""

from __future__ import annotations

import contextlib

from llvmlite import ir

from irc.ir.graph import Node
from irc.ir.types import DType
from irc.targets.cpu import gemm
from irc.targets.cpu.kernel import KernelBuilder
from irc.targets.cpu.lowering.winograd import matrices
from irc.targets.llvm import lltypes as T
from irc.targets.llvm.scalar import Scalar


def combine(b: ir.IRBuilder, coeffs, vals: list[ir.Value]) -> ir.Value:
    """sum(c * v) with constant coefficients: zeros skipped, +-1 as additions."""
    acc = None
    for c, v in zip(coeffs, vals):
        c = float(c)
        if c == 0:
            continue
        if acc is None:
            acc = v if c == 1 else b.fneg(v) if c == -1 else b.fmul(v, _const(v.type, c))
        elif c == 1:
            acc = b.fadd(acc, v)
        elif c == -1:
            acc = b.fsub(acc, v)
        else:
            acc = b.fadd(acc, b.fmul(v, _const(v.type, c)))
    return acc if acc is not None else _const(vals[0].type, 0.0)


def _const(t: ir.Type, c: float) -> ir.Constant:
    return ir.Constant(t, [c] * t.count) if isinstance(t, ir.VectorType) else ir.Constant(t, c)


def f32_at(k: KernelBuilder, ptr: ir.Value, off) -> ir.Value:
    return k.b.gep(ptr, [off if isinstance(off, ir.Value) else k.i64(off)], inbounds=True, source_etype=T.F32)


def input_transform(k: KernelBuilder, s, img, ty0, rows, v_buf, row_buf, zero_row, c_range=None) -> None:
    """V_t[panel][c][lane] = (B^T d B)_t of the tile at block position panel*NR + lane (tile
    (r, tx) of the block at r*twp + tx), for the input channels in ``c_range`` (all by default)."""
    bt, _, _ = matrices(s.m)
    b = k.b
    a, m, nr, xp, vl, g = s.a, s.m, s.tile.nr, s.xp, s.tile.vl, s.group
    vt = ir.VectorType(T.F32, vl)
    gt = ir.VectorType(T.F32, g * m)
    masked_load = k.state.declare(f"llvm.masked.load.v{vl}f32.p0", vt, [T.PTR, T.I32, ir.VectorType(T.I1, vl), vt])
    masked_store = k.state.declare(f"llvm.masked.store.v{vl}f32.p0", T.VOID,
                                   [vt, T.PTR, T.I32, ir.VectorType(T.I1, vl)])
    tail = s.w % vl
    tail_mask = ir.Constant(ir.VectorType(T.I1, vl), [1 if i < tail else 0 for i in range(vl)])
    align = ir.Constant(T.I32, 4)
    image = f32_at(k, k.ptr(k.ins[0]), b.mul(img, k.i64(s.c * s.h * s.w)))
    c_lo, c_hi = c_range or (k.i64(0), k.i64(s.c))
    with k.loop(c_hi, start=c_lo, name="c") as c:
        plane = f32_at(k, image, b.mul(c, k.i64(s.h * s.w)))
        with k.loop(rows, name="r") as r:
            iy0 = b.sub(b.mul(b.add(ty0, r), k.i64(m)), k.i64(s.pt))
            srcs = []
            for q in range(a):
                iy = b.add(iy0, k.i64(q))
                inside = b.and_(b.icmp_signed(">=", iy, k.i64(0)), b.icmp_signed("<", iy, k.i64(s.h)))
                row = b.gep(plane, [b.mul(iy, k.i64(s.w))], source_etype=T.F32)
                srcs.append(b.select(inside, row, zero_row))
            # column pass along the input row: row_buf[i][pl + x] = sum_q B^T[i][q] d[q][x]
            with k.loop(s.w - tail, step=vl, name="x") as xx:
                d = [b.load(b.gep(p, [xx], source_etype=T.F32), typ=vt, align=4) for p in srcs]
                col = b.add(xx, k.i64(s.pl))
                for i in range(a):
                    b.store(combine(b, bt[i], d), f32_at(k, row_buf, b.add(col, k.i64(i * xp))), align=4)
            if tail:
                x_t = k.i64(s.w - tail)
                d = [b.call(masked_load, [b.gep(p, [x_t], source_etype=T.F32), align, tail_mask, ir.Constant(vt, None)])
                     for p in srcs]
                for i in range(a):
                    b.call(masked_store, [combine(b, bt[i], d), f32_at(k, row_buf, s.w - tail + s.pl + i * xp), align,
                                          tail_mask])
            # row pass, g tiles at a time: d_q[l] = row[(tx + l)*m + q] picked out of two wide loads
            with k.loop(s.twp, step=g, name="tx") as tx:
                t_idx = b.add(b.mul(r, k.i64(s.twp)), tx)
                dst = b.add(b.mul(b.sdiv(t_idx, k.i64(nr)), k.i64(s.c * nr)),
                            b.add(b.mul(c, k.i64(nr)), b.srem(t_idx, k.i64(nr))))
                x0 = b.mul(tx, k.i64(m))
                for i in range(a):
                    w1 = b.load(f32_at(k, row_buf, b.add(x0, k.i64(i * xp))), typ=gt, align=4)
                    w2 = b.load(f32_at(k, row_buf, b.add(x0, k.i64(i * xp + m))), typ=gt, align=4)
                    d = [_pick(b, w1, m, q, g) for q in range(m)] + [_pick(b, w2, m, q, g) for q in range(a - m)]
                    for j in range(a):
                        b.store(combine(b, bt[j], d), f32_at(k, v_buf, b.add(dst, k.i64((i * a + j) * s.v_stride))),
                                align=4)


def _pick(b: ir.IRBuilder, wide: ir.Value, stride: int, first: int, n: int) -> ir.Value:
    """Elements first, first + stride, ... (n of them) of a vector."""
    return b.shuffle_vector(wide, ir.Constant(wide.type, ir.Undefined),
                            ir.Constant(ir.VectorType(T.I32, n), [first + stride * i for i in range(n)]))


def output_transform(k: KernelBuilder, s, node: Node, img, ty0, rows, m_buf, o_range=None) -> None:
    """y = act(A^T M A + bias + residual) for the block's tiles and the output channels in
    ``o_range`` (all by default)."""
    _, _, at = matrices(s.m)
    b = k.b
    a, m, vl = s.a, s.m, s.tile.vl
    vt = ir.VectorType(T.F32, vl)
    bias = k.ins[2] if len(k.ins) > 2 else None
    residual = k.ins[3] if len(k.ins) > 3 else None
    epi = gemm.Epilogue(act=node.attrs["act"], alpha=node.attrs["act_alpha"], beta=node.attrs["act_beta"])
    sv = Scalar(k, DType.f32, vl)
    masked_load = k.state.declare(f"llvm.masked.load.v{vl}f32.p0", vt, [T.PTR, T.I32, ir.VectorType(T.I1, vl), vt])
    masked_store = k.state.declare(f"llvm.masked.store.v{vl}f32.p0", T.VOID,
                                   [vt, T.PTR, T.I32, ir.VectorType(T.I1, vl)])
    lanes = ir.Constant(ir.VectorType(T.I64, vl), list(range(vl)))
    plane = s.oh * s.ow
    y = k.outs[0]

    def chunk(v: ir.Value, off: ir.Value, mask: ir.Value | None, bias_o: ir.Value | None) -> None:
        """Epilogue and store of VL contiguous outputs at ``off`` (``mask``: those inside)."""
        if bias_o is not None:
            v = b.fadd(v, bias_o)
        if residual is not None:
            ptr = f32_at(k, k.ptr(residual), off)
            r = b.load(ptr, typ=vt, align=4) if mask is None else \
                b.call(masked_load, [ptr, ir.Constant(T.I32, 4), mask, ir.Constant(vt, None)])
            v = b.fadd(v, r)
        v = gemm.apply_activation(sv, v, epi)
        ptr = f32_at(k, k.ptr(y), off)
        if mask is None:
            b.store(v, ptr, align=4)
        else:
            b.call(masked_store, [v, ptr, ir.Constant(T.I32, 4), mask])

    o_lo, o_hi = o_range or (k.i64(0), k.i64(s.cout))
    with k.loop(o_hi, start=o_lo, name="o") as o:
        bias_o = None
        if bias is not None:
            bias_o = sv.b.insert_element(ir.Constant(vt, ir.Undefined), b.load(f32_at(k, k.ptr(bias), o), typ=T.F32),
                                         ir.Constant(T.I32, 0))
            bias_o = b.shuffle_vector(bias_o, ir.Constant(vt, ir.Undefined), ir.Constant(ir.VectorType(T.I32, vl), [0] * vl))
        out_plane = b.mul(b.add(b.mul(img, k.i64(s.cout)), o), k.i64(plane))
        with k.loop(rows, name="r") as r:
            oy0 = b.mul(b.add(ty0, r), k.i64(m))
            with k.loop(s.tw, step=vl, name="tx") as tx:
                src = b.add(b.mul(o, k.i64(s.cols)), b.add(b.mul(r, k.i64(s.twp)), tx))
                mv = [b.load(f32_at(k, m_buf, b.add(src, k.i64(t * s.m_stride))), typ=vt, align=4)
                      for t in range(a * a)]
                half = [[combine(b, at[col], mv[i * a:(i + 1) * a]) for col in range(m)] for i in range(a)]
                ox0 = b.mul(tx, k.i64(m))
                inside = b.sub(k.i64(s.ow), ox0)  # outputs of the row from ox0 on
                for kk in range(m):
                    ys = [combine(b, at[kk], [half[i][col] for i in range(a)]) for col in range(m)]
                    row_ok = b.icmp_signed("<", b.add(oy0, k.i64(kk)), k.i64(s.oh))
                    with b.if_then(row_ok) if s.oh % m else contextlib.nullcontext():
                        off = b.add(out_plane, b.add(b.mul(b.add(oy0, k.i64(kk)), k.i64(s.ow)), ox0))
                        for j, v in enumerate(_interleave(b, ys, vl)):
                            off_j = b.add(off, k.i64(j * vl))
                            left = b.sub(inside, k.i64(j * vl))
                            full = b.icmp_signed(">=", left, k.i64(vl))
                            with b.if_else(full) as (whole, part):
                                with whole:
                                    chunk(v, off_j, None, bias_o)
                                with part:
                                    with b.if_then(b.icmp_signed(">", left, k.i64(0))):
                                        mask = b.icmp_signed("<", lanes, _splat_i64(b, left, vl))
                                        chunk(v, off_j, mask, bias_o)


def _splat_i64(b: ir.IRBuilder, v: ir.Value, vl: int) -> ir.Value:
    vt = ir.VectorType(T.I64, vl)
    one = b.insert_element(ir.Constant(vt, ir.Undefined), v, ir.Constant(T.I32, 0))
    return b.shuffle_vector(one, ir.Constant(vt, ir.Undefined), ir.Constant(ir.VectorType(T.I32, vl), [0] * vl))


def _interleave(b: ir.IRBuilder, ys: list[ir.Value], vl: int) -> list[ir.Value]:
    """m vectors of VL tiles (ys[c] = column c of each tile) as the m*VL outputs of the row in
    order (tile after tile), VL at a time."""
    m = len(ys)
    wide = list(ys)
    while len(wide) > 1:  # concatenate: m is 2 or 4
        wide = [b.shuffle_vector(wide[i], wide[i + 1],
                                 ir.Constant(ir.VectorType(T.I32, 2 * wide[i].type.count),
                                             list(range(2 * wide[i].type.count))))
                for i in range(0, len(wide), 2)]
    whole = wide[0]  # element c*VL + t = ys[c][t]
    idx = ir.VectorType(T.I32, vl)
    return [b.shuffle_vector(whole, ir.Constant(whole.type, ir.Undefined),
                             ir.Constant(idx, [(p % m) * vl + p // m for p in range(j * vl, (j + 1) * vl)]))
            for j in range(m)]
