"""Winograd convolution for the CPU: the transforms, the ``conv_winograd`` op and its error bound.

F(m x m, 3 x 3) computes an m x m block of a 3x3 stride-1 convolution's outputs from an a x a
input tile (a = m + 2) with a*a products per input/output channel pair instead of 9*m*m:

    Y = A^T [ (G g G^T) (.) (B^T d B) ] A

U = G g G^T is the weights' transform, done once here at compile time; V = B^T d B and the
output transform run in the kernel (kernels/winograd.py), and the a*a element-wise products,
summed over input channels, are a*a independent GEMMs U_t [Cout x Cin] . V_t [Cin x tiles] on the
packed GEMM engine.

Matrices: the interpolation points 0, +-1, +-2 (m = 4) and 0, +-1 (m = 2), and infinity, of
Lavin & Gray's "Fast algorithms for convolutional neural networks".

Error bound (fp32, unit roundoff u = 2^-24). Every step is a sum of products, so the computed
output differs from the exact one by at most

    |y_hat - y| <= gamma_n * S,   S = sum_c |A^T| ((|G| |g_c| |G^T|) (.) (|B^T| |d_c| |B|)) |A|

(element-wise, gamma_n = n*u / (1 - n*u)), with n the longest chain of roundings a term goes
through: the weight transform's 3 + 3 and its rounding to f32, the input transform's a + a, the
channel sum's Cin, the output transform's a + a (``rounding_depth``). S replaces sum |w||x| of
the direct sum: for inputs and weights of one magnitude it is at most ``amplification(m)`` times
that sum (64/9 = 7.1 for m = 2, 256 for m = 4), so relative to sum |w||x| the bound is
gamma_n * 7.1 for F(2x2, 3x3) and gamma_n * 256 for F(4x4, 3x3) (im2col's: gamma_9Cin). The
tests check the element-wise form, gamma_n * S, which holds for any data. Measured errors stay
far below it (the bound adds every rounding at its worst); F(4x4)'s are about 10x F(2x2)'s, and
both keep whole models within the model tests' tolerance against onnxruntime.
"""

from __future__ import annotations

import math
from functools import cache

import numpy as np

from irc.errors import ShapeError
from irc.ir.ops import costs
from irc.ir.ops.activation import EPILOGUE_ATTRS
from irc.ir.ops.fused import apply_epilogue, check_extra
from irc.ir.ops.registry import Attr, Trait, defop, get_op, same_dtype
from irc.ir.types import TensorType
from irc.targets.cpu.lowering.ops import pack_panels, unpack_panels

#: Output tile sizes implemented (F(2x2,3x3) and F(4x4,3x3)).
TILES = (2, 4)


@cache
def matrices(m: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(B^T [a, a], G [a, 3], A^T [m, a]) of F(m x m, 3 x 3), float64."""
    if m == 2:
        bt = [[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]]
        g = [[1, 0, 0], [.5, .5, .5], [.5, -.5, .5], [0, 0, 1]]
        at = [[1, 1, 1, 0], [0, 1, -1, -1]]
    elif m == 4:
        bt = [[4, 0, -5, 0, 1, 0], [0, -4, -4, 1, 1, 0], [0, 4, -4, -1, 1, 0],
              [0, -2, -1, 2, 1, 0], [0, 2, -1, -2, 1, 0], [0, 4, 0, -5, 0, 1]]
        g = [[1 / 4, 0, 0], [-1 / 6, -1 / 6, -1 / 6], [-1 / 6, 1 / 6, -1 / 6],
             [1 / 24, 1 / 12, 1 / 6], [1 / 24, -1 / 12, 1 / 6], [0, 0, 1]]
        at = [[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 0], [0, 1, 1, 4, 4, 0], [0, 1, -1, 8, -8, 1]]
    else:
        raise ValueError(f"F({m}x{m},3x3) is not implemented (m in {TILES})")
    return np.array(bt, np.float64), np.array(g, np.float64), np.array(at, np.float64)


def transform_weights(w: np.ndarray, m: int) -> np.ndarray:
    """U_t = (G g G^T)_t for each of the a*a points t: [a*a, Cout, Cin] in w's dtype (computed
    in float64, rounded once)."""
    _, g, _ = matrices(m)
    u = np.einsum("ip,ocpq,jq->ijoc", g, w.astype(np.float64), g)
    return u.reshape(-1, *w.shape[:2]).astype(w.dtype)


def pack_weights(w: np.ndarray, m: int, mr: int) -> np.ndarray:
    """transform_weights, each U_t packed as the GEMM's left operand: [a*a, panels, Cin, MR]."""
    return np.stack([pack_panels(u, mr) for u in transform_weights(w, m)])


def recover_weights(up: np.ndarray, cout: int, m: int) -> np.ndarray:
    """Inverse of pack_weights (G has full column rank: g = G^+ U G^+^T), float64."""
    _, g, _ = matrices(m)
    a = m + 2
    u = np.stack([unpack_panels(p, cout) for p in up.astype(np.float64)]).reshape(a, a, cout, -1)
    gi = np.linalg.pinv(g)
    return np.einsum("pi,ijoc,qj->ocpq", gi, u, gi)


def rounding_depth(m: int, cin: int) -> int:
    """n of the bound's gamma_n (module docstring)."""
    a = m + 2
    return 7 + 2 * a + cin + 2 * a


def magnitude_sum(x: np.ndarray, w: np.ndarray, pads, m: int) -> np.ndarray:
    """S of the module docstring for each output of conv(x, w) (3x3, stride 1), float64:
    the bound's scale in place of sum |w||x|."""
    bt, g, at = (np.abs(t) for t in matrices(m))
    a = m + 2
    n, c, h, wd = x.shape
    pt, pl, pb, pr = pads
    oh, ow = h + pt + pb - 2, wd + pl + pr - 2
    th, tw = -(-oh // m), -(-ow // m)
    xp = np.zeros((n, c, th * m + 2, tw * m + 2))
    hi, wi = min(h, th * m + 2 - pt), min(wd, tw * m + 2 - pl)
    xp[:, :, pt:pt + hi, pl:pl + wi] = np.abs(x[:, :, :hi, :wi])
    u = np.einsum("ip,ocpq,jq->ijoc", g, np.abs(w.astype(np.float64)), g)  # [a, a, O, C]
    idx = np.arange(th)[:, None] * m + np.arange(a)[None, :]  # [th, a]
    jdx = np.arange(tw)[:, None] * m + np.arange(a)[None, :]
    d = xp[:, :, idx[:, :, None, None], jdx[None, None, :, :]]  # [n, c, th, a, tw, a]
    v = np.einsum("ir,ncyrxs,js->ncyxij", bt, d, bt)
    prod = np.einsum("ijoc,ncyxij->noyxij", u, v)
    s = np.einsum("ki,noyxij,lj->noykxl", at, prod, at).reshape(n, -1, th * m, tw * m)
    return s[:, :, :oh, :ow]


def amplification(m: int) -> float:
    """max S / sum |w||x| over the outputs of a tile, inputs and weights all of one magnitude."""
    x = np.ones((1, 1, m + 2, m + 2))
    w = np.ones((1, 1, 3, 3))
    return float(magnitude_sum(x, w, (0, 0, 0, 0), m).max() / 9)


# ---------------------------------------------------------------------------- the op


@defop("conv_winograd", ("x", "up", "bias?", "residual?"),
       {"cout": Attr("int"), "pads": Attr("ints"), "m": Attr("int", 4, TILES), **EPILOGUE_ATTRS},
       traits=(Trait.CONV, Trait.FUSED, Trait.LOWERED))
class ConvWinograd:
    """act(conv(x, w) + bias + residual) for a 3x3, stride-1, dilation-1, one-group convolution
    by Winograd F(m x m, 3 x 3): up = pack_weights(w, m, MR), [(m+2)^2, panels, Cin, MR]."""

    def infer(x, up, bias=None, residual=None, *, cout, pads, m, act, act_alpha, act_beta):
        a = m + 2
        if x.rank != 4 or up.rank != 4 or up.shape[0] != a * a or up.shape[2] != x.shape[1] \
                or up.shape[1] * up.shape[3] < cout:
            raise ShapeError(f"conv_winograd takes x [N, C, H, W] and transformed weights [{a * a}, panels, C, MR] "
                             f"covering {cout} output channels, got {x} and {up}")
        w = TensorType((cout, x.shape[1], 3, 3), x.dtype)
        _, (out,) = get_op("conv").type_check([x, w], dict(strides=(1, 1), pads=pads, dilations=(1, 1), group=1))
        same_dtype(x, up, *(t for t in (bias, residual) if t is not None))
        check_extra(out, bias, residual, cout)
        return out

    def cost(n):  # the direct convolution's multiply-adds: what the layer computes, not how
        return costs.contraction(n, costs.out_size(n) * n.inputs[0].shape[1] * 9)

    def reference(x, up, bias=None, residual=None, *, cout, pads, m, act, act_alpha, act_beta):
        w = recover_weights(up, cout, m)
        y = get_op("conv").reference(x.astype(np.float64), w, strides=(1, 1), pads=pads, dilations=(1, 1), group=1)
        return apply_epilogue(y.astype(x.dtype), bias, residual, act, act_alpha, act_beta, 1)


def tiles_of(oh: int, ow: int, m: int) -> tuple[int, int]:
    """Tile rows and columns covering an oh x ow output."""
    return math.ceil(oh / m), math.ceil(ow / m)
