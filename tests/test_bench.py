"""Measurement utilities (timings are reported, never asserted against a threshold)."""

import numpy as np

from irc.bench import Comparison, Timing, measure, peak_rss_bytes, random_inputs


def test_measure_counts_runs_after_warmup():
    calls = []
    t = measure(lambda: calls.append(1), warmup=2, min_runs=5, max_runs=5, budget_s=0.0)
    assert len(calls) == 7 and t.runs == 5
    assert t.p10 <= t.median <= t.p90


def test_random_inputs_are_deterministic_and_typed():
    a = random_inputs([("x", (2, 3), np.float32), ("i", (4,), np.int64), ("b", (2,), np.bool_)], seed=3)
    b = random_inputs([("x", (2, 3), np.float32), ("i", (4,), np.int64), ("b", (2,), np.bool_)], seed=3)
    assert a["x"].dtype == np.float32 and a["i"].dtype == np.int64 and a["b"].dtype == np.bool_
    np.testing.assert_array_equal(a["x"], b["x"])


def test_ratio_is_irc_over_peer():
    c = Comparison("m", 1, Timing(2.0, 1.9, 2.1, 10), "onnxruntime", Timing(4.0, 3.9, 4.1, 10))
    assert c.ratio == 0.5
    assert Comparison("m", 1, Timing(2.0, 1.9, 2.1, 10)).ratio is None


def test_peak_rss_is_positive():
    assert peak_rss_bytes() > 10 * 2**20
