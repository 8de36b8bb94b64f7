"""The ``slow`` marker on the heavy cases of a parametrization, so that ``pytest -m "not slow"``
keeps a representative light case of every test (see pyproject.toml for the marker)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

slow = pytest.mark.slow


def slow_except(fast, params) -> list:
    """``params`` (pytest.param objects with ids) with the ``slow`` marker on all but those whose
    id is in ``fast`` (each of which must name one)."""
    unknown = set(fast) - {p.id for p in params}
    assert not unknown, f"no such parameters: {sorted(unknown)}"
    return [p if p.id in fast else pytest.param(*p.values, id=p.id, marks=[*p.marks, slow]) for p in params]


def _id(value) -> str:
    return np.dtype(value).name if isinstance(value, type) else str(value)


def params(values, *, fast) -> list:
    """``values`` (argument tuples, or single arguments) as pytest parameters with the ids pytest
    would give them ("lenet-True"), the ``slow`` marker on all but the ids in ``fast``."""
    values = [v if isinstance(v, tuple) else (v,) for v in values]
    return slow_except(fast, [pytest.param(*vs, id="-".join(map(_id, vs))) for vs in values])


def grid(*axes, fast) -> list:
    """The cross product of ``axes`` as pytest parameters with the ids stacked parametrize
    decorators would give ("float32-relu"), the ``slow`` marker on all but the ids in ``fast``."""
    return params(list(itertools.product(*axes)), fast=fast)
