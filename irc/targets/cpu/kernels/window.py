"""The sliding-window loop nest shared by direct convolution and pooling.

The output of one (sample, channel) is a set of rows along the last spatial axis; a row is
cut into vectors of ``vl`` outputs. A *tile* is R rows x U vectors x B channels of outputs,
held in R*U*B vector registers while the kernel walks every tap of the window (and, for
convolution, every input channel), so each output is written once. Taps that fall into the
padding are masked lanes (masked loads never touch memory outside the input), which handles
pads, strides, dilations, ceil_mode windows and short rows alike with no scalar edge code.

Loop order, outermost first: tap along the row (kx; the lane masks depend only on it, so
they are computed once per kx), taps along the other axes (row validity and addresses),
input channels, then the tile's rows, vectors and channels. For a kx where a vector lies
wholly inside the input, its loads are plain (strided) loads and need no mask.

Transposed convolution reads an input upsampled by its stride: lanes that fall between
input elements are masked like padding (see ``Geometry.upsample``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from llvmlite import ir

from irc.targets.cpu.kernel import KernelBuilder
from irc.targets.cpu.kernels.lanes import Lanes, iota, maximum
from irc.targets.llvm import lltypes as T
from irc.targets.llvm.builder import c_strides

#: Accumulators per tile: enough independent chains to cover FMA latency on two ports,
#: few enough to stay in 32 vector registers next to the loaded inputs.
TILE_ACCUMULATORS = 8
#: Transposed convolutions unroll the taps along the row up to this many (see ``column``).
MAX_UNROLLED_TAPS = 16


@dataclass(frozen=True)
class Geometry:
    """Spatial sizes of one windowed op. Output o reads, at tap j, input position
    o * stride + j * dilation - pad (the ``begin`` pad; lanes past the input end are masked),
    divided by ``up`` where it divides exactly (and is padding where it does not)."""

    in_size: tuple[int, ...]
    out_size: tuple[int, ...]
    kernel: tuple[int, ...]
    strides: tuple[int, ...]
    dilations: tuple[int, ...]
    pads: tuple[int, ...]
    #: Transposed convolution reads input i at upsampled position i * up (zeros between).
    upsample: tuple[int, ...] | None = None

    @property
    def up(self) -> tuple[int, ...]:
        return self.upsample or (1,) * len(self.in_size)

    @property
    def rows(self) -> int:
        """Output rows per plane (all axes but the last)."""
        return math.prod(self.out_size[:-1])

    @property
    def row_taps(self) -> int:
        return math.prod(self.kernel[:-1])


@dataclass(frozen=True)
class Tile:
    rows: int
    vectors: int
    channels: int


def _least_waste(n: int, most: int) -> int:
    """The block size <= most that covers n with the least padding (largest on ties)."""
    most = max(1, min(most, n))
    return min(range(most, 0, -1), key=lambda b: math.ceil(n / b) * b - n)


def plan_tile(geom: Geometry, vl: int, channels: int) -> Tile:
    """Channels per tile (a divisor of ``channels`` up to 4), then vectors along the row, then
    rows, each chosen to waste the least work on partial blocks."""
    ch = max(d for d in range(1, min(4, channels) + 1) if channels % d == 0)
    vectors = math.ceil(geom.out_size[-1] / vl)
    u = _least_waste(vectors, max(1, TILE_ACCUMULATORS // ch))
    r = _least_waste(geom.rows, max(1, TILE_ACCUMULATORS // (ch * u)))
    return Tile(r, u, ch)


@dataclass
class TileSite:
    """Where one accumulator of a finished tile goes: its channel in the tile, its flat row,
    the first output index along the row and the lanes that exist."""

    channel: int
    row: ir.Value
    o0: ir.Value
    mask: ir.Value


def emit_windows(
    k: KernelBuilder,
    lv: Lanes,
    geom: Geometry,
    tile: Tile,
    *,
    planes: int,
    channel_loop: int,
    input_plane: Callable[[ir.Value, ir.Value], ir.Value],
    weight: Callable[[ir.Value, int, ir.Value, ir.Value, ir.Value], ir.Value] | None,
    combine: str,
    fill: float | int,
    init: Callable[[ir.Value, int], ir.Value],
    finish: Callable[[ir.Value, TileSite, ir.Value], None],
    cost: int = 1,
) -> None:
    """Emit the whole op: ``planes`` groups of output channels (tile.channels each), every
    tile of their rows in parallel.

    - input_plane(plane, ci): pointer to the input plane that channel-loop step ``ci`` reads;
    - weight(plane, j, ci, row_tap, kx): the scalar weight of tile channel j (None: no weights);
    - combine: "fma" (acc += w * x), "add" (acc += x) or "max" (acc = max(acc, x));
    - fill: the value of taps outside the input; init(plane, j): the accumulator's start;
    - finish(plane, site, acc): write one accumulator (called inside the tile's code).
    """
    vl = lv.vl
    b_rows = math.ceil(geom.rows / tile.rows)
    vectors = math.ceil(geom.out_size[-1] / vl)
    b_vecs = math.ceil(vectors / tile.vectors)
    units = planes * b_rows * b_vecs
    taps = geom.row_taps * geom.kernel[-1] * channel_loop
    width, w_in = geom.out_size[-1], geom.in_size[-1]
    s, d, p, u_last = geom.strides[-1], geom.dilations[-1], geom.pads[-1], geom.up[-1]
    outer_in = geom.in_size[:-1]
    outer_out = geom.out_size[:-1]
    in_row_strides = c_strides(outer_in)
    partial_rows = geom.rows % tile.rows != 0
    fill_vec = lv.v.c(fill)
    it = ir.VectorType(T.I32, vl)

    with k.parallel_loop(units, work_per_iter=tile.rows * tile.vectors * tile.channels * vl * taps * cost) as u:
        b = k.b
        plane = b.sdiv(u, k.i64(b_rows * b_vecs))
        rest = b.srem(u, k.i64(b_rows * b_vecs))
        row0 = b.mul(b.sdiv(rest, k.i64(b_vecs)), k.i64(tile.rows))
        vec0 = b.mul(b.srem(rest, k.i64(b_vecs)), k.i64(tile.vectors * vl))
        rows = [b.add(row0, k.i64(r)) for r in range(tile.rows)]
        row_ok = [b.icmp_signed("<", r, k.i64(geom.rows)) if partial_rows else None for r in rows]
        # Output coordinates of every row of the tile (rows past the end read row 0).
        coords = [row_coords(k, b.select(ok, r, k.i64(0)) if ok is not None else r, outer_out)
                  for r, ok in zip(rows, row_ok)]
        o0s = [b.add(vec0, k.i64(v * vl)) for v in range(tile.vectors)]
        lane_out = [b.add(lv.splat(b.trunc(o0, T.I32), vl), iota(vl)) for o0 in o0s]
        out_masks = [b.icmp_signed("<", lo, lv.splat(ir.Constant(T.I32, width), vl)) for lo in lane_out]
        accs = [[[lv.slot(vl, init(plane, j)) for _ in range(tile.vectors)] for _ in range(tile.rows)]
                for j in range(tile.channels)]

        def lane_masks(shift: ir.Value) -> tuple[list[ir.Value], list[ir.Value]]:
            """Per vector: the lanes whose tap lands inside the input (and, upsampled, on an
            input element), and for gathers the input index of every lane."""
            shift32 = lv.splat(b.trunc(shift, T.I32), vl)
            masks, gathers = [], []
            for lo, om in zip(lane_out, out_masks):
                ix = b.add(b.mul(lo, lv.splat(ir.Constant(T.I32, s), vl)), shift32)
                inside = b.and_(b.icmp_signed(">=", ix, ir.Constant(it, None)),
                                b.icmp_signed("<", ix, lv.splat(ir.Constant(T.I32, w_in * u_last), vl)))
                if u_last > 1:
                    up = lv.splat(ir.Constant(T.I32, u_last), vl)
                    inside = b.and_(inside, b.icmp_signed("==", b.srem(ix, up), ir.Constant(it, None)))
                    gathers.append(b.sdiv(ix, up))
                masks.append(b.and_(inside, om))
            return masks, gathers

        def column(kx: ir.Value, kx_const: int | None) -> None:
            """Every tap at row offset kx. A tile whose vectors all lie inside the input for
            this kx takes unmasked loads; with kx_const (transposed, vl a multiple of the
            stride) the lanes that hit an input element are known to be every up-th one."""
            shift = b.sub(b.mul(kx, k.i64(d)), k.i64(p))  # input index = o * s + shift
            if kx_const is not None:
                first = -(kx_const * d - p) % u_last
                starts = [b.add(b.sdiv(o0, k.i64(u_last)), k.i64((first + kx_const * d - p) // u_last)) for o0 in o0s]
            else:
                starts = [b.add(b.mul(o0, k.i64(s)), shift) for o0 in o0s]
            if u_last > 1:
                taps_nest(kx, kx_const, starts, *lane_masks(shift))
                return
            interiors = []
            for o0, start in zip(o0s, starts):
                ok = b.and_(b.icmp_signed(">=", start, k.i64(0)),
                            b.icmp_signed("<", b.add(start, k.i64((vl - 1) * s)), k.i64(w_in)))
                interiors.append(b.and_(ok, b.icmp_signed("<=", b.add(o0, k.i64(vl)), k.i64(width))))
            interior = interiors[0]
            for ok in interiors[1:]:
                interior = b.and_(interior, ok)
            with b.if_else(interior) as (inside, edge):
                with inside:
                    taps_nest(kx, None, starts, None, [])
                with edge:
                    taps_nest(kx, None, starts, *lane_masks(shift), interiors=interiors)

        def edge_load(row_ptr, start, mask, interior) -> ir.Value:
            """A vector of a tile at the input's edge: unmasked where this vector is inside."""
            with b.if_else(interior) as (inside, edge):
                with inside:
                    plain = lv.load_strided(row_ptr, start, vl, s)
                    plain_bb = b.block
                with edge:
                    masked = lv.load_masked(row_ptr, start, mask, s)
                    if fill != 0:
                        masked = b.select(mask, masked, fill_vec)
                    masked_bb = b.block
            x = b.phi(plain.type)
            x.add_incoming(plain, plain_bb)
            x.add_incoming(masked, masked_bb)
            return x

        def taps_nest(kx, kx_const, starts, masks, gathers, interiors=None) -> None:
            """The taps along the other axes and the channel loop, for one kx."""
            with k.nest(geom.kernel[:-1], name="ky") as ko:
                row_tap = k.offset(ko, c_strides(geom.kernel[:-1]))
                offsets, valid = [], []
                for oc, ok in zip(coords, row_ok):
                    idx, good = [], ok
                    for dim, (o, kk) in enumerate(zip(oc, ko)):
                        i = b.add(b.sub(b.mul(o, k.i64(geom.strides[dim])), k.i64(geom.pads[dim])),
                                  b.mul(kk, k.i64(geom.dilations[dim])))
                        up = geom.up[dim]
                        inside = b.and_(b.icmp_signed(">=", i, k.i64(0)),
                                        b.icmp_signed("<", i, k.i64(outer_in[dim] * up)))
                        if up > 1:
                            inside = b.and_(inside, b.icmp_signed("==", b.srem(i, k.i64(up)), k.i64(0)))
                            i = b.sdiv(i, k.i64(up))
                        good = inside if good is None else b.and_(good, inside)
                        idx.append(i)
                    off = b.mul(k.offset(idx, in_row_strides), k.i64(w_in))
                    if good is not None:
                        off = b.select(good, off, k.i64(0))
                    offsets.append(off)
                    valid.append(good)
                any_valid = None
                for g in valid:
                    any_valid = g if any_valid is None or g is None else b.or_(any_valid, g)
                if any_valid is None:
                    any_valid = ir.Constant(T.I1, 1)
                with b.if_then(any_valid):
                    with k.loop(channel_loop, name="ci") as ci:
                        base = input_plane(plane, ci)
                        ws = [lv.splat(weight(plane, j, ci, row_tap, kx), vl) for j in range(tile.channels)] \
                            if weight else []
                        for r in range(tile.rows):
                            row_ptr = b.gep(base, [offsets[r]], source_etype=lv.storage)
                            for v in range(tile.vectors):
                                if masks is None:
                                    x = lv.load_strided(row_ptr, starts[v], vl, s)
                                elif kx_const is not None:
                                    x = lv.load_expand(row_ptr, starts[v], masks[v], u_last,
                                                       -(kx_const * d - p) % u_last)
                                elif u_last > 1:
                                    x = lv.gather(row_ptr, gathers[v], masks[v])
                                else:
                                    x = edge_load(row_ptr, starts[v], masks[v], interiors[v])
                                if fill != 0 and masks is not None and interiors is None:
                                    x = b.select(masks[v], x, fill_vec)
                                if tile.rows > 1 and valid[r] is not None:
                                    x = b.select(valid[r], x, fill_vec)
                                for j in range(tile.channels):
                                    slot = accs[j][r][v]
                                    b.store(_combine(lv, combine, lv.get(slot), x, ws[j] if ws else None), slot)

        if u_last > 1 and vl % u_last == 0 and geom.kernel[-1] <= MAX_UNROLLED_TAPS:
            for kx_const in range(geom.kernel[-1]):
                column(k.i64(kx_const), kx_const)
        else:
            with k.loop(geom.kernel[-1], name="kx") as kx:
                column(kx, None)

        for r in range(tile.rows):
            def write(r=r):
                for j in range(tile.channels):
                    for v in range(tile.vectors):
                        finish(plane, TileSite(j, rows[r], o0s[v], out_masks[v]), lv.get(accs[j][r][v]))
            if row_ok[r] is not None:
                with b.if_then(row_ok[r]):
                    write()
            else:
                write()


def _combine(lv: Lanes, how: str, acc: ir.Value, x: ir.Value, w: ir.Value | None) -> ir.Value:
    s = lv.v
    if how == "fma":
        if lv.acc.is_float:
            return s.intrinsic("fma", w, x, acc)
        return s.add(acc, s.mul(w, x))
    if how == "add":
        return s.add(acc, x)
    return maximum(s, acc, x)


def row_coords(k: KernelBuilder, row: ir.Value, outer: Sequence[int]) -> list[ir.Value]:
    """The multi-index over ``outer`` of a flat row index."""
    b = k.b
    return [b.srem(b.sdiv(row, k.i64(st)), k.i64(n)) if n > 1 else k.i64(0)
            for n, st in zip(outer, c_strides(outer))]
