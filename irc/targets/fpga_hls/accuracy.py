"""How far a fixed-point design may be from the exact network: an error bound derived from the
format and propagated kernel by kernel.

Against the graph whose weights and inputs are already rounded to the format (the quantized
graph, vectors.quantized_graph), each kernel adds at most one unit in the last place (ulp =
2**-F) at its output, and passes on the error of its inputs scaled by how much it can amplify
them (its Lipschitz constant in the max norm):

- dense / conv: the largest absolute row sum of the weights, sum_k |w[k, j]|, times the input
  error, plus the residual's error, then through the activation (relu, clip 1; sigmoid 1/4;
  tanh 1; leaky relu max(1, |alpha|); hard sigmoid |alpha|; hard swish 3/2; gelu 1.13; silu 1.1);
- max / average pooling: 1; softmax: 1/2 (|d softmax_i| <= 2 p_i (1 - p_i) max|dx|);
- element-wise ops: sums add their inputs' errors, a product a*b adds |a| e_b + |b| e_a + e_a e_b
  with |a|, |b| the largest magnitudes the reference run saw, exp multiplies by e^(max + e).

The bound is first order for the smooth functions and assumes nothing saturates; it is what the
emulation tests and the host programs check fixed-point outputs against.
"""

from __future__ import annotations

import math

import numpy as np

from irc.ir.graph import Value
from irc.ir.interp import interpret

_ACT_LIPSCHITZ = {"none": 1.0, "relu": 1.0, "clip": 1.0, "sigmoid": 0.25, "tanh": 1.0, "hard_swish": 1.5,
                  "softplus": 1.0, "elu": None, "leaky_relu": None, "hard_sigmoid": None,
                  "gelu": 1.13, "gelu_tanh": 1.13, "silu": 1.1}
_UNARY_LIPSCHITZ = {"relu": 1.0, "clip": 1.0, "neg": 1.0, "abs": 1.0, "identity": 1.0, "sigmoid": 0.25,
                    "tanh": 1.0, "hard_swish": 1.5, "softplus": 1.0, "gelu": 1.13, "gelu_tanh": 1.13, "silu": 1.1}


def _act_l(act: str, alpha: float) -> float:
    if act in ("leaky_relu", "elu"):
        return max(1.0, abs(alpha))
    if act == "hard_sigmoid":
        return abs(alpha)
    return _ACT_LIPSCHITZ.get(act) or math.inf


def _mag(a: np.ndarray) -> float:
    return float(np.max(np.abs(a))) if a.size else 0.0


def _elementwise(node, err_in: list[float], vals_in: list[np.ndarray]) -> float:
    """Error after an element-wise node or chain (before the output's own rounding)."""
    if node.op == "elementwise_chain":
        prog = node.attrs["body"]
        env_e = dict(zip(prog.inputs, err_in))
        env_v: dict[Value, np.ndarray] = dict(zip(prog.inputs, vals_in))

        def keep(n, outs):
            env_v.update(zip(n.outputs, outs))

        interpret(prog, vals_in, observe=keep)
        for n in prog.nodes:
            env_e[n.outputs[0]] = _one(n.op, n.attrs, [env_e[v] for v in n.inputs], [env_v[v] for v in n.inputs])
        return env_e[prog.outputs[0]]
    return _one(node.op, node.attrs, err_in, vals_in)


def _one(op: str, attrs: dict, e: list[float], v: list[np.ndarray]) -> float:
    if op in _UNARY_LIPSCHITZ:
        return _UNARY_LIPSCHITZ[op] * e[0]
    if op in ("leaky_relu", "elu"):
        return max(1.0, abs(attrs["alpha"])) * e[0]
    if op == "hard_sigmoid":
        return abs(attrs["alpha"]) * e[0]
    if op in ("add", "sub"):
        return e[0] + e[1]
    if op in ("max", "min"):
        return max(e[0], e[1])
    if op in ("mul", "prelu"):
        return _mag(v[0]) * e[1] + _mag(v[1]) * e[0] + e[0] * e[1]
    if op == "exp":
        return math.exp(_mag(v[0]) + e[0]) * e[0]
    return math.inf


def output_bounds(exe, values: dict[Value, np.ndarray]) -> dict[Value, float]:
    """Absolute error bound of every buffer value of a fixed-point design (0 for float32)."""
    plan, prec = exe.kernel_plan, exe.precision
    err: dict[Value, float] = {v: 0.0 for v in list(exe.graph.inputs) + list(exe.graph.params)}
    ulp = prec.ulp

    def e_of(v: Value) -> float:
        return err.get(plan.buffer_of(v), err.get(v, 0.0))

    for k in plan.kernels:
        n = k.node
        ins = [e_of(v) for v in n.inputs]
        if k.kind in ("dense", "conv"):
            w = values[n.inputs[1]].astype(np.float64)
            rows = np.abs(w).sum(axis=0) if k.kind == "dense" else np.abs(w.reshape(w.shape[0], -1)).sum(axis=1)
            e_x = ins[0]
            e_w = ins[1]
            amp = float(rows.max()) * e_x + (_mag(values[n.inputs[0]]) * k.params.get("K", w[0].size) * e_w
                                             if e_w else 0.0)
            e = amp + (ins[3] if len(ins) > 3 else 0.0) + (ins[2] if len(ins) > 2 else 0.0)
            act, alpha, _ = k.extra["act"]
            out = _act_l(act, alpha) * e
        elif k.kind in ("pool", "global_pool"):
            out = ins[0]
        elif k.kind == "softmax":
            out = 0.5 * ins[0]
        elif k.kind == "argmax":
            out = math.inf if ins[0] > 0 else 0.0
        else:
            out = _elementwise(n, ins, [values[v] for v in n.inputs])
        for a in k.outputs:
            err[plan.buffer_of(a.value)] = out + (ulp if k.kind != "argmax" else 0.0)
    return {v: e_of(v) for v in exe.graph.outputs}


def network_tolerance(exe, values: dict[Value, np.ndarray]) -> tuple[float, float]:
    """(atol, rtol) for checking a whole run's outputs against the quantized graph's."""
    if exe.precision.is_float:
        return 1e-4, 1e-3
    bound = max(output_bounds(exe, values).values(), default=0.0)
    return (bound if math.isfinite(bound) else 1.0), 0.0
