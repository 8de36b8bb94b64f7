"""The cost formulas ops declare: multiply-accumulates and FLOPs of one node from its static types.

Each op's class names its formula (``cost = per_output``) next to its reference; the ones shared
by many ops are here. The conventions:

- MACs are multiply-accumulates of the contractions: output elements times the weight's (or the
  shared dimension's) elements per output.
- FLOPs count 2 per MAC plus one per output element for each operand added after the product
  (a bias, gemm's C, a fused residual) and one for a fused activation (``act``).
- Element-wise ops: one FLOP per output element (exp or erf count one as well); cast one;
  identity none. Views and data movement: zero.
- Reductions: one per input element (a mean adds one divide per output).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Cost:
    """Multiply-accumulates and floating-point operations of one node (or a sum of them)."""

    macs: int = 0
    flops: int = 0

    def __add__(self, other: Cost) -> Cost:
        return Cost(self.macs + other.macs, self.flops + other.flops)


CostFn = Callable[..., Cost]


def out_size(n) -> int:
    """Elements of all of ``n``'s outputs."""
    return sum(v.type.size for v in n.outputs)


def free(n) -> Cost:
    return Cost()


def per_output(n) -> Cost:
    return Cost(0, out_size(n))


def per_output_times(k: int) -> CostFn:
    return lambda n: Cost(0, k * out_size(n))


def per_input(n) -> Cost:
    return Cost(0, n.inputs[0].type.size)


def reduce_mean(n) -> Cost:
    """One add per input element and one divide per output element."""
    return Cost(0, n.inputs[0].type.size + out_size(n))


def contraction(n, macs: int) -> Cost:
    """2 FLOPs per MAC, plus one per output element for each operand added after the product
    (a bias, gemm's C, a fused residual) and for a fused activation."""
    extra = len(n.inputs) - 2 + (n.attrs.get("act", "none") != "none")
    return Cost(macs, 2 * macs + extra * out_size(n))


def matmul(n) -> Cost:
    """Output elements times the shared dimension (the last of the first operand)."""
    a = n.inputs[0].shape
    return contraction(n, out_size(n) * (a[-1] if a else 1))


def conv(n) -> Cost:
    """Weight (Cout, Cin/group, *kernel): each output element reads Cin/group * prod(kernel) weights."""
    return contraction(n, out_size(n) * math.prod(n.inputs[1].shape[1:]))


def window(n) -> int:
    """Elements of a pooling window."""
    return math.prod(n.attrs["kernel_shape"])


def conv_gemm(n) -> Cost:
    """A convolution whose weight is packed (conv_gemm, qconv_gemm): the attributes keep the kernel and group."""
    cin = n.inputs[0].shape[1]
    return contraction(n, out_size(n) * cin // n.attrs["group"] * math.prod(n.attrs["kernel_shape"]))
