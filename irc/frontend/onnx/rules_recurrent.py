"""ONNX RNN, GRU and LSTM, unrolled at import over their (static) sequence length.

irc shapes are static, so the sequence length is known at import and the recurrence can be
written out step by step with ops every target, autodiff and export already have: the input
projection of every step is one matmul over the whole sequence, each step is a matmul with the
recurrent weights, a split into gates and the gates' element-wise arithmetic, and the outputs are
concatenated. The graph grows with the sequence length, which is what static shapes cost; the
work is the same as a fused recurrent kernel's.

Supported: forward, reverse and bidirectional; batch-first layout; biases, initial states and
LSTM peepholes; ``clip``; activations Sigmoid, Tanh, Relu, Softsign and Softplus (and
HardSigmoid, LeakyRelu, Elu with their alpha/beta). Refused, naming the node: sequence_lens that
differ from the sequence length (padded batches), LSTM's input_forget, other activations.
"""

from __future__ import annotations

import numpy as np

from irc.errors import ShapeError, UnsupportedOpError
from irc.frontend.onnx.rules import NodeContext, import_rule
from irc.ir.graph import Value

#: ONNX activation name -> (irc op, its attributes from activation_alpha / activation_beta).
_ACTIVATIONS = {
    "Sigmoid": ("sigmoid", ()), "Tanh": ("tanh", ()), "Relu": ("relu", ()), "Softsign": ("softsign", ()),
    "Softplus": ("softplus", ()), "HardSigmoid": ("hard_sigmoid", ("alpha", "beta")),
    "LeakyRelu": ("leaky_relu", ("alpha",)), "Elu": ("elu", ("alpha",)),
}
_DEFAULTS = {"RNN": ["Tanh"], "GRU": ["Sigmoid", "Tanh"], "LSTM": ["Sigmoid", "Tanh", "Tanh"]}
_GATES = {"RNN": 1, "GRU": 3, "LSTM": 4}


class _Step:
    """What one direction's recurrence needs: the activations, the recurrent weights and biases."""

    def __init__(self, ctx: NodeContext, acts, clip, r_t: Value, rb: Value | None, peep: Value | None, hidden: int,
                 gates: int):
        self.ctx, self.acts, self.clip, self.r_t, self.rb, self.h = ctx, acts, clip, r_t, rb, hidden
        # Made once, before the steps: the per-gate recurrent weights (GRU) and the peepholes.
        self.r_parts = self.split(r_t, gates) if gates == 3 else None
        self.peep = None if peep is None else tuple(_take(ctx, peep, k) for k in range(3))

    def act(self, k: int, v: Value) -> Value:
        op, kw = self.acts[k]
        return self.ctx.op(op, v, **kw)

    def pre(self, v: Value) -> Value:
        """A gate's input, clipped to [-clip, clip] when the node says so."""
        return v if self.clip is None else self.ctx.op("clip", v, min=-self.clip, max=self.clip)

    def split(self, v: Value, n: int) -> tuple[Value, ...]:
        return self.ctx.ops("split", [v], {"axis": 1, "sizes": (self.h,) * n})


def _activations(ctx: NodeContext, n_dirs: int) -> list[list[tuple[str, dict]]]:
    names = ctx.attr("activations") or _DEFAULTS[ctx.op_type] * n_dirs
    alphas, betas = list(ctx.attr("activation_alpha") or []), list(ctx.attr("activation_beta") or [])
    per = len(_DEFAULTS[ctx.op_type])
    if len(names) != per * n_dirs:
        raise ShapeError(f"{len(names)} activations given; {ctx.op_type} with {n_dirs} direction(s) takes "
                         f"{per * n_dirs}")
    out = []
    for name in names:
        if name not in _ACTIVATIONS:
            raise UnsupportedOpError(f"activation '{name}' is not supported (supported: {', '.join(_ACTIVATIONS)})")
        op, params = _ACTIVATIONS[name]
        kw = {}
        for p in params:
            src = alphas if p == "alpha" else betas
            if src:
                kw[p] = float(src.pop(0))
        out.append((op, kw))
    return [out[d * per:(d + 1) * per] for d in range(n_dirs)]


def _take(ctx: NodeContext, v: Value, index: int, axis: int = 0) -> Value:
    """``v[index]`` along ``axis``, the axis dropped."""
    s = ctx.op("slice", v, starts=(index,), ends=(index + 1,), axes=(axis,))
    return ctx.op("reshape", s, shape=v.shape[:axis] + v.shape[axis + 1:])


def _rnn_step(s: _Step, x: Value, h: Value, c: Value | None):
    ctx = s.ctx
    g = ctx.op("add", x, ctx.op("matmul", h, s.r_t))
    return s.act(0, s.pre(g)), None


def _gru_step(s: _Step, x: Value, h: Value, c: Value | None, linear_before_reset: int):
    ctx = s.ctx
    xz, xr, xh = s.split(x, 3)
    rz_t, rr_t, rh_t = s.r_parts
    z = s.act(0, s.pre(ctx.op("add", xz, ctx.op("matmul", h, rz_t))))
    r = s.act(0, s.pre(ctx.op("add", xr, ctx.op("matmul", h, rr_t))))
    if linear_before_reset:
        hr = ctx.op("matmul", h, rh_t)
        if s.rb is not None:
            hr = ctx.op("add", hr, s.rb)
        cand = ctx.op("add", xh, ctx.op("mul", r, hr))
    else:
        cand = ctx.op("add", xh, ctx.op("matmul", ctx.op("mul", r, h), rh_t))
    hh = s.act(1, s.pre(cand))
    return ctx.op("add", hh, ctx.op("mul", z, ctx.op("sub", h, hh))), None  # (1 - z) * hh + z * h


def _lstm_step(s: _Step, x: Value, h: Value, c: Value):
    ctx = s.ctx
    gi, go, gf, gc = s.split(ctx.op("add", x, ctx.op("matmul", h, s.r_t)), 4)
    if s.peep is not None:
        pi, po, pf = s.peep
        gi, gf = ctx.op("add", gi, ctx.op("mul", pi, c)), ctx.op("add", gf, ctx.op("mul", pf, c))
    i, f = s.act(0, s.pre(gi)), s.act(0, s.pre(gf))
    c = ctx.op("add", ctx.op("mul", f, c), ctx.op("mul", i, s.act(1, s.pre(gc))))
    if s.peep is not None:
        go = ctx.op("add", go, ctx.op("mul", po, c))
    o = s.act(0, s.pre(go))
    return ctx.op("mul", o, s.act(2, c)), c


def _recurrent(ctx: NodeContext):
    kind = ctx.op_type
    gates = _GATES[kind]
    x = ctx.input(0)
    layout = ctx.attr("layout", 0)
    if x.type.rank != 3:
        raise ShapeError(f"X {x.type} must be (sequence, batch, input) (or batch first with layout=1)")
    if layout:
        x = ctx.op("transpose", x, perm=(1, 0, 2))
    seq, batch, width = x.shape
    direction = ctx.attr("direction", "forward")
    if direction not in ("forward", "reverse", "bidirectional"):
        raise UnsupportedOpError(f"direction '{direction}' is not one of forward, reverse, bidirectional")
    n_dirs = 2 if direction == "bidirectional" else 1
    w, r = ctx.input(1), ctx.input(2)
    hidden = int(ctx.attr("hidden_size", r.shape[-1]))
    gh = gates * hidden
    for what, v, want in (("W", w, (n_dirs, gh, width)), ("R", r, (n_dirs, gh, hidden))):
        if v.shape != want:
            raise ShapeError(f"{what} {v.type} must have shape {list(want)}")
    if ctx.has_input(4):
        lens = ctx.need_const(4, "sequence_lens")
        if np.any(lens != seq):
            raise UnsupportedOpError(f"sequence_lens {lens.tolist()} differ from the sequence length {seq} "
                                     "(padded sequences are not supported)")
    if kind == "LSTM" and ctx.attr("input_forget", 0):
        raise UnsupportedOpError("input_forget=1 (coupled input and forget gates) is not supported")
    acts = _activations(ctx, n_dirs)
    clip = ctx.attr("clip")
    lbr = ctx.attr("linear_before_reset", 0)
    dt = x.dtype.numpy
    zeros = ctx.constant(np.zeros((batch, hidden), dt))
    flat = ctx.op("reshape", x, shape=(seq * batch, width))
    ys, hs, cs = [], [], []
    for d in range(n_dirs):
        xw = ctx.op("matmul", flat, ctx.op("transpose", _take(ctx, w, d), perm=(1, 0)))
        r_t = ctx.op("transpose", _take(ctx, r, d), perm=(1, 0))
        rb = None
        if ctx.has_input(3):
            b = _take(ctx, ctx.input(3), d)
            wb, rb = ctx.ops("split", [b], {"axis": 0, "sizes": (gh, gh)})
            if kind == "GRU" and lbr:  # Rbh is added inside the reset gate's product, each step
                rbzr, rb = ctx.ops("split", [rb], {"axis": 0, "sizes": (2 * hidden, hidden)})
                wb = ctx.op("add", wb, ctx.op("concat", rbzr, ctx.constant(np.zeros(hidden, dt)), axis=0))
            else:
                wb, rb = ctx.op("add", wb, rb), None
            xw = ctx.op("add", xw, wb)
        xw = ctx.op("reshape", xw, shape=(seq, batch, gh))
        h = _take(ctx, ctx.input(5), d) if ctx.has_input(5) else zeros
        c = _take(ctx, ctx.input(6), d) if kind == "LSTM" and ctx.has_input(6) else zeros
        peep = None
        if kind == "LSTM" and ctx.has_input(7):
            peep = ctx.op("reshape", _take(ctx, ctx.input(7), d), shape=(3, hidden))
        s = _Step(ctx, acts[d], clip, r_t, rb, peep, hidden, gates)
        out = [None] * seq
        steps = range(seq - 1, -1, -1) if direction == "reverse" or d == 1 else range(seq)
        for t in steps:
            xt = _take(ctx, xw, t)
            if kind == "RNN":
                h, _ = _rnn_step(s, xt, h, None)
            elif kind == "GRU":
                h, _ = _gru_step(s, xt, h, None, lbr)
            else:
                h, c = _lstm_step(s, xt, h, c)
            out[t] = ctx.op("reshape", h, shape=(1, 1, batch, hidden))
        ys.append(out[0] if seq == 1 else ctx.op("concat", *out, axis=0))
        hs.append(ctx.op("reshape", h, shape=(1, batch, hidden)))
        cs.append(ctx.op("reshape", c, shape=(1, batch, hidden)))
    y = ys[0] if n_dirs == 1 else ctx.op("concat", *ys, axis=1)
    y_h = hs[0] if n_dirs == 1 else ctx.op("concat", *hs, axis=0)
    y_c = cs[0] if n_dirs == 1 else ctx.op("concat", *cs, axis=0)
    if layout:
        y = ctx.op("transpose", y, perm=(2, 0, 1, 3))
        y_h, y_c = (ctx.op("transpose", v, perm=(1, 0, 2)) for v in (y_h, y_c))
    return (y, y_h, y_c) if kind == "LSTM" else (y, y_h)


import_rule("RNN", "GRU", "LSTM")(_recurrent)
