"""Random graphs on the CPU target equal the interpreter (tolerances: graphs.tolerance). A few
seeded examples run in the fast suite; more under the slow marker."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings

from tests.differential.compare import run_case
from tests.differential.graphs import OPS, graphs

SETTINGS = dict(deadline=None, derandomize=True, suppress_health_check=list(HealthCheck), database=None)


def _check(case):
    out = run_case(case, "cpu", threads=1)
    assert out.kind == "match", f"{out.kind}: {out.detail}\n{case.describe()}"


@settings(max_examples=6, **SETTINGS)
@given(case=graphs(max_ops=6))
def test_random_graphs_cpu_equals_interp(case):
    _check(case)


@pytest.mark.slow
@settings(max_examples=60, **SETTINGS)
@given(case=graphs(max_ops=10))
def test_more_random_graphs_cpu_equals_interp(case):
    _check(case)


def test_generator_covers_its_ops():
    """Every op the generator knows exists in the registry (a renamed op fails here, not silently)."""
    from irc.ir.ops import REGISTRY

    assert set(OPS) <= set(REGISTRY)
