"""Gradients of the data-movement ops: each is the op's adjoint data movement (reshape back,
inverse permutation, slices of a concat, concat of split pieces, sums over expanded or tiled
copies, the padding cropped away)."""

from __future__ import annotations

import numpy as np

from irc.frontend.trace import concatenate, reshape, transpose
from irc.passes.grads.common import grad_rule, unbroadcast, zeros_like


@grad_rule("reshape")
def _reshape(n, xs, ys, dys):
    return [reshape(dys[0], xs[0].shape)]


@grad_rule("transpose")
def _transpose(n, xs, ys, dys):
    perm = n.attrs["perm"]
    return [transpose(dys[0], tuple(int(i) for i in np.argsort(perm)))]


@grad_rule("concat")
def _concat(n, xs, ys, dys):
    axis = n.attrs["axis"]
    dy = dys[0]
    grads, start = [], 0
    for x in xs:
        size = x.shape[axis]
        grads.append(dy.tracer.op("slice", dy, starts=(start,), ends=(start + size,), axes=(axis,), steps=(1,)))
        start += size
    return grads


@grad_rule("split")
def _split(n, xs, ys, dys):
    pieces = [dy if dy is not None else zeros_like(y) for y, dy in zip(ys, dys)]
    return [concatenate(pieces, axis=n.attrs["axis"])]


@grad_rule("expand")
def _expand(n, xs, ys, dys):
    return [unbroadcast(dys[0], xs[0].shape)]


@grad_rule("tile")
def _tile(n, xs, ys, dys):
    x = xs[0]
    reps = n.attrs["repeats"]
    # (r0*d0, r1*d1, ...) -> (r0, d0, r1, d1, ...) summed over the r axes.
    split = [v for r, d in zip(reps, x.shape) for v in (r, d)]
    g = reshape(dys[0], split)
    return [reshape(g.sum(axis=tuple(range(0, 2 * x.ndim, 2))), x.shape)]


@grad_rule("pad")
def _pad(n, xs, ys, dys):
    if n.attrs["mode"] != "constant":
        from irc.errors import UnsupportedOpError

        raise UnsupportedOpError(f"no gradient for {n.attrs['mode']} padding (only constant padding)", op="pad")
    # Constant padding's adjoint crops what it added and zero-fills what it cropped.
    dy = dys[0]
    return [dy.tracer.op("pad", dy, pads=tuple(-p for p in n.attrs["pads"]), mode="constant", value=0.0)]
