"""Lowering of the integer layers onto the CPU's int8 GEMM (u8 x s8 -> s32).

The micro-kernel is chosen per CPU (``isa``): ``vnni512`` (AVX512-VNNI vpdpbusd: 64 byte
products summed into 16 int32 lanes per instruction) where the CPU has it, else ``pmaddwd``
at the widest vector width the CPU has (512, 256 or 128 bits: bytes widened to 16 bits and
multiplied pairwise into int32, exact, no saturation). On AVX2 without AVX-512 the choice is
``pmaddubsw256`` (u8 x s8 byte pairs into saturating int16, no widening) for every layer whose
constant weights cannot make a pair saturate (fits_pmaddubsw: true of all weights in [-64, 64],
which the quantize pass's ``weight_bits=7`` gives), ``pmaddwd256`` for the others, so results
stay exact. Each has a tile:

- conv: MR output channels x NR output positions; weights packed into MR-row panels here;
- dense: MR rows of the activations x NR output features; weights packed into NR-column panels.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from irc.errors import InputError
from irc.ir.graph import Graph, Node
from irc.ir.types import DType
from irc.passes.registry import Pass, register_pass
from irc.passes.rewrite import RewriteContext, rewrite
from irc.targets.cpu.llvm_env import cpu_spec
from irc.targets.cpu.lowering.ops import pack_rows4

#: isa -> (columns per vector step, vector steps per tile, MR rows). NR = columns * steps.
TILES = {
    "vnni512": (16, 4, 6),
    "pmaddubsw256": (8, 2, 4),
    "pmaddwd512": (8, 4, 4),
    "pmaddwd256": (4, 4, 2),
    "pmaddwd128": (2, 4, 2),
}


def tile_of(isa: str) -> tuple[int, int, int, int]:
    """(columns per step C, steps nv, MR, NR) of a micro-kernel."""
    c, nv, mr = TILES[isa]
    return c, nv, mr, c * nv


def choose_isa(cpu: str = "host", int8_isa: str = "auto") -> str:
    """The int8 micro-kernel for ``cpu`` (an LLVM cpu name, "host" or "generic")."""
    spec = cpu_spec(cpu)
    if int8_isa != "auto":
        if int8_isa not in TILES:
            raise InputError(f"unknown int8 micro-kernel '{int8_isa}' (known: auto, {', '.join(TILES)})")
        # LLVM cannot lower 512-bit integer multiply-adds without AVX-512 BW and aborts the
        # process; a named cpu brings its own features, host and generic only those listed.
        needs = {"vnni512": ("+avx512bw", "+avx512vnni"), "pmaddwd512": ("+avx512bw",),
                 "pmaddwd256": ("+avx2",), "pmaddubsw256": ("+avx2",)}.get(int8_isa, ())
        missing = [f[1:] for f in needs if f not in spec.features]
        if cpu in ("host", "generic") and missing:
            raise InputError(f"int8_isa={int8_isa} needs {', '.join(missing)}, which the cpu '{cpu}' "
                             f"({spec.describe()}) lacks; give int8_isa=auto or cpu=<an LLVM CPU name that has them>")
        return int8_isa
    if "+avx512vnni" in spec.features and "+avx512bw" in spec.features:
        return "vnni512"
    if "+avx512bw" in spec.features:
        return "pmaddwd512"
    if spec.has_avx2:
        return "pmaddubsw256"
    return "pmaddwd128"


#: The unsigned side of the GEMM is at most this (u8), the int16 vpmaddubsw adds into at most:
_U8_MAX, _I16_MIN, _I16_MAX = 255, -(2**15), 2**15 - 1


def fits_pmaddubsw(w: np.ndarray) -> bool:
    """Whether vpmaddubsw cannot saturate with these weights, rows [R, K] int8: it adds the
    products of k = 2j and 2j + 1 into one int16, so every such pair of a row must keep
    255 * (its positive weights) <= 32767 and 255 * (its negative weights) >= -32768 (any u8
    data then gives an exact pair sum). True whenever all weights lie in [-64, 64]."""
    w = np.asarray(w, np.int64)
    w = w.reshape(w.shape[0], int(np.prod(w.shape[1:])))
    if w.shape[1] % 2:
        w = np.pad(w, ((0, 0), (0, 1)))
    pairs = w.reshape(w.shape[0], w.shape[1] // 2, 2)
    pos = np.maximum(pairs, 0).sum(axis=2).max(initial=0)
    neg = np.minimum(pairs, 0).sum(axis=2).min(initial=0)
    return bool(_U8_MAX * pos <= _I16_MAX and _U8_MAX * neg >= _I16_MIN)


def layer_isa(isa: str, w: np.ndarray) -> str:
    """The micro-kernel of one layer with weight rows ``w`` [R, K]: ``isa``, except that
    pmaddubsw256 falls back to pmaddwd256 where the weights could saturate it."""
    if isa == "pmaddubsw256" and not fits_pmaddubsw(w):
        return "pmaddwd256"
    return isa


def _offset(dt: DType) -> int:
    return 128 if dt is DType.i8 else 0


def _conv(node: Node, ctx: RewriteContext):
    x, w = node.inputs[:2]
    wc = ctx.const(w)
    consts = [ctx.const(v) for v in node.inputs[2:]]
    if x.type.rank != 4 or wc is None or any(c is None for c in consts):
        return None
    bias, m0, shift = consts
    a = node.attrs
    group = a["group"]
    cout = wc.shape[0]
    cout_g = cout // group
    wmat = wc.reshape(cout, -1)
    isa = layer_isa(ctx.options["isa"], wmat)
    _, _, mr, _ = tile_of(isa)
    wp = np.stack([pack_rows4(wmat[g * cout_g:(g + 1) * cout_g], mr) for g in range(group)])
    off = _offset(x.dtype)
    pad = a["x_zero_point"] + off
    eff = (bias.astype(np.int64) - pad * wmat.astype(np.int64).sum(axis=1))
    eff = ((eff + 2**31) % 2**32 - 2**31).astype(np.int32)
    return (ctx.make("qconv_gemm", [x, ctx.param(wp, "w_packed"), ctx.param(eff, "bias_eff"), node.inputs[3],
                                    node.inputs[4]],
                     kernel_shape=tuple(wc.shape[2:]), cout=cout, strides=a["strides"], pads=a["pads"],
                     dilations=a["dilations"], group=group, x_offset=off, pad_value=pad, isa=isa,
                     **{k: a[k] for k in ("y_zero_point", "y_dtype", "y_min", "y_max", "y_scale")}),)


def _gemm(node: Node, ctx: RewriteContext):
    a, w = node.inputs[:2]
    wc = ctx.const(w)
    consts = [ctx.const(v) for v in node.inputs[2:]]
    if wc is None or any(c is None for c in consts):
        return None
    bias, m0, shift = consts
    at = node.attrs
    n = wc.shape[1]
    isa = layer_isa(ctx.options["isa"], wc.T)
    _, _, _, nr = tile_of(isa)
    wp = pack_rows4(np.ascontiguousarray(wc.T), nr)
    npad = wp.shape[0] * nr
    off = _offset(a.dtype)
    eff = bias.astype(np.int64) - (at["a_zero_point"] + off) * wc.astype(np.int64).sum(axis=0)
    eff = ((eff + 2**31) % 2**32 - 2**31).astype(np.int32)

    def padded(v, fill):
        out = np.full(npad, fill, np.int32)
        out[:n] = v
        return ctx.param(out, "p")

    return (ctx.make("qgemm_packed", [a, ctx.param(wp, "w_packed"), padded(eff, 0), padded(m0, 0), padded(shift, 1)],
                     n=n, a_offset=off, isa=isa,
                     **{k: at[k] for k in ("y_zero_point", "y_dtype", "y_min", "y_max", "y_scale")}),)


def int8_gemm(g: Graph, *, cpu: str = "host", int8_isa: str = "auto") -> Graph:
    """The int8_gemm pass as a function (see Int8Gemm)."""
    if not any(n.op in ("qconv", "qgemm") for n in g.nodes):
        return g
    isa = choose_isa(cpu, int8_isa)
    return rewrite(g, {"qconv": [_conv], "qgemm": [_gemm]}, options={"isa": isa})


@register_pass
@dataclass(frozen=True)
class Int8Gemm(Pass):
    """Matches qconv (2-D) and qgemm with constant weights, bias and multipliers, and lowers them
    to qconv_gemm / qgemm_packed: weights packed for the micro-kernel of this CPU (``cpu``, see
    choose_isa; ``int8_isa`` forces one; a layer whose weights could saturate pmaddubsw256 gets
    pmaddwd256, see layer_isa), the activations' zero point (and the +128 that makes
    i8 data unsigned) folded into an effective bias. A graph without them is unchanged."""

    name: ClassVar[str] = "int8_gemm"
    cpu: str = "host"
    int8_isa: str = "auto"

    def run(self, g: Graph) -> Graph:
        return int8_gemm(g, cpu=self.cpu, int8_isa=self.int8_isa)
