"""Self-gated activations: x times a smooth gate of x. Transformers use them after their first
linear layer (GELU in BERT and GPT-2, SiLU/Swish in newer ones); as one op each they become a
GEMM epilogue instead of four to six separate element-wise passes over memory.

    gelu(x)      = x * Phi(x)     = 0.5 x (1 + erf(x / sqrt 2))           (exact)
    gelu_tanh(x) = 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))        (tanh approximation)
    silu(x)      = x * sigmoid(x)                                         (Swish with beta 1)

The references compute in float64 and round once to x's dtype.
"""

from __future__ import annotations

import math

import numpy as np

from irc.ir.ops.costs import per_output
from irc.ir.ops.registry import Trait, defop, expect_float

#: constants of the GELU forms (the pattern pass matches exported graphs against these)
INV_SQRT2 = 1 / math.sqrt(2)
SQRT_2_OVER_PI = math.sqrt(2 / math.pi)
GELU_TANH_CUBIC = 0.044715

_ERF = np.frompyfunc(math.erf, 1, 1)


def gelu(x: np.ndarray) -> np.ndarray:
    x64 = x.astype(np.float64)
    return (0.5 * x64 * (1 + np.asarray(_ERF(x64 * INV_SQRT2), np.float64))).astype(x.dtype)


def gelu_tanh(x: np.ndarray) -> np.ndarray:
    x64 = x.astype(np.float64)
    return (0.5 * x64 * (1 + np.tanh(SQRT_2_OVER_PI * (x64 + GELU_TANH_CUBIC * x64**3)))).astype(x.dtype)


def silu(x: np.ndarray) -> np.ndarray:
    x64 = x.astype(np.float64)
    # x * sigmoid(x) with the exponent never positive, so nothing overflows.
    e = np.exp(-np.abs(x64))
    return (x64 * np.where(x64 >= 0, 1 / (1 + e), e / (1 + e))).astype(x.dtype)


def _define(name: str, fn, doc: str) -> None:
    def infer(x):
        expect_float(x)
        return x

    def reference(x):
        return fn(x)

    cls = type(name, (), {"__doc__": doc, "infer": infer, "reference": reference, "cost": per_output})
    defop(name, ("x",), traits=(Trait.ELEMENTWISE, Trait.UNARY, Trait.ACTIVATION))(cls)


_define("gelu", gelu, "x * Phi(x) = 0.5 x (1 + erf(x/sqrt 2)): the exact GELU.")
_define("gelu_tanh", gelu_tanh, "0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))): GELU's tanh approximation.")
_define("silu", silu, "x * sigmoid(x) (SiLU, Swish with beta 1).")
