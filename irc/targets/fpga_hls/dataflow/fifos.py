"""FIFO depths from the stages' schedules: how many pixels each stage must have read before it
writes each of its output pixels, composed along the branches of every fork.

A stage reads its input stream in order and writes its output in order. For output pixel j,
``need(stage, port)[j]`` is the count of input pixels it has read when it writes j (a sliding
window: every pixel up to the window's bottom-right corner, and as many as up to the next
window's where its walk runs ahead while it computes; a dense or global pooling layer: the
whole frame; a pixel-wise stage: j + 1).

A chain (one producer, one consumer) cannot deadlock: a full FIFO only makes the producer wait,
so it gets the depth that lets both run at one pixel a cycle (2). Where a fork feeds two branches
that meet again (a residual block), the fork writes each pixel to both branches at once while the
join reads pixel j of both at once; by then the long branch may have taken N_long(j) fork pixels
(at most, its stages running ahead) and the short one N_short(j) (at least), so the short branch
must hold the difference or the fork stalls, the long branch starves and the network deadlocks.
Each branch's first FIFO therefore gets max_j (N_other(j) - N_own(j)) plus the chain depth: the
path-length difference in pixels.
"""

from __future__ import annotations

import numpy as np

from irc.errors import UnsupportedOpError
from irc.targets.fpga_hls.dataflow.plan import WINDOW_KINDS, Network, Stage

#: depth of a chain FIFO: the producer writes pixel j + 1 while the consumer reads pixel j
CHAIN_DEPTH = 2


def window_geometry(s: Stage) -> dict[str, int]:
    """Padded extent a sliding-window stage walks: every input row and column after the top/left
    pads, and as far as the last window reaches (bottom/right pads, ceil_mode pooling)."""
    q = s.kernel.params
    hp = max(q["PT"] + q["H"], (q["OH"] - 1) * q["SH"] + q["KH"])
    wp = max(q["PL"] + q["W"], (q["OW"] - 1) * q["SW"] + q["KW"])
    return {"HP": hp, "WP": wp}


def window_ends(s: Stage) -> np.ndarray:
    """Padded raster positions (row * WP + column) where the windows of a sliding-window stage
    end, in output order."""
    q = s.kernel.params
    wp = window_geometry(s)["WP"]
    oh, ow = np.meshgrid(np.arange(q["OH"]), np.arange(q["OW"]), indexing="ij")
    return ((oh * q["SH"] + q["KH"] - 1) * wp + ow * q["SW"] + q["KW"] - 1).reshape(-1)


def walk_ticks(s: Stage, steps: int, overlap: bool) -> int:
    """Iterations of irc_dataflow.h's walk() over one frame (its TICKS). Windows end at padded
    positions p_1 < ... < p_M, an output takes ``steps`` compute steps; window k is handed over
    at h_k (h_1 = p_1), its steps run in the ``steps`` iterations after it, and
    - with ``overlap`` the walk shifts on meanwhile, up to the next window, which waits for the
      previous one's steps: h_k = h_(k-1) + max(p_k - p_(k-1), steps);
    - without, the walk waits during the steps (and shifts again in the last one's iteration):
      h_k = h_(k-1) + p_k - p_(k-1) + steps - 1;
    after the last window the walk shifts the rest of the frame in."""
    g = window_geometry(s)
    ends = window_ends(s).astype(np.int64)
    rest = g["HP"] * g["WP"] - 1 - int(ends[-1])
    gaps = np.diff(ends)
    if overlap:
        hand = int(ends[0] + np.maximum(gaps, steps).sum())
        return max(hand + steps, hand + rest) + 1
    hand = int(ends[0] + (gaps + steps - 1).sum())
    return max(hand + steps, hand + steps - 1 + rest) + 1


def _inside_before(s: Stage, pos: np.ndarray) -> np.ndarray:
    """Image pixels among the padded positions 0..pos (the stream pixels read by then)."""
    q = s.kernel.params
    wp = window_geometry(s)["WP"]
    ph, pw = pos // wp, pos % wp
    rows = np.clip(ph - q["PT"], 0, q["H"])
    inside_row = (ph >= q["PT"]) & (ph < q["PT"] + q["H"])
    cols = np.clip(pw - q["PL"] + 1, 0, q["W"])
    return rows * q["W"] + np.where(inside_row, cols, 0)


def need(net: Network, s: Stage, port: int, ahead: bool = False) -> np.ndarray:
    """For each output pixel of ``s``: input pixels of ``port`` read when it is written; the
    fewest the stage must have read, or (``ahead``) the most it may have: a window stage walks
    on while it computes an output, up to the end of the next window."""
    fin = net.fifo_in(s, port)
    out_pixels = net.fifo_out(s).pixels if s.outs else fin.pixels
    if s.kind in WINDOW_KINDS and port == 0:
        ends = window_ends(s)
        if ahead:
            g = window_geometry(s)
            ends = np.append(ends[1:], g["HP"] * g["WP"] - 1)
        return _inside_before(s, ends)
    if s.kind in ("dense", "qdense", "global_pool", "qgpool"):
        return np.full(out_pixels, fin.pixels)
    return np.arange(1, out_pixels + 1)


def _compose(net: Network, path: list[tuple[Stage, int]], counts: np.ndarray, ahead: bool) -> np.ndarray:
    """Pixels of the path's first stream read when the last stage has read ``counts`` pixels."""
    for s, port in reversed(path):
        n = need(net, s, port, ahead)
        counts = np.where(counts > 0, n[np.clip(counts - 1, 0, len(n) - 1)], 0)
    return counts


def assign_depths(net: Network) -> None:
    """Set every FIFO's depth: the chain depth, plus the path-length difference on the first
    FIFO of each short branch of a fork."""
    for f in net.fifos:
        f.depth = CHAIN_DEPTH
    for fork in net.stages:
        if len(fork.outs) < 2:
            continue
        branches: dict[int, list] = {}
        for fi in fork.outs:
            path: list[tuple[Stage, int]] = []
            f = net.fifos[fi]
            while True:
                s = net.stages[f.consumer]
                port = s.ins.index(f.index)
                if len(s.ins) > 1 or s.kind == "write":
                    break
                if len(s.outs) != 1:
                    raise UnsupportedOpError("nested branches (a fork inside a branch) have no FIFO sizing yet",
                                             node=s.label)
                path.append((s, port))
                f = net.fifos[s.outs[0]]
            branches[fi] = (s, port, path)
        joins = {b[0].index for b in branches.values()}
        for j in joins:
            members = {fi: b for fi, b in branches.items() if b[0].index == j}
            if len(members) < 2:
                continue
            join = net.stages[j]
            most, least = {}, {}
            for fi, (_, port, path) in members.items():
                most[fi] = _compose(net, path, need(net, join, port, True), True)
                least[fi] = _compose(net, path, need(net, join, port, False), False)
            for fi in members:
                ahead = np.max(np.stack([most[o] for o in members if o != fi]), axis=0)
                net.fifos[fi].depth = CHAIN_DEPTH + max(0, int(np.max(ahead - least[fi])))
