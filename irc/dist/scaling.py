"""How data-parallel training scales: a latency-bandwidth model fitted to measured all-reduces.

A ring all-reduce of S bytes over n ranks takes 2 (n-1) steps, each moving S/n bytes:

    t_allreduce(S, n) = 2 (n-1) alpha + 2 (n-1)/n * S / beta

(alpha: the latency of one step, beta: the link bandwidth in bytes/s). One global step of
data-parallel training on n ranks then takes

    t_step(n) = t_compute(1) / n + t_allreduce(S, n) / K

where t_compute(1) is one rank's compute for the whole global batch (the batch splits evenly),
S the gradient bytes (K = 1) or the weight and optimizer-state bytes (K > 1, every K steps).
The model ignores what does not shrink with the share (per-call overheads, a share too small
to fill the cores) and assumes the ring's links are the bottleneck, so it is an upper bound on
the speed-up.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from irc.errors import InputError


@dataclass(frozen=True)
class Link:
    """alpha (seconds per ring step) and beta (bytes per second) of the links between ranks."""

    alpha: float
    beta: float

    def allreduce_seconds(self, nbytes: float, ranks: int) -> float:
        if ranks <= 1:
            return 0.0
        return 2 * (ranks - 1) * self.alpha + 2 * (ranks - 1) / ranks * nbytes / self.beta


def fit_link(nbytes, seconds, ranks: int) -> Link:
    """The Link that best explains measured all-reduce times of ``nbytes`` payloads over
    ``ranks`` ranks (least squares of t = a + b S; a = 2(n-1) alpha, b = 2(n-1)/(n beta))."""
    if ranks < 2:
        raise InputError("all-reduce times need at least 2 ranks to fit a link")
    s, t = np.asarray(nbytes, np.float64), np.asarray(seconds, np.float64)
    if len(s) < 2 or len(s) != len(t):
        raise InputError("fit_link needs at least two (bytes, seconds) measurements")
    b, a = np.polyfit(s, t, 1)
    a, b = max(a, 1e-9), max(b, 1e-15)
    return Link(alpha=a / (2 * (ranks - 1)), beta=2 * (ranks - 1) / (ranks * b))


def step_estimate(compute_seconds: float, sync_bytes: float, ranks: int, link: Link, sync_every: int = 1) -> dict:
    """Predicted seconds per global step on ``ranks`` ranks, its communication share and the
    speed-up over one rank, from one rank's compute time for the global batch."""
    comm = link.allreduce_seconds(sync_bytes, ranks) / sync_every
    step = compute_seconds / ranks + comm
    return {"ranks": ranks, "step_s": step, "comm_share": comm / step, "speedup": compute_seconds / step}
