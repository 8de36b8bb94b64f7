"""Shared helpers of the fpga (HLS flow) tests: skips for a missing g++ or ap_types headers,
small graphs built with GraphBuilder, and the fixed-point format most tests use."""

from __future__ import annotations

import numpy as np
import pytest

from irc.ir import GraphBuilder
from irc.targets.fpga_hls import toolchain

needs_gxx = pytest.mark.skipif(toolchain.gxx() is None, reason="g++ is not on the PATH (C simulation needs it)")
needs_ap = pytest.mark.skipif(
    toolchain.find_ap_include() is None,
    reason="ap_types headers not found (pip install --no-deps hls4ml, or Vitis HLS's $XILINX_HLS/include)")

FIXED = "ap_fixed<16,6>"


def mlp_graph(batch: int = 2, sizes=(12, 16, 8), seed: int = 0):
    """gemm + bias + relu layers, softmax at the end (no reshape)."""
    rng = np.random.default_rng(seed)
    b = GraphBuilder("mlp")
    x = b.input("x", (batch, sizes[0]))
    for i, (k, n) in enumerate(zip(sizes[:-1], sizes[1:])):
        w = b.param(f"w{i}", (rng.standard_normal((k, n)) * np.sqrt(2.0 / k)).astype(np.float32))
        bias = b.param(f"b{i}", (rng.standard_normal(n) * 0.1).astype(np.float32))
        x = b.op("gemm", x, w, bias)
        if i < len(sizes) - 2:
            x = b.op("relu", x)
    return b.build(b.op("softmax", x))


def cnn_graph(batch: int = 2, seed: int = 0):
    """conv-relu-maxpool, conv-relu-avgpool, global average pool, reshape, dense, sigmoid."""
    rng = np.random.default_rng(seed)
    b = GraphBuilder("cnn")
    x = b.input("x", (batch, 2, 10, 10))

    def w(shape, fan_in):
        return (rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype(np.float32)

    y = b.op("conv", x, b.param("w1", w((4, 2, 3, 3), 18)), b.param("b1", w((4,), 4)), pads=(1, 1, 1, 1))
    y = b.op("max_pool", b.op("relu", y), kernel_shape=(2, 2), strides=(2, 2))
    y = b.op("conv", y, b.param("w2", w((6, 4, 3, 3), 36)), b.param("b2", w((6,), 6)))
    y = b.op("average_pool", b.op("relu", y), kernel_shape=(2, 2), strides=(1, 1))
    y = b.op("reshape", b.op("global_average_pool", y), shape=(batch, 6))
    y = b.op("gemm", y, b.param("w3", w((6, 5), 6)), b.param("b3", w((5,), 5)))
    return b.build(b.op("sigmoid", y))
