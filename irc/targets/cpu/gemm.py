"""The f32 GEMM engine of the CPU target: packed, cache-blocked, register-tiled.

C[M, N] = A[M, K] @ B[K, N], then the fused epilogue act(C + bias + residual).

- Micro-kernel: an MR x NR tile of C held in MR * NR/VL vector registers across the K loop;
  per k it loads NR/VL vectors of B and broadcasts MR scalars of A into fused multiply-adds.
  One LLVM function per (tile, edge sizes, epilogue), reached for every tile of C.
- Packing: A as row panels [M/MR][K][MR] and B as column panels [N/NR][K][NR] (pack_panels),
  so the micro-kernel streams both contiguously. Constant operands (weights) are packed once at
  compile time; run-time operands are packed per KC-slice into per-thread buffers.
- Blocking (BLIS order): per thread, for each chunk of its column panels, for each KC slice,
  pack B, then for each MC block of rows pack A, then run every (row panel, column panel) tile.
  A packed B micro-panel (KC x NR) stays in L1 across the row panels, an MC x KC block of A in L2.
- Threads split C into a grid of (row panels x column panels) blocks, one block per thread,
  the grid chosen per shape (``GemmPlan.grid``): the slowest block's multiply-adds plus the A and
  B it streams or packs. A thread's block reads (and packs) its rows of A and its columns of B,
  so a batch-1 layer with many output channels and few pixels splits rows (each thread streams
  half the weights) and a wide one splits columns. Every tile of C is computed by one micro-kernel over the same
  K slices whatever the grid, so results are bit-identical at any thread count. Below
  ``PARALLEL_MIN_MACS`` the GEMM runs on the calling thread: waking the pool costs more.

The tile shape is chosen per GEMM by a written-down cost rule (``choose_tile``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from llvmlite import ir

from irc.ir.types import DType
from irc.targets.cpu.kernel import KernelBuilder, ModuleState
from irc.targets.llvm import lltypes as T
from irc.targets.llvm.scalar import Scalar

#: K slice per pass over the tiles: a KC x NR panel of B fits in L1 (KC=256, NR=64: 64 KB spans
#: L1+L2 on Zen 4 and still measured best; see benchmarks/cpu_inference.py --gemm).
KC = 256
#: Rows of A per block (an MC x KC block of packed A stays in L2).
MC_ROWS = 144
#: Columns of B per thread chunk (a KC x NC block of packed B stays in L3).
NC_COLS = 2048
#: Cost of streaming one float of A or B through a thread's block, in multiply-add times (an
#: AVX2 core does 16 multiply-adds a cycle and reads 2 to 8 floats a cycle from L3 or memory).
STREAM_MACS = 4
#: Further cost of a float packed at run time (a scalar gather and scatter, 1 to 2 cycles).
PACK_MACS = 16
#: Fewest multiply-adds worth a parallel GEMM: a job costs the caller 2 to 3 us (a two-chunk job
#: of trivial chunks against running both inline, measured on the AVX2 machine), a worker that
#: went to sleep tens of microseconds more, and on a loaded machine the thread running the other
#: half may lose its core. 2**20 is about 30 us on one core: half of it saved still pays.
PARALLEL_MIN_MACS = 1 << 20


@dataclass(frozen=True)
class Tile:
    mr: int
    nr: int
    vl: int  # vector lanes (16 for AVX-512, 8 for AVX2, 4 for SSE)

    @property
    def nv(self) -> int:
        return self.nr // self.vl


def tile_candidates(vector_bits: int) -> list[tuple[Tile, float]]:
    """(tile, relative throughput) pairs measured on the target class (1.0 = best)."""
    vl = vector_bits // 32
    if vl >= 16:
        return [(Tile(6, 64, 16), 1.0), (Tile(8, 32, 16), 0.95), (Tile(12, 32, 16), 0.97), (Tile(14, 16, 16), 0.80)]
    if vl == 8:
        return [(Tile(6, 16, 8), 1.0), (Tile(4, 24, 8), 0.95), (Tile(8, 8, 8), 0.85)]
    return [(Tile(4, 8, 4), 1.0), (Tile(6, 4, 4), 0.9)]


def choose_tile(m: int, n: int, vector_bits: int) -> Tile:
    """Cost rule: minimise padded work / throughput, where padded work is the tile grid covering
    M x N (ceil(M/MR)*MR * ceil(N/NR)*NR). Small or ragged matrices then pick narrow tiles."""
    best = None
    for tile, speed in tile_candidates(vector_bits):
        padded = math.ceil(m / tile.mr) * tile.mr * math.ceil(n / tile.nr) * tile.nr
        cost = padded / speed
        if best is None or cost < best[0]:
            best = (cost, tile)
    return best[1]


@dataclass(frozen=True)
class Epilogue:
    """What happens to a finished tile: bias per row ('row') or column ('col'), a residual of
    C's layout (times ``residual_scale``: an optimizer's momentum), then an activation
    (irc.ir.ops.activation.ACTIVATIONS)."""

    bias: str = "none"
    residual: bool = False
    act: str = "none"
    alpha: float = 0.0
    beta: float = 0.0
    residual_scale: float = 1.0


# --------------------------------------------------------------------------- micro-kernel

MODE_ACCUMULATE = 1  # add to what C holds (a later K slice)
MODE_FINISH = 2  # apply the epilogue (the last K slice)


def _splat(b: ir.IRBuilder, s: ir.Value, vt: ir.VectorType) -> ir.Value:
    v = b.insert_element(ir.Constant(vt, ir.Undefined), s, ir.Constant(T.I32, 0))
    return b.shuffle_vector(v, ir.Constant(vt, ir.Undefined), ir.Constant(ir.VectorType(T.I32, vt.count), [0] * vt.count))


def _mask(lanes: int, valid: int) -> ir.Constant:
    return ir.Constant(ir.VectorType(T.I1, lanes), [1 if i < valid else 0 for i in range(lanes)])


def apply_activation(s: Scalar, v: ir.Value, epi: Epilogue) -> ir.Value:
    """The epilogue activation on a vector (or scalar) of f32."""
    from irc.targets.llvm.elementwise import ACTIVATION_EMITTERS

    if epi.act == "none":
        return v
    return ACTIVATION_EMITTERS[epi.act](s, v, epi.alpha, epi.beta)


def microkernel(state: ModuleState, tile: Tile, mr: int, nr: int, ldc: int, epi: Epilogue) -> ir.Function:
    """``uk(A, B, C, bias, R, kc, mode)``: C[0:mr, 0:nr] (row stride ldc) = / += the product of
    an MR-row panel of A and an NR-column panel of B over kc steps; with MODE_FINISH the
    epilogue runs. ``bias`` points at this tile's first row (row bias) or column (col bias)."""
    key = ("uk", tile, mr, nr, ldc, epi)
    fn = state.kernels.get(key)
    if fn is not None:
        return fn
    vl, nv, MR, NR = tile.vl, tile.nv, tile.mr, tile.nr
    vt = ir.VectorType(T.F32, vl)
    fn = ir.Function(state.module, ir.FunctionType(T.VOID, [T.PTR] * 5 + [T.I64, T.I32]),
                     state.unique(f"uk{MR}x{NR}_{mr}x{nr}"))
    fn.linkage = "internal"
    fn.attributes.add("noinline")
    fn.attributes.add("nounwind")
    a_p, b_p, c_p, bias_p, r_p, kc, mode = fn.args
    for arg in (a_p, b_p, c_p, bias_p, r_p):
        arg.add_attribute("noalias")
    fma = state.declare(f"llvm.fma.v{vl}f32", vt, [vt, vt, vt])
    entry = fn.append_basic_block("entry")
    loop = fn.append_basic_block("k")
    done = fn.append_basic_block("store")
    b = ir.IRBuilder(entry)
    b.branch(loop)
    b.position_at_end(loop)
    k = b.phi(T.I64, name="k")
    k.add_incoming(ir.Constant(T.I64, 0), entry)
    zero = ir.Constant(vt, None)
    acc = [[b.phi(vt) for _ in range(nv)] for _ in range(MR)]
    for row in acc:
        for a in row:
            a.add_incoming(zero, entry)
    b_row = b.gep(b_p, [b.mul(k, ir.Constant(T.I64, NR))], inbounds=True, source_etype=T.F32)
    bv = [b.load(b.gep(b_row, [ir.Constant(T.I64, v * vl)], inbounds=True, source_etype=T.F32), typ=vt, align=64)
          for v in range(nv)]
    a_row = b.gep(a_p, [b.mul(k, ir.Constant(T.I64, MR))], inbounds=True, source_etype=T.F32)
    nxt = []
    for r in range(MR):
        av = _splat(b, b.load(b.gep(a_row, [ir.Constant(T.I64, r)], inbounds=True, source_etype=T.F32), typ=T.F32), vt)
        nxt.append([b.call(fma, [av, bv[v], acc[r][v]]) for v in range(nv)])
    k1 = b.add(k, ir.Constant(T.I64, 1), flags=["nsw"])
    k.add_incoming(k1, loop)
    for r in range(MR):
        for v in range(nv):
            acc[r][v].add_incoming(nxt[r][v], loop)
    b.cbranch(b.icmp_signed("<", k1, kc), loop, done)

    b.position_at_end(done)
    sw_blocks = {}
    exit_bb = fn.append_basic_block("exit")
    for m in range(4):
        sw_blocks[m] = fn.append_basic_block(f"mode{m}")
    sw = b.switch(mode, sw_blocks[0])
    for m in (1, 2, 3):
        sw.add_case(ir.Constant(T.I32, m), sw_blocks[m])
    maskload = state.declare(f"llvm.masked.load.v{vl}f32.p0", vt, [T.PTR, T.I32, ir.VectorType(T.I1, vl), vt])
    maskstore = state.declare(f"llvm.masked.store.v{vl}f32.p0", T.VOID, [vt, T.PTR, T.I32, ir.VectorType(T.I1, vl)])
    for m, bb in sw_blocks.items():
        b.position_at_end(bb)
        s = Scalar(_Shim(b, state), DType.f32, vl)
        for r in range(mr):
            for v in range(nv):
                valid = min(vl, nr - v * vl)
                if valid <= 0:
                    continue
                off = ir.Constant(T.I64, r * ldc + v * vl)
                cptr = b.gep(c_p, [off], inbounds=True, source_etype=T.F32)
                mask = _mask(vl, valid) if valid < vl else None

                def load(ptr, mask=mask):
                    if mask is None:
                        return b.load(ptr, typ=vt, align=4)
                    return b.call(maskload, [ptr, ir.Constant(T.I32, 4), mask, zero])

                val = nxt[r][v]
                if m & MODE_ACCUMULATE:
                    val = b.fadd(val, load(cptr))
                if m & MODE_FINISH:
                    if epi.bias == "row":
                        bs = b.load(b.gep(bias_p, [ir.Constant(T.I64, r)], inbounds=True, source_etype=T.F32), typ=T.F32)
                        val = b.fadd(val, _splat(b, bs, vt))
                    elif epi.bias == "col":
                        val = b.fadd(val, load(b.gep(bias_p, [ir.Constant(T.I64, v * vl)], inbounds=True,
                                                     source_etype=T.F32)))
                    if epi.residual:
                        res = load(b.gep(r_p, [off], inbounds=True, source_etype=T.F32))
                        if epi.residual_scale != 1.0:
                            res = b.fmul(res, _splat(b, ir.Constant(T.F32, epi.residual_scale), vt))
                        val = b.fadd(val, res)
                    val = apply_activation(s, val, epi)
                if mask is None:
                    b.store(val, cptr, align=4)
                else:
                    b.call(maskstore, [val, cptr, ir.Constant(T.I32, 4), mask])
        b.branch(exit_bb)
    b.position_at_end(exit_bb)
    b.ret_void()
    state.kernels[key] = fn
    return fn


class _Shim:
    """The piece of KernelBuilder that Scalar needs, for code emitted outside a kernel."""

    def __init__(self, b: ir.IRBuilder, state: ModuleState):
        self.b = b
        self.state = state


# --------------------------------------------------------------------------- operands


@dataclass
class Operand:
    """How the driver reaches panels of A (row panels) or B (column panels).

    ``prepacked(k, panel, k0)``: pointer to the panel's K slice starting at k0 in a packed
    constant; or ``pack(k, dst, panel, k0, kc)``: emit code that packs the slice into ``dst``.
    Exactly one of the two is set. Both run inside the parallel body (use ``k.ptr``)."""

    prepacked: Callable[[KernelBuilder, ir.Value, ir.Value], ir.Value] | None = None
    pack: Callable[[KernelBuilder, ir.Value, ir.Value, ir.Value, ir.Value], None] | None = None


def packed_constant(buf_index: int, width: int, k_total: int, base: Callable | None = None) -> Operand:
    """Operand over a compile-time packed array [panels, K, width] (argument ``buf_index``)."""

    def at(k: KernelBuilder, panel: ir.Value, k0: ir.Value) -> ir.Value:
        ptr = k.ptr(buf_index) if base is None else base(k)
        off = k.b.add(k.b.mul(panel, k.i64(k_total * width)), k.b.mul(k0, k.i64(width)))
        return k.b.gep(ptr, [off], inbounds=True, source_etype=T.F32)

    return Operand(prepacked=at)


def pack_rows_of(src: Callable[[KernelBuilder], ir.Value], rows: int, ld: int, width: int) -> Operand:
    """Operand packing row panels of a row-major [rows, K] matrix (leading dimension ld):
    dst[kk*width + r] = src[(panel*width + r)*ld + k0 + kk], zero beyond ``rows``."""

    def pack(k: KernelBuilder, dst: ir.Value, panel: ir.Value, k0: ir.Value, kc: ir.Value) -> None:
        b = k.b
        base = src(k)
        for r in range(width):
            row = b.add(b.mul(panel, k.i64(width)), k.i64(r))
            inside = b.icmp_signed("<", row, k.i64(rows))
            row_ptr = b.gep(base, [b.add(b.mul(row, k.i64(ld)), k0)], inbounds=False, source_etype=T.F32)
            with b.if_else(inside) as (then, other):
                with then:
                    with k.loop(kc, name="pk") as kk:
                        v = b.load(b.gep(row_ptr, [kk], source_etype=T.F32), typ=T.F32)
                        b.store(v, b.gep(dst, [b.add(b.mul(kk, k.i64(width)), k.i64(r))], source_etype=T.F32))
                with other:
                    with k.loop(kc, name="pz") as kk:
                        b.store(ir.Constant(T.F32, 0.0),
                                b.gep(dst, [b.add(b.mul(kk, k.i64(width)), k.i64(r))], source_etype=T.F32))

    return Operand(pack=pack)


def pack_cols_of(src: Callable[[KernelBuilder], ir.Value], cols: int, ld: int, width: int) -> Operand:
    """Operand packing column panels of a row-major [K, cols] matrix (leading dimension ld):
    dst[kk*width + c] = src[(k0 + kk)*ld + panel*width + c], zero beyond ``cols``."""

    def pack(k: KernelBuilder, dst: ir.Value, panel: ir.Value, k0: ir.Value, kc: ir.Value) -> None:
        b = k.b
        base = src(k)
        c0 = b.mul(panel, k.i64(width))
        n_valid = b.sub(k.i64(cols), c0)
        full = b.icmp_signed(">=", n_valid, k.i64(width))
        with k.loop(kc, name="pk") as kk:
            s_row = b.gep(base, [b.add(b.mul(b.add(k0, kk), k.i64(ld)), c0)], source_etype=T.F32)
            d_row = b.gep(dst, [b.mul(kk, k.i64(width))], source_etype=T.F32)
            with b.if_else(full) as (then, other):
                with then:
                    k.memcpy(d_row, s_row, width * 4)
                with other:
                    with k.loop(width, name="pc") as c:
                        inside = b.icmp_signed("<", c, n_valid)
                        with b.if_else(inside) as (t2, o2):
                            with t2:
                                v = b.load(b.gep(s_row, [c], source_etype=T.F32), typ=T.F32)
                                b.store(v, b.gep(d_row, [c], source_etype=T.F32))
                            with o2:
                                b.store(ir.Constant(T.F32, 0.0), b.gep(d_row, [c], source_etype=T.F32))

    return Operand(pack=pack)


# --------------------------------------------------------------------------- driver


@dataclass
class GemmPlan:
    """Static facts of one GEMM call inside a kernel."""

    m: int
    n: int
    k: int
    tile: Tile
    threads: int

    @property
    def m_panels(self) -> int:
        return math.ceil(self.m / self.tile.mr)

    @property
    def n_panels(self) -> int:
        return math.ceil(self.n / self.tile.nr)

    @property
    def kc(self) -> int:
        return min(KC, self.k)

    def grid(self, pack_a: bool, pack_b: bool) -> tuple[int, int]:
        """(row parts, column parts): the blocks of C the threads share, one per thread, when A
        and B are packed at run time (``pack_a``, ``pack_b``) or were packed at compile time."""
        return grid_for(self.m_panels, self.n_panels, self.k, self.tile, self.threads, self.m * self.n * self.k,
                        pack_a, pack_b)

    @property
    def mc_panels(self) -> int:
        return max(1, min(self.m_panels, MC_ROWS // self.tile.mr))

    @property
    def nc_panels(self) -> int:
        return max(1, min(self.n_panels, NC_COLS // self.tile.nr))

    def scratch_per_thread(self, pack_a: bool, pack_b: bool) -> int:
        a = self.mc_panels * self.tile.mr * self.kc * 4 if pack_a else 0
        b = self.nc_panels * self.tile.nr * self.kc * 4 if pack_b else 0
        return (a + 63) // 64 * 64 + (b + 63) // 64 * 64


def scratch_bytes(plan: GemmPlan, pack_a: bool, pack_b: bool) -> int:
    return plan.scratch_per_thread(pack_a, pack_b) * max(1, plan.threads)


def block_cost(row_panels: int, col_panels: int, k: int, tile: Tile, pack_a: bool = False,
               pack_b: bool = False) -> int:
    """Multiply-add times of one thread's block: its padded tiles, plus A streamed (and packed,
    when ``pack_a``) once per NC chunk of its columns, B packed once (when ``pack_b``) and
    streamed once per MC block of its rows."""
    rows, cols = row_panels * tile.mr, col_panels * tile.nr
    a_passes = math.ceil(col_panels / max(1, NC_COLS // tile.nr))
    b_passes = math.ceil(row_panels / max(1, MC_ROWS // tile.mr))
    a = rows * a_passes * (STREAM_MACS + PACK_MACS * pack_a)
    b = cols * (b_passes * STREAM_MACS + PACK_MACS * pack_b)
    return rows * cols * k + k * (a + b)


def grid_for(m_panels: int, n_panels: int, k: int, tile: Tile, threads: int, macs: int, pack_a: bool = False,
             pack_b: bool = False) -> tuple[int, int]:
    """The (row parts, column parts) grid of at most ``threads`` blocks whose largest block costs
    least (block_cost); fewer blocks on a tie. One block below PARALLEL_MIN_MACS."""
    if threads <= 1 or macs < PARALLEL_MIN_MACS:
        return 1, 1
    best = None
    for pm in range(1, min(threads, m_panels) + 1):
        for pn in range(1, min(threads // pm, n_panels) + 1):
            cost = block_cost(math.ceil(m_panels / pm), math.ceil(n_panels / pn), k, tile, pack_a, pack_b)
            key = (cost, pm * pn, pm)
            if best is None or key < best[0]:
                best = (key, (pm, pn))
    return best[1]


def emit_gemm(k: KernelBuilder, plan: GemmPlan, a: Operand, b: Operand,
              c_ptr: Callable[[KernelBuilder], ir.Value], ldc: int, epi: Epilogue,
              bias_ptr: Callable[[KernelBuilder], ir.Value] | None = None,
              residual_ptr: Callable[[KernelBuilder], ir.Value] | None = None,
              scratch: Callable[[KernelBuilder], ir.Value] | None = None,
              captures: tuple = ()) -> None:
    """Emit C = A @ B (+ epilogue) into kernel ``k``. Pointer callbacks are evaluated inside
    the parallel body, where ``captures`` (i64 values) are available as ``k.captured``."""
    tile = plan.tile
    per_thread = plan.scratch_per_thread(a.pack is not None, b.pack is not None)
    a_bytes = (plan.mc_panels * tile.mr * plan.kc * 4 + 63) // 64 * 64 if a.pack is not None else 0
    pm, pn = plan.grid(a.pack is not None, b.pack is not None)
    blocks = pm * pn
    work = plan.m * plan.n * plan.k // blocks
    with k.parallel_chunks(blocks, work, captures=captures, max_workers=blocks) as (lo, hi, tid, caps):
        k.captured = caps
        bb = k.b
        thread_scratch = None
        if per_thread:
            thread_scratch = bb.gep(scratch(k), [bb.mul(tid, k.i64(per_thread))], inbounds=True, source_etype=T.I8)
        a_buf = thread_scratch
        b_buf = bb.gep(thread_scratch, [k.i64(a_bytes)], inbounds=True, source_etype=T.I8) if per_thread else None
        c_base = c_ptr(k)
        bias_base = bias_ptr(k) if bias_ptr else ir.Constant(T.PTR, None)
        res_base = residual_ptr(k) if residual_ptr else ir.Constant(T.PTR, None)
        # A chunk holds one block per thread (all of them when the pool runs fewer threads than
        # the grid has blocks); block ``cell`` is rows part cell // pn, columns part cell % pn.
        with k.loop(hi, start=lo, name="block") as cell:
            im, jn = bb.sdiv(cell, k.i64(pn)), bb.srem(cell, k.i64(pn))
            m_lo, m_hi = _share(bb, k, im, plan.m_panels, pm), _share(bb, k, bb.add(im, k.i64(1)), plan.m_panels, pm)
            n_lo, n_hi = _share(bb, k, jn, plan.n_panels, pn), _share(bb, k, bb.add(jn, k.i64(1)), plan.n_panels, pn)
            _tiles(k, plan, a, b, a_buf, b_buf, c_base, ldc, epi, bias_base, res_base, m_lo, m_hi, n_lo, n_hi)
        k.captured = []


def _share(b: ir.IRBuilder, k: KernelBuilder, part: ir.Value, panels: int, parts: int) -> ir.Value:
    """First panel of ``part`` when ``panels`` are split into ``parts`` near-equal runs."""
    if parts == 1:
        return b.mul(part, k.i64(panels))
    return b.sdiv(b.mul(part, k.i64(panels)), k.i64(parts))


def _tiles(k, plan: GemmPlan, a: Operand, b: Operand, a_buf, b_buf, c_base, ldc, epi, bias_base, res_base,
           m_lo, m_hi, n_lo, n_hi) -> None:
    bb = k.b
    tile = plan.tile
    kc_full = plan.kc
    m_rem = plan.m - (plan.m_panels - 1) * tile.mr
    n_rem = plan.n - (plan.n_panels - 1) * tile.nr
    kernels = {}
    for mr in {tile.mr, m_rem}:
        for nr in {tile.nr, n_rem}:
            kernels[mr, nr] = microkernel(k.state, tile, mr, nr, ldc, epi)

    def panel(op: Operand, buf, idx, first, size: int, pc):
        """Panel ``idx`` at depth ``pc``: prepacked, or in a buffer packed with panels ``first``,
        ``first`` + 1, ... of ``size`` floats."""
        if op.pack is None:
            return op.prepacked(k, idx, pc)
        return bb.gep(buf, [bb.mul(bb.sub(idx, first), k.i64(size))], source_etype=T.F32)

    with k.loop(n_hi, start=n_lo, step=plan.nc_panels, name="jc") as jc:
        jc_end = _min(bb, bb.add(jc, k.i64(plan.nc_panels)), n_hi)
        with k.loop(plan.k, step=kc_full, name="pc") as pc:
            kc = _min(bb, k.i64(kc_full), bb.sub(k.i64(plan.k), pc))
            is_first = bb.icmp_signed("==", pc, k.i64(0))
            is_last = bb.icmp_signed("==", bb.add(pc, kc), k.i64(plan.k))
            mode = bb.or_(bb.select(is_first, ir.Constant(T.I32, 0), ir.Constant(T.I32, MODE_ACCUMULATE)),
                          bb.select(is_last, ir.Constant(T.I32, MODE_FINISH), ir.Constant(T.I32, 0)))
            if b.pack is not None:
                with k.loop(jc_end, start=jc, name="pb") as j:
                    b.pack(k, panel(b, b_buf, j, jc, kc_full * tile.nr, pc), j, pc, kc)
            with k.loop(m_hi, start=m_lo, step=plan.mc_panels, name="ic") as ic:
                ic_end = _min(bb, bb.add(ic, k.i64(plan.mc_panels)), m_hi)
                if a.pack is not None:
                    with k.loop(ic_end, start=ic, name="pa") as i:
                        a.pack(k, panel(a, a_buf, i, ic, kc_full * tile.mr, pc), i, pc, kc)
                with k.loop(jc_end, start=jc, name="jr") as j:
                    b_ptr = panel(b, b_buf, j, jc, kc_full * tile.nr, pc)
                    n_last = bb.icmp_signed("==", j, k.i64(plan.n_panels - 1))
                    with k.loop(ic_end, start=ic, name="ir") as i:
                        a_ptr = panel(a, a_buf, i, ic, kc_full * tile.mr, pc)
                        m_last = bb.icmp_signed("==", i, k.i64(plan.m_panels - 1))
                        row0, col0 = bb.mul(i, k.i64(tile.mr)), bb.mul(j, k.i64(tile.nr))
                        c_off = bb.add(bb.mul(row0, k.i64(ldc)), col0)
                        c_t = bb.gep(c_base, [c_off], source_etype=T.F32)
                        r_t = bb.gep(res_base, [c_off], source_etype=T.F32) if epi.residual else res_base
                        if epi.bias == "row":
                            bias_t = bb.gep(bias_base, [row0], source_etype=T.F32)
                        elif epi.bias == "col":
                            bias_t = bb.gep(bias_base, [col0], source_etype=T.F32)
                        else:
                            bias_t = bias_base
                        args = [a_ptr, b_ptr, c_t, bias_t, r_t, kc, mode]
                        _dispatch(bb, kernels, tile, m_rem, n_rem, m_last, n_last, args)


def _dispatch(b: ir.IRBuilder, kernels, tile: Tile, m_rem: int, n_rem: int, m_last, n_last, args) -> None:
    """Call the micro-kernel variant for this tile: edge variants only where the last row or
    column panel is partial."""

    def call(mr: int, nr: int) -> None:
        b.call(kernels[mr, nr], args)

    def by_cols(mr: int) -> None:
        if n_rem == tile.nr:
            call(mr, tile.nr)
            return
        with b.if_else(n_last) as (last, other):
            with last:
                call(mr, n_rem)
            with other:
                call(mr, tile.nr)

    if m_rem == tile.mr:
        by_cols(tile.mr)
        return
    with b.if_else(m_last) as (last, other):
        with last:
            by_cols(m_rem)
        with other:
            by_cols(tile.mr)


def _min(b: ir.IRBuilder, x: ir.Value, y: ir.Value) -> ir.Value:
    return b.select(b.icmp_signed("<", x, y), x, y)
