"""Test vectors: what each kernel reads and what the interpreter says it must write.

The whole graph runs once in the interpreter on seeded random inputs; every kernel then gets
its inputs as the device holds them (in the chosen precision) and, as expected output, the op's
numpy reference applied to exactly those inputs (in float64 for fixed point, then saturated to
the format's range as AP_SAT does). So a kernel is checked on its own: its error is its own
rounding, not what earlier kernels left.
"""

from __future__ import annotations

import numpy as np

from irc.ir.graph import Graph, Value
from irc.ir.interp import interpret
from irc.ir.ops import get_op
from irc.targets.fpga_hls.kernels import Kernel
from irc.targets.fpga_hls.precision import Precision


def sample_inputs(g: Graph, seed: int = 0) -> list[np.ndarray]:
    """Standard normal data (integers in [0, 10)) for every graph input."""
    rng = np.random.default_rng(seed)
    out = []
    for v in g.inputs:
        if v.dtype.is_float:
            out.append(rng.standard_normal(v.shape).astype(v.dtype.numpy))
        else:
            out.append(rng.integers(0, 10, v.shape).astype(v.dtype.numpy))
    return out


def quantized_graph(g: Graph, precision: Precision) -> Graph:
    """``g`` with every float parameter rounded to the precision (what the device computes with)."""
    if precision.is_float:
        return g
    return g.replace(params={v: (precision.round_trip(a) if a.dtype.kind == "f" else a) for v, a in g.params.items()})


def all_values(g: Graph, inputs: list[np.ndarray]) -> dict[Value, np.ndarray]:
    """Every value of ``g`` (inputs, parameters, node outputs) for ``inputs``."""
    values: dict[Value, np.ndarray] = dict(zip(g.inputs, inputs))
    values.update(g.params)

    def keep(node, outs):
        values.update(zip(node.outputs, outs))

    interpret(g, inputs, observe=keep)
    return values


def kernel_vectors(k: Kernel, precision: Precision, values: dict[Value, np.ndarray]) -> dict[str, np.ndarray]:
    """{arg name: raw device data} for inputs and {arg name + '.expected': float32/int64} for outputs."""
    out: dict[str, np.ndarray] = {}
    for a in k.inputs:
        out[a.name] = precision.to_device(values[a.value])
    seen = [precision.round_trip(values[v]) for v in k.node.inputs]
    if not precision.is_float and k.kind in ("dense", "conv", "pool", "global_pool"):
        # exact sums: the fixed-point kernel accumulates exactly, float32 would not
        seen = [s.astype(np.float64) for s in seen]
    results = get_op(k.node.op).evaluate(seen, k.node.attrs)
    for a, r in zip(k.outputs, results):
        r = np.asarray(r)
        if a.value.dtype.is_float:
            if not precision.is_float:
                lo, hi = precision.range
                r = np.clip(r, lo, hi)
            r = r.astype(np.float32)
        else:  # indices and integer tensors: compared exactly, as int64
            r = r.astype(np.int64)
        out[a.name + ".expected"] = np.ascontiguousarray(r)
    return out


def tolerance(k: Kernel, precision: Precision) -> tuple[float, float]:
    """(atol, rtol) a kernel's outputs must meet: float32 kernels may reorder sums (1e-5, 1e-4);
    fixed-point kernels round once, to within one unit in the last place; integer outputs (int8
    layers, argmax) are exact."""
    if k.kind == "argmax" or not k.outputs[0].value.dtype.is_float:
        return 0.0, 0.0
    if precision.is_float:
        return 1e-5, 1e-4
    return precision.ulp, 0.0
