"""Test data of every irc element type, for the CPU kernel tests."""

from __future__ import annotations

import numpy as np

from irc.ir.types import DType

ALL_DTYPES = list(DType)
FLOAT_DTYPES = [DType.f32, DType.f64, DType.f16, DType.bf16]
INT_DTYPES = [d for d in DType if d.is_int]


def sample(shape, dt: DType, seed: int = 0, lo: float = -50, hi: float = 50) -> np.ndarray:
    """Random values of ``dt`` in [lo, hi] (clipped to the type's range); bools half true."""
    rng = np.random.default_rng(seed)
    if dt is DType.bool:
        return rng.random(shape) > 0.5
    if dt.is_int:
        info = np.iinfo(dt.numpy)
        return rng.integers(max(int(lo), int(info.min)), min(int(hi), int(info.max)) + 1, shape).astype(dt.numpy)
    return rng.uniform(lo, hi, shape).astype(dt.numpy)


def tolerance(dt: DType) -> dict:
    """rtol/atol for comparing an output of ``dt``: fp32's for f32 and f64, one unit in the last
    place for the half types (whose rounding can go either way on a different summation order)."""
    if dt is DType.f16:
        return {"rtol": 2e-3, "atol": 1e-5}
    if dt is DType.bf16:
        return {"rtol": 1.6e-2, "atol": 1e-5}
    return {}
