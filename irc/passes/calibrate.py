"""Calibration: the ranges of a float graph's activations, measured on sample inputs.

The float graph runs in the reference interpreter over the calibration batches; the
interpreter's ``observe`` hook sees every node's outputs. Three ways to turn what was seen into
a range [lo, hi] per float value (graph inputs and node outputs):

- ``minmax``: the smallest and largest value seen;
- ``percentile``: the (100 - p)-th and p-th percentiles of all values seen (p = 99.99 by
  default), from a 2048-bin histogram over [min, max]; outliers are clipped;
- ``entropy``: TensorRT's KL-divergence threshold: the |x| histogram (2048 bins) is cut at
  the threshold T whose quantized version (128 levels, or 256 for a non-negative tensor stored
  as u8) loses the least information (smallest KL(P || Q)); the range is [max(min, -T), min(max, T)].
  Exact zeros are not counted (zero is always exact; ReLU's spike at 0 would bias T down).

Methods other than minmax take two runs over the data: one for min/max, one for histograms.
A value seen fewer times than there are bins (a pooled vector of a small batch) keeps its
min/max range: its histogram is too sparse to estimate outliers from.
Sample inputs come as a .npz path (keys are input names), a {name: array} dict, or an iterable
of such dicts (or of arrays, for one-input graphs). Arrays holding more samples than the
graph's batch are split along axis 0 into batches of the graph's size (a partial last batch is
dropped).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from irc.errors import InputError
from irc.ir.graph import Graph, Node, Value
from irc.ir.interp import interpret
from irc.passes.registry import Pass, register_pass

METHODS = ("minmax", "percentile", "entropy")
BINS = 2048
PERCENTILE = 99.99


@dataclass
class Stats:
    """What calibration saw of one value."""

    lo: float = math.inf
    hi: float = -math.inf
    sum_sq: float = 0.0
    count: int = 0
    hist: np.ndarray | None = None  # over [lo, hi] (percentile)
    abs_hist: np.ndarray | None = None  # over [0, max|x|] (entropy)

    @property
    def rms(self) -> float:
        return math.sqrt(self.sum_sq / self.count) if self.count else 0.0

    @property
    def amax(self) -> float:
        return max(abs(self.lo), abs(self.hi))


@dataclass
class Calibration:
    """Ranges (and RMS) of every float value, by value name."""

    method: str
    ranges: dict[str, tuple[float, float]] = field(default_factory=dict)
    rms: dict[str, float] = field(default_factory=dict)
    batches: int = 0

    def to_json(self) -> str:
        return json.dumps({"method": self.method, "batches": self.batches,
                           "ranges": {k: [lo, hi, self.rms.get(k, 0.0)] for k, (lo, hi) in self.ranges.items()}})

    @staticmethod
    def from_json(text: str) -> Calibration:
        d = json.loads(text)
        c = Calibration(d["method"], batches=d.get("batches", 0))
        for k, (lo, hi, rms) in d["ranges"].items():
            c.ranges[k] = (lo, hi)
            c.rms[k] = rms
        return c


# ---------------------------------------------------------------------------- sample inputs


def _load_npz(path) -> dict[str, np.ndarray]:
    p = os.fspath(path)
    if not os.path.isfile(p):
        raise InputError(f"calibration data '{p}' does not exist")
    try:
        data = np.load(p, allow_pickle=False)
    except (ValueError, OSError, EOFError) as e:
        raise InputError(f"cannot read calibration data '{p}' as .npz/.npy: {' '.join(str(e).split())}") from None
    if isinstance(data, np.ndarray):
        return {"": data}
    with data:
        return {k: data[k] for k in data.files}


def _split(g: Graph, arrays: Mapping[str, np.ndarray], where: str) -> list[dict[str, np.ndarray]]:
    """One {input: array} per batch the graph takes; arrays longer than the graph's batch are cut."""
    named = dict(arrays)
    if set(named) == {""} and len(g.inputs) == 1:
        named = {g.inputs[0].name: named[""]}
    missing = [v.name for v in g.inputs if v.name not in named]
    if missing:
        raise InputError(f"calibration data ({where}) has no array for input(s) {', '.join(missing)}; "
                         f"it holds {', '.join(sorted(named)) or 'nothing'}")
    counts = []
    for v in g.inputs:
        a = np.asarray(named[v.name])
        if a.shape == v.shape:
            counts.append(1)
            continue
        b = v.shape[0] if v.shape else 0
        if not v.shape or a.ndim != len(v.shape) or a.shape[1:] != v.shape[1:] or b == 0:
            raise InputError(f"calibration array for input '{v.name}' has shape {list(a.shape)}; expected "
                             f"{list(v.shape)} or [k*{b}, {', '.join(map(str, v.shape[1:]))}] ({where})")
        if a.shape[0] < b:
            raise InputError(f"calibration array for input '{v.name}' holds {a.shape[0]} samples; the model's "
                             f"batch is {b} ({where})")
        counts.append(a.shape[0] // b)
    n = min(counts)
    out = []
    for i in range(n):
        batch = {}
        for v in g.inputs:
            a = np.asarray(named[v.name])
            if a.shape != v.shape:
                a = a[i * v.shape[0]:(i + 1) * v.shape[0]]
            batch[v.name] = np.ascontiguousarray(a, dtype=v.dtype.numpy)
        out.append(batch)
    return out


def sample_batches(g: Graph, data) -> list[dict[str, np.ndarray]]:
    """The calibration batches (each a {input name: array} for ``g``) from ``data``: a .npz path,
    a dict of arrays, an array (one-input graphs) or an iterable of those."""
    if data is None:
        raise InputError("quantization needs calibration data: give calib={input: array} or a .npz path "
                         "(--calib data.npz)")
    if isinstance(data, (str, os.PathLike)):
        return _split(g, _load_npz(data), os.fspath(data))
    if isinstance(data, np.ndarray):
        return _split(g, {"": data}, "array")
    if isinstance(data, Mapping):
        return _split(g, data, "dict")
    if isinstance(data, Iterable):
        out = []
        for i, item in enumerate(data):
            out += sample_batches(g, item) if not isinstance(item, Mapping) else _split(g, item, f"item {i}")
        if not out:
            raise InputError("calibration data is empty")
        return out
    raise InputError(f"calibration data must be a .npz path, a dict of arrays or an iterable of them, "
                     f"not a {type(data).__name__}")


# ---------------------------------------------------------------------------- ranges


def _float_values(g: Graph) -> list[Value]:
    vals = [v for v in g.inputs if v.dtype.is_float]
    vals += [v for n in g.nodes for v in n.outputs if v.dtype.is_float]
    return vals


def calibrate(g: Graph, data, method: str = "minmax", *, percentile: float = PERCENTILE,
              bins: int = BINS, unsigned_levels: bool = True) -> Calibration:
    """Ranges of every float value of ``g`` over the calibration ``data`` (see module doc).
    ``unsigned_levels``: a non-negative tensor gets 256 levels in the entropy method (u8)."""
    if method not in METHODS:
        raise InputError(f"unknown calibration method '{method}' (known: {', '.join(METHODS)})")
    batches = sample_batches(g, data)
    stats: dict[Value, Stats] = {v: Stats() for v in _float_values(g)}

    def each(batch, fn) -> None:
        for v in g.inputs:
            if v in stats:
                fn(v, batch[v.name])

        def observe(n: Node, outs) -> None:
            for v, a in zip(n.outputs, outs):
                if v in stats:
                    fn(v, a)

        interpret(g, batch, observe=observe)

    def minmax(v: Value, a: np.ndarray) -> None:
        a = a[np.isfinite(a)]
        if a.size == 0:
            return
        s = stats[v]
        s.lo = min(s.lo, float(a.min()))
        s.hi = max(s.hi, float(a.max()))
        s.sum_sq += float(np.square(a, dtype=np.float64).sum())
        s.count += a.size

    for batch in batches:
        each(batch, minmax)
    if method != "minmax":
        def histograms(v: Value, a: np.ndarray) -> None:
            s = stats[v]
            if s.count == 0:
                return
            a = a[np.isfinite(a)].astype(np.float64)
            if method == "percentile":
                h, _ = np.histogram(a, bins=bins, range=(s.lo, max(s.hi, s.lo + 1e-30)))
                s.hist = h if s.hist is None else s.hist + h
            else:
                # Exact zeros (ReLU's spike) are left out: zero is exact whatever the threshold,
                # and the spike would otherwise dominate KL and pull the threshold down.
                mag = np.abs(a)
                h, _ = np.histogram(mag[mag > 0], bins=bins, range=(0.0, max(s.amax, 1e-30)))
                s.abs_hist = h if s.abs_hist is None else s.abs_hist + h

        for batch in batches:
            each(batch, histograms)
    out = Calibration(method, batches=len(batches))
    for v, s in stats.items():
        if s.count == 0:
            continue
        lo, hi = s.lo, s.hi
        if s.count < bins:
            pass  # too few values for a histogram to say more than min and max
        elif method == "percentile" and s.hist is not None:
            lo, hi = _percentile_range(s.hist, s.lo, s.hi, percentile)
        elif method == "entropy" and s.abs_hist is not None:
            levels = 256 if (s.lo >= 0 and unsigned_levels) else 128
            t = _kl_threshold(s.abs_hist, s.amax, levels)
            lo, hi = max(s.lo, -t), min(s.hi, t)
        out.ranges[v.name] = (float(lo), float(hi))
        out.rms[v.name] = s.rms
    return out


def _percentile_range(hist: np.ndarray, lo: float, hi: float, p: float) -> tuple[float, float]:
    cdf = np.cumsum(hist) / max(hist.sum(), 1)
    width = (hi - lo) / len(hist)
    q = 1 - p / 100
    i_lo = int(np.searchsorted(cdf, q, side="right"))
    i_hi = int(np.searchsorted(cdf, 1 - q, side="left"))
    return lo + i_lo * width, lo + (min(i_hi, len(hist) - 1) + 1) * width


def _kl_threshold(hist: np.ndarray, amax: float, levels: int) -> float:
    """TensorRT's entropy calibration on an |x| histogram over [0, amax]: the threshold T (a bin
    edge) minimising KL(P || Q), P the histogram cut at T with the outliers added to its last
    bin, Q that cut quantized to ``levels`` levels and expanded back over its non-empty bins."""
    nbins = len(hist)
    if nbins <= levels or hist.sum() == 0:
        return amax
    h = hist.astype(np.float64)
    width = amax / nbins
    step = max(1, (nbins - levels) // 256)
    best_kl, best_i = math.inf, nbins
    for i in list(range(levels, nbins, step)) + [nbins]:
        p = h[:i].copy()
        p[-1] += h[i:].sum()
        nz = h[:i] > 0
        idx = (np.arange(i) * levels) // i
        qsum = np.bincount(idx, weights=h[:i], minlength=levels)
        qcnt = np.bincount(idx, weights=nz.astype(np.float64), minlength=levels)
        q = np.where(nz, qsum[idx] / np.maximum(qcnt[idx], 1), 0.0)
        ps, qs = p.sum(), q.sum()
        if ps == 0 or qs == 0:
            continue
        p /= ps
        q /= qs
        mask = p > 0
        with np.errstate(divide="ignore"):
            kl = float(np.sum(p[mask] * np.log(p[mask] / np.where(q[mask] > 0, q[mask], 1e-12))))
        if kl < best_kl:
            best_kl, best_i = kl, i
    return best_i * width


def calibrate_pass(g: Graph, *, calib=None, calib_method: str = "minmax", activation_scheme: str = "asym") -> Graph:
    """The calibrate pass as a function (see Calibrate)."""
    cal = calibrate(g, calib, calib_method, unsigned_levels=activation_scheme != "sym")
    return g.replace(meta={**g.meta, "calibration": cal.to_json()})


@register_pass
@dataclass(frozen=True)
class Calibrate(Pass):
    """Runs the float graph on the calibration data (``calib``: a .npz path, a dict of arrays or
    an iterable of them) and records each float value's range, by ``calib_method`` (minmax,
    percentile, entropy), in ``meta["calibration"]`` (JSON: {name: [lo, hi, rms]}) for the
    quantize pass. The graph itself is unchanged."""

    name: ClassVar[str] = "calibrate"
    calib: Any = None
    calib_method: str = "minmax"
    activation_scheme: str = "asym"

    def run(self, g: Graph) -> Graph:
        return calibrate_pass(g, calib=self.calib, calib_method=self.calib_method,
                              activation_scheme=self.activation_scheme)
