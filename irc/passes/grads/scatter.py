"""Gradients of the positional ops: gather_elements, gather_nd, scatter_nd, scatter_elements, cumsum, trilu,
one_hot and topk.

- gather_elements, gather_nd: the cotangent is scattered back with ``reduction="add"`` (repeated index rows add
  up; rows out of range gathered zeros and get nothing). Only batch_dims = 0: the scatters have
  no batch axes.
- scatter_nd / scatter_elements with ``reduction="none"``: data gets dy where no update landed
  (dy scattered over with zeros), updates get dy gathered at their positions. With repeated
  indices only the last update is kept, yet each of them gathers dy: exact for distinct indices,
  which is what a plain scatter of a model means. ``add``: data gets dy, updates dy gathered.
  mul, max and min depend on the order the updates meet and are refused.
- cumsum: the adjoint of a running sum is the running sum the other way (exclusive stays exclusive).
- trilu: the same triangle of dy.
- topk: the values' cotangent goes back to the positions they came from (a scatter-add along the
  axis); the indices have none.
- one_hot: values[1] gets the sum of dy where the index hit, values[0] the rest; indices none.
"""

from __future__ import annotations

import numpy as np

from irc.errors import UnsupportedOpError
from irc.frontend.trace import concatenate, reshape
from irc.passes.grads.common import grad_rule, zeros_like


@grad_rule("gather_elements", inputs=(0,))
def _gather_elements(n, xs, ys, dys):
    x, idx = xs
    return [x.tracer.op("scatter_elements", zeros_like(x), idx, dys[0], axis=n.attrs["axis"], reduction="add"), None]


@grad_rule("gather_nd", inputs=(0,))
def _gather_nd(n, xs, ys, dys):
    x, idx = xs
    if n.attrs["batch_dims"]:
        raise UnsupportedOpError("the gradient of gather_nd is implemented for batch_dims = 0 only")
    return [x.tracer.op("scatter_nd", zeros_like(x), idx, dys[0], reduction="add"), None]


def _scatter(gather: str, attrs: dict):
    def rule(n, xs, ys, dys):
        data, idx, upd = xs
        dy = dys[0]
        tr = data.tracer
        reduction = n.attrs["reduction"]
        if reduction not in ("none", "add"):
            raise UnsupportedOpError(f"no gradient for reduction '{reduction}' (its result depends on the order "
                                     "in which updates meet); use reduction 'none' or 'add'")
        kw = {k: n.attrs[k] for k in attrs}
        d_upd = tr.op(gather, dy, idx, **kw)
        d_data = dy if reduction == "add" else tr.op(n.op, dy, idx, zeros_like(upd), reduction="none", **kw)
        return [d_data, None, d_upd]

    return rule


grad_rule("scatter_nd", inputs=(0, 2))(_scatter("gather_nd", {}))
grad_rule("scatter_elements", inputs=(0, 2))(_scatter("gather_elements", {"axis"}))


@grad_rule("cumsum")
def _cumsum(n, xs, ys, dys):
    a = n.attrs
    return [xs[0].tracer.op("cumsum", dys[0], axis=a["axis"], exclusive=a["exclusive"], reverse=1 - a["reverse"])]


@grad_rule("trilu")
def _trilu(n, xs, ys, dys):
    return [xs[0].tracer.op("trilu", dys[0], upper=n.attrs["upper"], k=n.attrs["k"])]


@grad_rule("one_hot", inputs=(1,))
def _one_hot(n, xs, ys, dys):
    idx, values = xs
    dy = dys[0]
    tr = values.tracer
    mask = tr.op("one_hot", idx, tr.const(np.array([0, 1], values.dtype)), **n.attrs)
    on = (dy * mask).sum()
    off = dy.sum() - on
    return [None, reshape(concatenate([reshape(off, (1,)), reshape(on, (1,))]), values.shape)]


@grad_rule("topk", inputs=(0,))
def _topk(n, xs, ys, dys):
    x = xs[0]
    dv = dys[0] if dys[0] is not None else zeros_like(ys[0])
    return [x.tracer.op("scatter_elements", zeros_like(x), ys[1], dv, axis=n.attrs["axis"], reduction="add")]
