"""Matrix product kernels: ``gemm`` (alpha, beta, transposes, a C that broadcasts, an
activation epilogue), ``matmul`` (batched, broadcasting, 1-D operands as numpy) and
``gemm_fused`` where the im2col_gemm pass did not lower it (a run-time right operand).

f32 products run on the packed GEMM engine (irc.targets.cpu.gemm), packing both operands at
run time; transposed operands only swap which packer reads them (a transposed B, a train
step's dy @ W^T, through 8x8 register transposes), alpha scales the packed rows of A, and
bias, residual (beta * C: SGD's momentum on a weight gradient) and the usual activations ride
the engine's epilogue. Batches run one after the other with the GEMM parallel inside, or,
when they are many or small, in parallel with each GEMM on one thread.

Everything else (f64, half types, integers, and vector-shaped products where packing costs
more than it saves) is computed directly: a row of outputs kept in vector registers while
K is walked (A's element broadcast against B's row), or, when B's columns are contiguous
instead of its rows, one vector dot product per output.
"""

from __future__ import annotations

import math

from llvmlite import ir

from irc.ir.graph import Node
from irc.ir.ops.activation import ACTIVATIONS, activation_node
from irc.ir.types import DType
from irc.targets.cpu import gemm
from irc.targets.cpu.kernel import KernelBuilder
from irc.targets.cpu.kernels.lanes import Lanes, add, iota
from irc.targets.cpu.kernels.norm import flat_offset
from irc.targets.cpu.kernels.registry import CpuContext, cpu_kernel
from irc.targets.llvm import lltypes as T
from irc.targets.llvm.elementwise import ACTIVATION_EMITTERS, SCALAR, broadcast_strides

#: Vectors of outputs a direct-kernel row chunk keeps in registers.
ROW_VECTORS = 4
#: Batches of at most this much work (m*n*k) run in parallel, each GEMM on one thread.
SMALL_GEMM = 1 << 18


class _Product:
    """Shapes and element strides of a batch of products Y[b] = A'[b] @ B'[b]:
    A'(i, kk) at a_batch(b) + i*a_rs + kk*a_cs, B'(kk, j) at b_batch(b) + kk*b_rs + j*b_cs,
    Y row-major [batches, m, n]."""

    def __init__(self, node: Node):
        a, b = node.inputs[0].type, node.inputs[1].type
        self.op = node.op
        self.trans_a = self.trans_b = False
        if node.op == "matmul":
            ash = (1, *a.shape) if a.rank == 1 else a.shape
            bsh = (*b.shape, 1) if b.rank == 1 else b.shape
            self.m, self.k = ash[-2:]
            self.n = bsh[-1]
            out_batch = node.outputs[0].shape[:max(len(ash), len(bsh)) - 2]
            self.batch_shape = tuple(out_batch)
            self.a_batch_strides = tuple(s * self.m * self.k for s in broadcast_strides(ash[:-2], out_batch))
            self.b_batch_strides = tuple(s * self.k * self.n for s in broadcast_strides(bsh[:-2], out_batch))
        else:
            self.trans_a = bool(node.attrs.get("trans_a", 0))
            self.trans_b = bool(node.attrs.get("trans_b", 0))
            self.m, self.k = a.shape[::-1] if self.trans_a else a.shape
            self.n = b.shape[0] if self.trans_b else b.shape[1]
            self.batch_shape, self.a_batch_strides, self.b_batch_strides = (), (), ()
        self.batches = math.prod(self.batch_shape)
        self.a_rs, self.a_cs = (1, self.m) if self.trans_a else (self.k, 1)
        self.b_rs, self.b_cs = (1, self.k) if self.trans_b else (self.n, 1)

    def a_batch(self, k: KernelBuilder, bidx: ir.Value) -> ir.Value:
        return flat_offset(k, bidx, self.batch_shape, self.a_batch_strides)

    def b_batch(self, k: KernelBuilder, bidx: ir.Value) -> ir.Value:
        return flat_offset(k, bidx, self.batch_shape, self.b_batch_strides)


def _activation(node: Node) -> tuple[str, dict] | None:
    """(activation op, its attributes) applied last, or None."""
    if node.op in ("gemm", "gemm_fused"):
        return activation_node(node.attrs["act"], node.attrs["act_alpha"], node.attrs["act_beta"])
    return None


def _engine_act(node: Node) -> tuple[str, float, float] | None:
    """The activation as the GEMM engine's epilogue names it: (act, alpha, beta); None for one
    it does not implement."""
    if _activation(node) is None:
        return "none", 0.0, 0.0
    a = node.attrs
    return (a["act"], a["act_alpha"], a["act_beta"]) if a["act"] in ACTIVATIONS else None


class _Finish:
    """The epilogue of each op, on accumulators (vectors or scalars in the accumulation type):

    - gemm: alpha * acc + beta * C, rounded to the output type, then the epilogue op;
    - gemm_fused: acc rounded, + bias, + residual (each rounded: fused.apply_epilogue works in
      the output type), then the activation;
    - matmul: acc.
    ``alpha_done``: alpha was already applied (the engine scales the packed A)."""

    def __init__(self, k: KernelBuilder, node: Node, lv: Lanes, prod: _Product, alpha_done: bool = False):
        self.k, self.node, self.lv, self.prod = k, node, lv, prod
        self.y = k.outs[0]
        self.act = _activation(node)
        a = node.attrs
        self.alpha = 1.0 if alpha_done or node.op != "gemm" else a["alpha"]
        self.c = self.c_strides = None
        self.beta = 1.0
        if node.op == "gemm" and len(k.ins) > 2 and a["beta"] != 0.0:
            self.c, self.beta = k.ins[2], a["beta"]
            self.c_strides = broadcast_strides(self.c.shape, (prod.m, prod.n))
        self.bias = k.ins[2] if node.op == "gemm_fused" and len(k.ins) > 2 else None
        self.residual = k.ins[3] if node.op == "gemm_fused" and len(k.ins) > 3 else None
        if lv.acc.is_int:  # the reference multiplies integers by alpha and beta cast to the type
            self.alpha, self.beta = int(self.alpha), int(self.beta)

    def _operand(self, buf, off: ir.Value, stride: int, lanes: int, mask) -> ir.Value:
        """A value of buf at off, stepping ``stride`` per lane (0: the same value)."""
        lv = self.lv
        if not lanes or stride == 0:
            return lv.splat(lv.load(self.k.ptr(buf), off, 0), lanes)
        if mask is not None:
            return lv.load_masked(self.k.ptr(buf), off, mask)
        return lv.load(self.k.ptr(buf), off, lanes)

    def __call__(self, v: ir.Value, lanes: int, bidx: ir.Value, i: ir.Value, j: ir.Value, mask=None) -> None:
        k, lv = self.k, self.lv
        b, s = k.b, lv.ops(lanes)
        n = self.prod.n
        if self.alpha != 1:
            v = s.mul(v, s.c(self.alpha))
        if self.c is not None:
            cs0, cs1 = self.c_strides
            c = self._operand(self.c, b.add(b.mul(i, k.i64(cs0)), b.mul(j, k.i64(cs1))), cs1, lanes, mask)
            v = s.add(v, c if self.beta == 1 else s.mul(c, s.c(self.beta)))
        v = lv.round_trip(v, lanes)
        if self.bias is not None:
            v = lv.round_trip(s.add(v, self._operand(self.bias, j, 1, lanes, mask)), lanes)
        if self.residual is not None:
            r = self._operand(self.residual, b.add(b.mul(i, k.i64(n)), j), 1, lanes, mask)
            v = lv.round_trip(s.add(v, r), lanes)
        if self.act is not None:
            v = self._apply_act(v, lanes)
        y_off = b.add(b.mul(b.add(b.mul(bidx, k.i64(self.prod.m)), i), k.i64(n)), j)
        if mask is not None:
            lv.store_masked(k.ptr(self.y), y_off, v, mask)
        else:
            lv.store(k.ptr(self.y), y_off, v, lanes)

    def _apply_act(self, v: ir.Value, lanes: int) -> ir.Value:
        lv, b = self.lv, self.k.b
        name, attrs = self.act
        spec = _engine_act(self.node)
        if spec is not None:
            return ACTIVATION_EMITTERS[spec[0]](lv.ops(lanes), v, spec[1], spec[2])
        # The element-wise table's scalar form (elu, selu, softplus, softsign), lane by lane.
        scalar = lambda x: SCALAR[name](self.k, attrs, [lv.acc], lv.acc, x)  # noqa: E731
        if not lanes:
            return scalar(v)
        for lane in range(lanes):
            idx = ir.Constant(T.I32, lane)
            v = b.insert_element(v, scalar(b.extract_element(v, idx)), idx)
        return v


def _check(node: Node) -> str | None:
    dt = node.outputs[0].dtype
    act = _activation(node)
    if act is not None and not dt.is_float and act[0] not in ("relu", "clip"):
        return f"activation '{act[0]}' on {dt} data is not implemented (float activations need float data)"
    return None


# ---------------------------------------------------------------------------- engine path


def _uses_engine(node: Node, prod: _Product) -> bool:
    return node.outputs[0].dtype is DType.f32 and prod.m > 1 and prod.n > 1 and prod.k > 0


def _plan(prod: _Product, ctx: CpuContext) -> tuple[gemm.GemmPlan, bool]:
    """The engine's plan, and whether batches run in parallel (each GEMM then on one thread)."""
    tile = gemm.choose_tile(prod.m, prod.n, ctx.vector_bits)
    per_batch = prod.m * prod.n * prod.k
    batch_parallel = prod.batches > 1 and (per_batch <= SMALL_GEMM or prod.batches >= 2 * ctx.threads)
    return gemm.GemmPlan(prod.m, prod.n, prod.k, tile, 1 if batch_parallel else ctx.threads), batch_parallel


def _scratch(node: Node, ctx: CpuContext) -> int:
    prod = _Product(node)
    if not _uses_engine(node, prod):
        return 0
    plan, _ = _plan(prod, ctx)
    return plan.scratch_per_thread(True, True) * max(1, ctx.threads)


def _scaled(op: gemm.Operand, alpha: float, width: int) -> gemm.Operand:
    """An operand packed as ``op`` packs it, then multiplied by alpha."""

    def pack(k: KernelBuilder, dst, panel, k0, kc) -> None:
        op.pack(k, dst, panel, k0, kc)
        b = k.b
        with k.loop(b.mul(kc, k.i64(width)), name="scale") as i:
            at = b.gep(dst, [i], source_etype=T.F32)
            b.store(b.fmul(b.load(at, typ=T.F32), ir.Constant(T.F32, alpha)), at)

    return gemm.Operand(pack=pack)


#: Lanes of the register transposes that pack a transposed operand.
_TL = 8


def _transpose8(b: ir.IRBuilder, rows: list[ir.Value]) -> list[ir.Value]:
    """The 8x8 transpose of eight <8 x float> rows (vector j holds element j of every row):
    three rounds of two-source shuffles (unpack, 64-bit pairs, 128-bit halves)."""

    def shuf(x, y, idx):
        return b.shuffle_vector(x, y, ir.Constant(ir.VectorType(T.I32, _TL), idx))

    t = []
    for p in range(0, 8, 2):  # rows p and p + 1 interleaved: their elements 0, 1, 4, 5, then 2, 3, 6, 7
        t += [shuf(rows[p], rows[p + 1], [0, 8, 1, 9, 4, 12, 5, 13]),
              shuf(rows[p], rows[p + 1], [2, 10, 3, 11, 6, 14, 7, 15])]
    lo, hi = [0, 1, 8, 9, 4, 5, 12, 13], [2, 3, 10, 11, 6, 7, 14, 15]
    # u[c] (c < 4): columns c and c + 4 of rows 0-3; u[c + 4]: the same of rows 4-7.
    u = [shuf(t[0], t[2], lo), shuf(t[0], t[2], hi), shuf(t[1], t[3], lo), shuf(t[1], t[3], hi),
         shuf(t[4], t[6], lo), shuf(t[4], t[6], hi), shuf(t[5], t[7], lo), shuf(t[5], t[7], hi)]
    out = [None] * 8
    for c in range(4):
        out[c] = shuf(u[c], u[c + 4], [0, 1, 2, 3, 8, 9, 10, 11])
        out[c + 4] = shuf(u[c], u[c + 4], [4, 5, 6, 7, 12, 13, 14, 15])
    return out


def pack_rows_transposing(src, rows: int, ld: int, width: int) -> gemm.Operand:
    """gemm.pack_rows_of (panels of ``width`` rows of a row-major [rows, K] matrix, K-major
    inside the panel), moving 8x8 blocks through register transposes instead of one element at
    a time: the packing of a transposed run-time operand (a train step's B^T of the data
    gradient) then costs about what a copy costs. Partial panels and the K tail (kc mod 8)
    take the element-wise packer."""
    scalar = gemm.pack_rows_of(src, rows, ld, width)
    if width % _TL:
        return scalar
    full_panels = rows // width
    vt = ir.VectorType(T.F32, _TL)

    def pack(k: KernelBuilder, dst, panel, k0, kc) -> None:
        b = k.b
        with b.if_else(b.icmp_signed("<", panel, k.i64(full_panels))) as (full, partial):
            with full:
                base = src(k)
                row0 = b.mul(panel, k.i64(width))
                kc8 = b.and_(kc, k.i64(-_TL))
                with k.loop(kc8, step=_TL, name="pt") as kk:
                    for h in range(0, width, _TL):
                        vs = []
                        for r in range(_TL):
                            off = b.add(b.mul(b.add(row0, k.i64(h + r)), k.i64(ld)), b.add(k0, kk))
                            vs.append(b.load(b.gep(base, [off], source_etype=T.F32), typ=vt, align=4))
                        for j, v in enumerate(_transpose8(b, vs)):
                            at = b.add(b.mul(b.add(kk, k.i64(j)), k.i64(width)), k.i64(h))
                            b.store(v, b.gep(dst, [at], source_etype=T.F32), align=4)
                with k.loop(kc, start=kc8, name="pt1") as kk:
                    for r in range(width):
                        off = b.add(b.mul(b.add(row0, k.i64(r)), k.i64(ld)), b.add(k0, kk))
                        v = b.load(b.gep(base, [off], source_etype=T.F32), typ=T.F32)
                        b.store(v, b.gep(dst, [b.add(b.mul(kk, k.i64(width)), k.i64(r))], source_etype=T.F32))
            with partial:
                scalar.pack(k, dst, panel, k0, kc)

    return gemm.Operand(pack=pack)


def _epilogue_split(node: Node, prod: _Product, k: KernelBuilder):
    """(engine epilogue, bias pointer, residual pointer, post-pass needed). The engine takes
    bias by row or column, a full residual and the named activations; anything else (a scaled
    or scalar C, another activation) is left to one pass over the result."""
    spec = _engine_act(node)
    if spec is None:
        return gemm.Epilogue(), None, None, True
    act, a_alpha, a_beta = spec
    if node.op == "gemm_fused":
        bias = k.ins[2] if len(k.ins) > 2 else None
        res = k.ins[3] if len(k.ins) > 3 else None
        epi = gemm.Epilogue(bias="col" if bias else "none", residual=res is not None, act=act, alpha=a_alpha, beta=a_beta)
        return epi, bias, res, False
    if node.op == "matmul":
        return gemm.Epilogue(), None, None, False
    c = k.ins[2] if len(k.ins) > 2 and node.attrs["beta"] != 0.0 else None
    if c is None:
        return gemm.Epilogue(act=act, alpha=a_alpha, beta=a_beta), None, None, False
    strides = broadcast_strides(c.shape, (prod.m, prod.n))
    beta = node.attrs["beta"]
    if beta == 1.0:
        kind = {(0, 1): "col", (1, 0): "row"}.get(strides)
        if kind is not None and not (kind == "col" and prod.n == 1) and not (kind == "row" and prod.m == 1):
            return gemm.Epilogue(bias=kind, act=act, alpha=a_alpha, beta=a_beta), c, None, False
    if c.shape == (prod.m, prod.n):  # beta * C as a scaled residual (SGD's momentum * velocity)
        return gemm.Epilogue(residual=True, residual_scale=beta, act=act, alpha=a_alpha, beta=a_beta), None, c, False
    return gemm.Epilogue(), None, None, True


def _emit_engine(k: KernelBuilder, node: Node, prod: _Product) -> None:
    ctx = k.state.ctx
    plan, batch_parallel = _plan(prod, ctx)
    tile = plan.tile
    a_buf, b_buf, y = k.ins[0], k.ins[1], k.outs[0]
    per_thread = plan.scratch_per_thread(True, True)
    epi, bias, res, post = _epilogue_split(node, prod, k)
    alpha = node.attrs["alpha"] if node.op == "gemm" else 1.0

    def at(buf, slot):
        return lambda kb: kb.b.gep(kb.ptr(buf), [kb.captured[slot]], inbounds=True, source_etype=T.F32)

    if prod.trans_a:
        a_op = gemm.pack_cols_of(at(a_buf, 0), prod.m, prod.m, tile.mr)
    else:
        a_op = gemm.pack_rows_of(at(a_buf, 0), prod.m, prod.k, tile.mr)
    if alpha != 1.0:
        a_op = _scaled(a_op, alpha, tile.mr)
    if prod.trans_b:
        b_op = pack_rows_transposing(at(b_buf, 1), prod.n, prod.k, tile.nr)
    else:
        b_op = gemm.pack_cols_of(at(b_buf, 1), prod.n, prod.n, tile.nr)

    def one(bidx: ir.Value, tid: ir.Value) -> None:
        b = k.b
        offsets = (prod.a_batch(k, bidx), prod.b_batch(k, bidx), b.mul(bidx, k.i64(prod.m * prod.n)))
        gemm.emit_gemm(
            k, plan, a=a_op, b=b_op, c_ptr=at(y, 2), ldc=prod.n, epi=epi,
            bias_ptr=(lambda kb: kb.ptr(bias)) if bias is not None else None,
            residual_ptr=(lambda kb: kb.ptr(res)) if res is not None else None,
            scratch=lambda kb: kb.b.gep(kb.scratch_ptr(), [kb.b.mul(tid, k.i64(per_thread))], inbounds=True,
                                        source_etype=T.I8),
            captures=offsets)

    if batch_parallel:
        with k.parallel_chunks(prod.batches, prod.m * prod.n * prod.k, max_workers=max(1, ctx.threads)) as (
                lo, hi, tid, _):
            with k.loop(hi, start=lo, name="batch") as bidx:
                one(bidx, tid)
    else:
        with k.loop(prod.batches, name="batch") as bidx:
            one(bidx, k.i64(0))
    if post:
        lv = Lanes(k, y.dtype)
        finish = _Finish(k, node, lv, prod, alpha_done=True)
        with k.parallel_loop(prod.m, work_per_iter=prod.n * 4) as i:
            yp = k.ptr(y)
            lv.for_each(prod.n, lambda j, ln: finish(lv.load(yp, k.b.add(k.b.mul(i, k.i64(prod.n)), j), ln),
                                                      ln, k.i64(0), i, j))


# ---------------------------------------------------------------------------- direct path


def _emit_rows(k: KernelBuilder, node: Node, prod: _Product) -> None:
    """B's rows contiguous: per (batch, row of A, chunk of columns) the outputs stay in
    registers while kk walks K: acc += A'(i, kk) * B'(kk, chunk)."""
    lv = Lanes(k, k.outs[0].dtype)
    vl = lv.vl
    u_count = min(ROW_VECTORS, math.ceil(prod.n / vl))
    chunk = u_count * vl
    chunks = math.ceil(prod.n / chunk)
    finish = _Finish(k, node, lv, prod)
    a_buf, b_buf = k.ins[0], k.ins[1]
    with k.parallel_loop(prod.batches * prod.m * chunks, work_per_iter=chunk * max(prod.k, 1)) as u:
        b = k.b
        row, c = b.sdiv(u, k.i64(chunks)), b.srem(u, k.i64(chunks))
        bidx, i = b.sdiv(row, k.i64(prod.m)), b.srem(row, k.i64(prod.m))
        a_row = b.add(prod.a_batch(k, bidx), b.mul(i, k.i64(prod.a_rs)))
        b_base = prod.b_batch(k, bidx)
        j0 = b.mul(c, k.i64(chunk))
        cols = [b.add(j0, k.i64(v * vl)) for v in range(u_count)]
        masks = [b.icmp_signed("<", b.add(lv.splat(b.trunc(col, T.I32)), iota(vl)),
                               lv.splat(ir.Constant(T.I32, prod.n))) for col in cols]
        accs = [lv.slot(vl, lv.v.c(0)) for _ in range(u_count)]
        with k.loop(prod.k, name="kk") as kk:
            av = lv.splat(lv.load(k.ptr(a_buf), b.add(a_row, b.mul(kk, k.i64(prod.a_cs))), 0))
            b_row = b.add(b_base, b.mul(kk, k.i64(prod.b_rs)))
            for col, mask, slot in zip(cols, masks, accs):
                bv = lv.load_masked(k.ptr(b_buf), b.add(b_row, col), mask)
                b.store(_fma(lv, av, bv, lv.get(slot)), slot)
        for col, mask, slot in zip(cols, masks, accs):
            finish(lv.get(slot), vl, bidx, i, col, mask)


def _emit_dots(k: KernelBuilder, node: Node, prod: _Product) -> None:
    """B's columns contiguous (B transposed) or a single column: each output is a vector dot
    product of A's row and B's column."""
    lv = Lanes(k, k.outs[0].dtype)
    finish = _Finish(k, node, lv, prod)
    a_buf, b_buf = k.ins[0], k.ins[1]
    with k.parallel_loop(prod.batches * prod.m, work_per_iter=prod.n * max(prod.k, 1)) as row:
        b = k.b
        bidx, i = b.sdiv(row, k.i64(prod.m)), b.srem(row, k.i64(prod.m))
        a_row = b.add(prod.a_batch(k, bidx), b.mul(i, k.i64(prod.a_rs)))
        b_base = prod.b_batch(k, bidx)
        with k.loop(prod.n, name="j") as j:
            b_col = b.add(b_base, b.mul(j, k.i64(prod.b_cs)))

            def product(kk, lanes):
                a_off = b.add(a_row, b.mul(kk, k.i64(prod.a_cs)))
                b_off = b.add(b_col, b.mul(kk, k.i64(prod.b_rs)))
                if not lanes:
                    return lv.s.mul(lv.load(k.ptr(a_buf), a_off, 0), lv.load(k.ptr(b_buf), b_off, 0))
                return lv.v.mul(lv.load_strided(k.ptr(a_buf), a_off, lanes, prod.a_cs),
                                lv.load_strided(k.ptr(b_buf), b_off, lanes, prod.b_rs))

            finish(lv.reduce(prod.k, product, add, 0), 0, bidx, i, j)


def _fma(lv: Lanes, a: ir.Value, b: ir.Value, acc: ir.Value) -> ir.Value:
    s = lv.v
    return s.intrinsic("fma", a, b, acc) if lv.acc.is_float else s.add(acc, s.mul(a, b))


@cpu_kernel("gemm", "matmul", "gemm_fused", scratch=_scratch, check=_check)
def _matrix_product(k: KernelBuilder, node: Node) -> None:
    if k.outs[0].size == 0:
        return
    prod = _Product(node)
    if _uses_engine(node, prod):
        _emit_engine(k, node, prod)
    elif prod.b_cs == 1 and prod.n > 1:
        _emit_rows(k, node, prod)
    else:
        _emit_dots(k, node, prod)
