"""Shared helpers of the DNeuro flow tests: float graphs with every block kind, their quantized
forms through the shared quantize pass (cached per session), and the simulator skip."""

from __future__ import annotations

import functools

import numpy as np
import pytest

import irc.zoo
from irc.frontend.onnx.importer import import_onnx
from irc.ir.builder import GraphBuilder
from irc.ir.graph import Graph
from irc.passes.pipeline import run_pipeline
from irc.targets.dneuro.sim import available

#: Icarus Verilog first in tests: it compiles in a second, where Verilator takes half a minute.
SIMULATOR = available("iverilog") or available()
needs_sim = pytest.mark.skipif(SIMULATOR is None, reason="no RTL simulator (apt-get install verilator iverilog)")
PREPARE = ["dead_code", "fold_constants"]
QUANTIZE = ["dead_code", "fold_constants", "fold_batchnorm", "quantize", "dead_code"]


def mixed_graph(seed: int = 0, softmax: bool = True) -> Graph:
    """Strided conv, 1x1 conv, padded max pool, concat, sigmoid, nearest 2x resize, global
    average pool and a MatMul classifier: every block kind the zoo nets lack."""
    rng = np.random.default_rng(seed)
    b = GraphBuilder("mixed")
    x = b.input("x", (1, 3, 16, 16))

    def conv(v, m, k, **kw):
        cin = v.shape[1] // kw.get("group", 1)
        w = b.param("w", (rng.standard_normal((m, cin, k, k)) * np.sqrt(2 / (cin * k * k))).astype(np.float32))
        return b.op("conv", v, w, b.param("b", (rng.standard_normal(m) * 0.1).astype(np.float32)),
                    pads=(k // 2,) * 4, **kw)

    y = b.op("relu", conv(x, 8, 3, strides=(2, 2)))
    a = b.op("relu", conv(y, 4, 1))
    c = b.op("max_pool", y, kernel_shape=(3, 3), strides=(1, 1), pads=(1, 1, 1, 1))
    z = b.op("sigmoid", conv(b.op("concat", a, c, axis=1), 8, 3))
    z = b.op("resize", z, mode="nearest", scales=(1.0, 1.0, 2.0, 2.0), coordinate_transformation_mode="asymmetric",
             nearest_mode="floor")
    z = b.op("relu", conv(z, 6, 3, strides=(2, 2), group=2))
    z = b.op("reshape", b.op("global_average_pool", z), shape=(1, 6))
    z = b.op("matmul", z, b.param("fw", rng.standard_normal((6, 5)).astype(np.float32)))
    return b.build(b.op("softmax", z, axis=-1) if softmax else z)


def inception_graph(seed: int = 0) -> Graph:
    """A GoogLeNet-style block on 8x8 frames: four branches of different depths (1x1; 1x1-3x3;
    1x1-5x5; 3x3 max pool-1x1) joined by one four-input concat, a 1x1 conv and a classifier."""
    rng = np.random.default_rng(seed)
    b = GraphBuilder("inception")
    x = b.input("x", (1, 3, 8, 8))

    def conv(v, m, k):
        cin = v.shape[1]
        w = b.param("w", (rng.standard_normal((m, cin, k, k)) * np.sqrt(2 / (cin * k * k))).astype(np.float32))
        return b.op("relu", b.op("conv", v, w, b.param("b", (rng.standard_normal(m) * 0.1).astype(np.float32)),
                                 pads=(k // 2,) * 4))

    x = conv(x, 8, 3)
    pool = b.op("max_pool", x, kernel_shape=(3, 3), strides=(1, 1), pads=(1, 1, 1, 1))
    y = b.op("concat", conv(x, 4, 1), conv(conv(x, 4, 1), 6, 3), conv(conv(x, 2, 1), 4, 5), conv(pool, 2, 1), axis=1)
    # (A concat read by a float layer, e.g. straight into a global average pool, stays float
    # after quantization; a conv after it, as between inception modules, quantizes.)
    y = b.op("reshape", b.op("global_average_pool", conv(y, 12, 1)), shape=(1, 12))
    return b.build(b.op("gemm", y, b.param("fw", rng.standard_normal((12, 10)).astype(np.float32))))


#: name -> (zoo builder keywords, input shape at batch 1)
ZOO = {
    "lenet5": ({}, (1, 1, 28, 28)),
    "small_resnet": ({}, (1, 3, 32, 32)),
    "mobilenet_v2": ({"width": 0.35, "image": 32, "classes": 10}, (1, 3, 32, 32)),
    "vgg_cifar": ({"width": 0.5}, (1, 3, 32, 32)),
    "squeezenet": ({"version": "1.1", "image": 48, "classes": 10}, (1, 3, 48, 48)),
}


@functools.cache
def float_graph(name: str) -> Graph:
    if name == "mixed":
        return mixed_graph()
    if name == "inception":
        return inception_graph()
    kw, shape = ZOO[name]
    return import_onnx(irc.zoo.build(name, batch=1, **kw), {"input": shape})


def calib_data(g: Graph, n: int = 8, seed: int = 0) -> dict[str, np.ndarray]:
    x = g.inputs[0]
    rng = np.random.default_rng(seed)
    return {x.name: rng.standard_normal((n, *x.shape[1:])).astype(np.float32)}


@functools.cache
def quantized_graph(name: str, scheme: str = "asym") -> Graph:
    g = float_graph(name)
    return run_pipeline(g, QUANTIZE, options={"calib": calib_data(g), "activation_scheme": scheme})
