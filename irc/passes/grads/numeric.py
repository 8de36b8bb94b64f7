"""Gradient of mod (isnan and isinf are ZERO_GRAD): a - q * b with q = floor(a / b) (fmod=0) or
trunc(a / b) (fmod=1) held constant, since q is piecewise constant: da = dy, db = -dy * q."""

from __future__ import annotations

import numpy as np

from irc.passes.grads.common import grad_rule, unbroadcast


@grad_rule("mod")
def _mod(n, xs, ys, dys):
    a, b = xs
    dy = dys[0]
    ratio = a / b
    q = np.floor(ratio) if not n.attrs["fmod"] else np.sign(ratio) * np.floor(abs(ratio))
    return [unbroadcast(dy, a.shape), unbroadcast(-(dy * q), b.shape)]
