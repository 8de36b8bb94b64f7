"""When a convolution runs as Winograd (conv_winograd) rather than im2col + GEMM (conv_gemm): the
option ``winograd`` (auto | on | off) and the per-layer cost model ``auto`` uses.

Cost model, in the im2col GEMM's multiply-adds (its time per multiply-add is the unit), per
image; the constants are a least-squares fit of single-layer timings on the AVX2 machine (Zen 3,
one thread; benchmarks/winograd.py shows the layers of ResNet-18 and VGG-CIFAR):

- im2col: 9*Cin*Cout*P multiply-adds (P = OH*OW), plus IM2COL_COPY per element of the im2col
  matrix (9*Cin*P) it writes;
- F(m x m, 3 x 3): per block of tile rows (kernels/winograd.py), (m+2)^2 GEMMs of Cout x Cin x
  cols, cols being the block's tiles padded to whole NR-wide panels (a 7x7 output has 4 tiles of
  4x4 but 16 columns; rows are padded to the input transform's vector of tiles), at
  GEMM_SPEED[m] of the im2col GEMM's speed; plus the transforms, TRANSFORM_IN[m] per tile and
  input channel and TRANSFORM_OUT[m] per tile and output channel, and LAYER_OVERHEAD per layer
  (scratch set-up, the blocks' loop). The fit is rough (timings on a shared machine): the rule
  needs only to rank im2col, F(2x2) and F(4x4), which differ by 1.5-3x where it matters.

``auto`` picks the cheapest, Winograd only when it is below WIN_MARGIN of im2col's cost; ``on``
takes Winograd for every convolution it can run (3x3, stride 1, dilation 1, one group, f32,
constant weights), with the cheaper tile; ``f2`` / ``f4`` force F(2x2, 3x3) / F(4x4, 3x3) there
(for measuring); ``off`` never takes it: the graph is what it was without Winograd.
"""

from __future__ import annotations

import math

from irc.errors import InputError
from irc.ir.graph import Node
from irc.ir.types import DType
from irc.targets.cpu.gemm import Tile, choose_tile

MODES = ("auto", "on", "off", "f2", "f4")

IM2COL_COPY = 16.0
GEMM_SPEED = {2: 1.0, 4: 0.85}
TRANSFORM_IN = {2: 100.0, 4: 270.0}
TRANSFORM_OUT = {2: 100.0, 4: 270.0}
LAYER_OVERHEAD = 1.0e6
WIN_MARGIN = 0.9


def check_mode(mode: str) -> str:
    if mode not in MODES:
        raise InputError(f"winograd must be one of {', '.join(MODES)}, got {mode!r}")
    return mode


def eligible(node: Node, const_weights: bool) -> bool:
    """Can conv_winograd run this conv_fused?"""
    x, w = node.inputs[0].type, node.inputs[1].type
    a = node.attrs
    return (const_weights and x.dtype is DType.f32 and x.rank == 4 and tuple(w.shape[2:]) == (3, 3)
            and tuple(a["strides"]) == (1, 1) and tuple(a["dilations"]) == (1, 1) and a["group"] == 1)


def im2col_cost(cin: int, cout: int, oh: int, ow: int) -> float:
    p = oh * ow
    return 9 * cin * cout * p + IM2COL_COPY * 9 * cin * p


def winograd_cost(cin: int, cout: int, oh: int, ow: int, m: int, tile: Tile) -> float:
    from irc.targets.cpu.kernels.winograd import block_rows, padded, row_group

    th, tw = math.ceil(oh / m), math.ceil(ow / m)
    twp = padded(tw, row_group(tw, tile.vl))
    rows = block_rows(1, th, twp, tile.nr, 1)
    cols = math.ceil(rows * twp / tile.nr) * tile.nr
    a = m + 2
    gemm = math.ceil(th / rows) * cols * a * a * cin * cout / GEMM_SPEED[m]
    return gemm + th * tw * (TRANSFORM_IN[m] * cin + TRANSFORM_OUT[m] * cout) + LAYER_OVERHEAD


def weight_rows(cout: int, vector_bits: int) -> int:
    """MR of the transformed weights' panels: the GEMM cost rule's tile for Cout rows and a
    block's columns (about 64 tiles; the image's pixels do not matter here)."""
    return choose_tile(cout, 64, vector_bits).mr


def choose(node: Node, mode: str, const_weights: bool, vector_bits: int) -> int | None:
    """The output tile m of F(m x m, 3 x 3) this convolution runs with, or None for im2col."""
    if mode == "off" or not eligible(node, const_weights):
        return None
    if mode in ("f2", "f4"):
        return int(mode[1])
    cin = node.inputs[0].shape[1]
    cout = node.inputs[1].shape[0]
    oh, ow = node.outputs[0].shape[2:]
    from irc.targets.cpu.kernels.winograd import gemm_tile

    tile = gemm_tile(weight_rows(cout, vector_bits), vector_bits)
    cost, m = min((winograd_cost(cin, cout, oh, ow, m, tile), m) for m in (2, 4))
    return m if mode == "on" or cost < WIN_MARGIN * im2col_cost(cin, cout, oh, ow) else None
