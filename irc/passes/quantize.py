"""Post-training int8 quantization of a float graph.

Matches, in a float graph whose batch norms are folded (fold_batchnorm) and whose activation
ranges are known (the calibrate pass, or ``calib`` data given here):

- conv and gemm / 2-D matmul with constant weights -> ``qconv`` / ``qgemm``: int8 weights,
  symmetric per output channel (``weight_bits=7`` keeps them in [-63, 63]: a little more
  rounding error, and CPUs with AVX2 but no VNNI can use their faster byte multiply, see
  irc.targets.cpu.lowering.int8_gemm); int32 bias at scale x_scale * w_scale; per-channel fixed-point
  multipliers (M0, shift) for x_scale * w_scale / y_scale (quant_arith.quantize_multiplier); a
  following ReLU or Clip used by nothing else is folded into the saturation bounds;
- add of two same-shape activations -> ``qadd`` (ReLU folded likewise);
- global_average_pool of a quantized tensor -> ``qglobal_average_pool``;
- max_pool, global_max_pool and the views (reshape, flatten, squeeze, unsqueeze, transpose,
  identity) of a quantized tensor run on the integers, keeping its scale and zero point.

Activations are per tensor: u8 with a zero point (``activation_scheme="asym"``) or i8 symmetric
(``"sym"``). A float value gets a ``quantize_linear`` where an integer layer first reads it and a
``dequantize_linear`` where a float layer (or the graph's output) reads an integer one, so
layers that cannot be quantized stay float between the two. The pass records, in
``meta["quantization"]`` (JSON), every quantized layer with its scales and expected error, and
every layer left in float with the reason (read it with :func:`quant_report`).

Expected error per layer: the output's signal-to-quantization-noise ratio (activation RMS from
calibration over the rounding noise y_scale/sqrt(12), in dB) and the weights' relative RMS
rounding error. The whole graph's error is measured too: quantized vs float outputs on the
first calibration batch.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from irc.errors import InputError, IRCError
from irc.ir import quant_arith as qa
from irc.ir.builder import GraphBuilder
from irc.ir.graph import Graph, Node, Value
from irc.ir.interp import interpret
from irc.ir.ops import get_op
from irc.ir.ops.activation import activation_of
from irc.ir.types import DType, TensorType
from irc.passes.calibrate import Calibration, calibrate, sample_batches
from irc.passes.dead_code import eliminate_dead_code
from irc.passes.registry import Pass, register_pass

SCHEMES = {"asym": DType.u8, "sym": DType.i8}
#: Ops that only move or select values: on integers they keep the input's scale and zero point.
PASS_THROUGH = ("max_pool", "global_max_pool", "reshape", "flatten", "squeeze", "unsqueeze", "transpose", "identity")
#: Compute ops that stay float get a reason in the report; views and the rest are not listed.
LAYERS = ("conv", "gemm", "matmul", "add", "global_average_pool", "average_pool", "conv_transpose", "softmax",
          "log_softmax", "sigmoid", "tanh", "relu", "clip", "leaky_relu", "mul", "concat", "resize",
          "batch_norm", "hard_swish", "hard_sigmoid", "max_pool", "global_max_pool")


@dataclass(frozen=True)
class QInfo:
    """A quantized stand-in for a float value: the integer value and what its integers mean."""

    value: Value
    scale: float
    zero_point: int

    @property
    def dtype(self) -> DType:
        return self.value.dtype


class _Declined(Exception):
    """A layer stays float; the message says why."""


class _Quantizer:
    def __init__(self, g: Graph, cal: Calibration, act_dtype: DType, weight_bits: int = 8):
        self.g = g
        self.weight_bits = weight_bits
        self.cal = cal
        self.act_dtype = act_dtype
        self.params = dict(g.params)
        self.nodes: list[Node] = []
        self.users = g.users()
        self.outputs = set(g.outputs)
        self.names = GraphBuilder(g.name, taken=(v.name for v in g.values()))
        self.q: dict[Value, QInfo] = {}
        self.f: dict[Value, Value] = {v: v for v in g.inputs}
        self.folded: set[Node] = set()
        self.layers: list[dict] = []
        self.float_layers: list[dict] = []
        self.label = ""

    # -- making values and nodes
    def param(self, data, base: str) -> Value:
        data = np.asarray(data)
        data = data if data.flags.c_contiguous else data.copy()
        v = Value(self.names.fresh(base), TensorType.of(data))
        self.params[v] = data
        return v

    def emit(self, op: str, inputs, name: str | None = None, **attrs) -> Value:
        try:
            attrs, types = get_op(op).type_check([v.type for v in inputs], attrs)
        except IRCError as e:
            raise e.at(self.label, op) from None
        (t,) = types
        out = Value(name if name is not None else self.names.fresh(None), t)
        self.nodes.append(Node(op, tuple(inputs), (out,), attrs, self.label))
        return out

    # -- crossing between float and integers
    def range_of(self, v: Value) -> tuple[float, float]:
        r = self.cal.ranges.get(v.name)
        if r is None:
            raise _Declined(f"no calibration range for %{v.name}")
        return r

    def q_of(self, v: Value) -> QInfo:
        """The quantized version of activation ``v`` (a quantize_linear on first use)."""
        info = self.q.get(v)
        if info is not None:
            return info
        if v in self.params or not v.dtype.is_float:
            raise _Declined(f"%{v.name} is not a float activation")
        scale, zp = qa.choose_qparams(*self.range_of(v), self.act_dtype)
        dt = self.act_dtype
        out = self.emit("quantize_linear", [self.float_of(v), self.param(np.float32(scale), v.name + "_scale"),
                                            self.param(np.asarray(zp, dt.numpy), v.name + "_zp")],
                        name=self.names.fresh(v.name + "_q"))
        info = self.q[v] = QInfo(out, scale, zp)
        return info

    def float_of(self, v: Value) -> Value:
        """``v`` as a float value of the new graph (a dequantize_linear of its integers if it
        is only computed quantized; the dequantized value takes v's name)."""
        got = self.f.get(v)
        if got is not None:
            return got
        if v in self.params:
            return v
        info = self.q[v]
        out = self.emit("dequantize_linear", [info.value, self.param(np.float32(info.scale), v.name + "_scale"),
                                              self.param(np.asarray(info.zero_point, info.dtype.numpy), v.name + "_zp")],
                        name=v.name)
        self.f[v] = out
        return out

    # -- output side of an integer layer
    def activation_after(self, v: Value) -> tuple[Node | None, Value, str, float, float]:
        """A ReLU/Clip reading only ``v`` (foldable into saturation): (node, its output, act, min, max)."""
        users = self.users.get(v, [])
        if len(users) == 1 and v not in self.outputs:
            n = users[0]
            spec = activation_of(n.op, n.attrs)
            if spec is not None and spec[0] in ("relu", "clip"):
                return n, n.outputs[0], spec[0], spec[1], spec[2]
        return None, v, "none", -math.inf, math.inf

    def out_params(self, final: Value, act: str, amin: float, amax: float):
        lo, hi = self.range_of(final)
        dt = self.act_dtype
        scale, zp = qa.choose_qparams(lo, hi, dt)
        y_min, y_max = qa.saturation_bounds(dt, scale, zp, act, amin, amax)
        return scale, zp, dict(y_zero_point=zp, y_dtype=dt, y_min=y_min, y_max=y_max, y_scale=scale)

    def record(self, n: Node, final: Value, x: QInfo, scale: float, zp: int, act: str, w=None, wq=None, ws=None,
               axis: int = 0):
        rms = self.cal.rms.get(final.name, 0.0)
        noise = scale / math.sqrt(12)
        entry = {"node": n.label, "op": n.op, "x_scale": x.scale, "x_zero_point": x.zero_point,
                 "y_scale": scale, "y_zero_point": zp, "act": act,
                 "sqnr_db": round(20 * math.log10(rms / noise), 2) if rms > 0 and noise > 0 else None}
        if w is not None:
            shape = [1] * w.ndim
            shape[axis] = -1
            err = wq.astype(np.float64) * ws.reshape(shape) - w
            entry.update(w_scale_min=float(ws.min()), w_scale_max=float(ws.max()),
                         w_rel_err=float(np.sqrt(np.mean(err**2)) / max(np.sqrt(np.mean(w.astype(np.float64) ** 2)), 1e-30)))
        self.layers.append(entry)

    # -- layers
    def conv(self, n: Node) -> None:
        x, w = n.inputs[:2]
        wc = self.params.get(w)
        bc = self.params.get(n.inputs[2]) if len(n.inputs) > 2 else np.zeros(w.shape[0], np.float32)
        if wc is None or bc is None:
            raise _Declined("weights or bias are not constants")
        if x.dtype is not DType.f32:
            raise _Declined(f"input is {x.dtype}, not f32")
        self.linear(n, x, wc, bc, "qconv", axis=0, extra={k: n.attrs[k] for k in ("strides", "pads", "dilations", "group")})

    def gemm(self, n: Node) -> None:
        a, b = n.inputs[:2]
        at = n.attrs
        if at["trans_a"] or a.type.rank != 2 or a.dtype is not DType.f32:
            raise _Declined("only a row-major f32 matrix A is quantized (trans_a=0)")
        bc = self.params.get(b)
        if bc is None:
            raise _Declined("B is not a constant")
        w = (bc.T if at["trans_b"] else bc).astype(np.float64) * at["alpha"]
        nout = w.shape[1]
        bias = np.zeros(nout)
        if len(n.inputs) > 2:
            c = self.params.get(n.inputs[2])
            if c is None or c.size not in (1, nout) or (c.ndim == 2 and c.shape[0] != 1):
                raise _Declined("C is not a constant per-column bias")
            bias = np.broadcast_to(c.reshape(-1).astype(np.float64), (nout,)) * at["beta"]
        if at["act"] not in ("none", "relu"):
            raise _Declined(f"epilogue '{at['act']}' cannot be folded")
        self.linear(n, a, w.astype(np.float32), bias, "qgemm", axis=1, extra={}, epilogue=at["act"])

    def matmul(self, n: Node) -> None:
        a, b = n.inputs
        bc = self.params.get(b)
        if a.type.rank != 2 or bc is None or bc.ndim != 2 or a.dtype is not DType.f32:
            raise _Declined("only f32 matrix x constant matrix products are quantized")
        self.linear(n, a, bc, np.zeros(bc.shape[1]), "qgemm", axis=1, extra={})

    def linear(self, n: Node, x: Value, w: np.ndarray, bias: np.ndarray, op: str, axis: int, extra: dict,
               epilogue: str = "none") -> None:
        if epilogue == "relu":  # gemm's own epilogue: its output is already the ReLU's
            act_node, final, act, amin, amax = None, n.outputs[0], "relu", -math.inf, math.inf
        else:
            act_node, final, act, amin, amax = self.activation_after(n.outputs[0])
        xq = self.q_of(x)
        scale, zp, out_attrs = self.out_params(final, act, amin, amax)
        wq, ws = qa.quantize_weights(w, axis=axis, bits=self.weight_bits)
        b32 = qa.quantize_bias(bias, xq.scale, ws)
        m0, shift = qa.quantize_multipliers(np.float64(xq.scale) * ws.astype(np.float64) / np.float64(scale))
        base = n.outputs[0].name
        xname = "x" if op == "qconv" else "a"
        y = self.emit(op, [xq.value, self.param(wq, base + "_wq"), self.param(b32, base + "_bias"),
                           self.param(m0, base + "_m0"), self.param(shift, base + "_shift")],
                      name=self.names.fresh(final.name + "_q"), **extra,
                      **{f"{xname}_zero_point": xq.zero_point, f"{xname}_scale": xq.scale}, **out_attrs)
        self.q[final] = QInfo(y, scale, zp)
        if act_node is not None:
            self.folded.add(act_node)
        self.record(n, final, xq, scale, zp, act, w, wq, ws, axis)

    def add(self, n: Node) -> None:
        a, b = n.inputs
        if a in self.params or b in self.params or a.shape != b.shape:
            raise _Declined("an operand is a constant or broadcasts")
        act_node, final, act, amin, amax = self.activation_after(n.outputs[0])
        qa_, qb = self.q_of(a), self.q_of(b)
        scale, zp, out_attrs = self.out_params(final, act, amin, amax)
        ka, kb, m0, shift = qa.add_multipliers(qa_.scale, qb.scale, scale)
        y = self.emit("qadd", [qa_.value, qb.value], name=self.names.fresh(final.name + "_q"),
                      a_zero_point=qa_.zero_point, b_zero_point=qb.zero_point, a_mult=ka, b_mult=kb, multiplier=m0,
                      shift=shift, a_scale=qa_.scale, b_scale=qb.scale, **out_attrs)
        self.q[final] = QInfo(y, scale, zp)
        if act_node is not None:
            self.folded.add(act_node)
        self.record(n, final, qa_, scale, zp, act)

    def global_average_pool(self, n: Node) -> None:
        x = n.inputs[0]
        xq = self.q.get(x)
        if xq is None:
            raise _Declined("its input is float (not produced by an integer layer)")
        final = n.outputs[0]
        scale, zp, out_attrs = self.out_params(final, "none", -math.inf, math.inf)
        count = math.prod(x.shape[2:])
        m0, shift = qa.quantize_multiplier(np.float64(xq.scale) / (np.float64(scale) * count))
        y = self.emit("qglobal_average_pool", [xq.value], name=self.names.fresh(final.name + "_q"),
                      x_zero_point=xq.zero_point, multiplier=m0, shift=shift, x_scale=xq.scale, **out_attrs)
        self.q[final] = QInfo(y, scale, zp)
        self.record(n, final, xq, scale, zp, "none")

    def pass_through(self, n: Node) -> None:
        xq = self.q.get(n.inputs[0])
        if xq is None or any(v not in self.params for v in n.inputs[1:]):
            raise _Declined("its input is float (not produced by an integer layer)")
        y = self.emit(n.op, [xq.value, *n.inputs[1:]], name=self.names.fresh(n.outputs[0].name + "_q"), **n.attrs)
        self.q[n.outputs[0]] = QInfo(y, xq.scale, xq.zero_point)

    # -- the walk
    def run(self) -> Graph:
        handlers: dict[str, Callable[[Node], None]] = {
            "conv": self.conv, "gemm": self.gemm, "matmul": self.matmul, "add": self.add,
            "global_average_pool": self.global_average_pool,
            **{op: self.pass_through for op in PASS_THROUGH},
        }
        for n in self.g.nodes:
            if n in self.folded:
                continue
            self.label = n.label
            handler = handlers.get(n.op)
            reason = f"no int8 form of {n.op}"
            if handler is not None:
                try:
                    handler(n)
                    continue
                except _Declined as e:
                    # Nodes it made before declining (quantize_linear of an input) are dropped
                    # at the end if nothing else reads them.
                    reason = str(e)
            self.keep_float(n, reason)
        outputs = [self.float_of(v) for v in self.g.outputs]
        g = Graph(self.g.name, list(self.g.inputs), self.params, self.nodes, outputs, dict(self.g.meta))
        return eliminate_dead_code(g)

    def keep_float(self, n: Node, reason: str) -> None:
        ins = tuple(self.float_of(v) for v in n.inputs)
        self.nodes.append(Node(n.op, ins, n.outputs, n.attrs, n.name))
        for v in n.outputs:
            self.f[v] = v
        if n.op in LAYERS and not (n.op in PASS_THROUGH and reason.startswith("its input is float")):
            self.float_layers.append({"node": n.label, "op": n.op, "reason": reason})


def quant_report(g: Graph) -> dict | None:
    """The quantize pass's report on ``g`` (None if it was not quantized): {"layers": [...],
    "float_layers": [{node, op, reason}], "activation_scheme", "calibration", "output_error"}."""
    text = g.meta.get("quantization")
    return json.loads(text) if text else None


def _output_error(float_g: Graph, quant_g: Graph, batch) -> dict:
    want = interpret(float_g, batch)
    got = interpret(quant_g, batch)
    out = {}
    for v, a, b in zip(float_g.outputs, want, got):
        a64, b64 = a.astype(np.float64), b.astype(np.float64)
        rms = float(np.sqrt(np.mean(a64**2))) if a.size else 0.0
        err = b64 - a64
        out[v.name] = {"max_abs": float(np.abs(err).max()) if a.size else 0.0,
                       "rel_rms": float(np.sqrt(np.mean(err**2)) / rms) if rms > 0 else 0.0}
    return out


def quantize_graph(g: Graph, *, quantize: str | None = "int8", activation_scheme: str = "asym", calib=None,
                   calib_method: str = "minmax", weight_bits: int = 8) -> Graph:
    """The quantize pass as a function (see Quantize)."""
    if quantize not in (None, "int8"):
        raise InputError(f"unknown quantization '{quantize}' (known: int8)")
    if activation_scheme not in SCHEMES:
        raise InputError(f"unknown activation scheme '{activation_scheme}' (known: {', '.join(SCHEMES)})")
    if isinstance(weight_bits, bool) or not isinstance(weight_bits, int) or not 2 <= weight_bits <= 8:
        raise InputError(f"weight_bits must be an integer from 2 to 8, got {weight_bits!r}")
    if "quantization" in g.meta:
        return g
    if "calibration" in g.meta:
        cal = Calibration.from_json(g.meta["calibration"])
    else:
        cal = calibrate(g, calib, calib_method, unsigned_levels=activation_scheme != "sym")
    qz = _Quantizer(g, cal, SCHEMES[activation_scheme], weight_bits)
    out = qz.run()
    report = {"scheme": "int8", "activation_scheme": activation_scheme, "weight_bits": weight_bits,
              "calibration": cal.method,
              "layers": qz.layers, "float_layers": qz.float_layers}
    if calib is not None:
        report["output_error"] = _output_error(g, out, sample_batches(g, calib)[0])
    meta = {k: v for k, v in out.meta.items() if k != "calibration"}
    meta["quantization"] = json.dumps(report)
    return out.replace(meta=meta)


@register_pass
@dataclass(frozen=True)
class Quantize(Pass):
    """int8 post-training quantization (see the module doc): matches the float layers that have
    an integer form and produces qconv / qgemm / qadd ... between quantize_linear and
    dequantize_linear, with ``meta["quantization"]`` reporting each layer. Uses
    ``meta["calibration"]`` from the calibrate pass when present, else calibrates on ``calib``
    with ``calib_method``. ``quantize``: "int8" (None means the same; the pass only runs when
    asked for). ``weight_bits``: 8, or fewer to narrow the weights' range (see the module doc).
    A graph already quantized is left as it is."""

    name: ClassVar[str] = "quantize"
    quantize: str | None = "int8"
    activation_scheme: str = "asym"
    calib: Any = None
    calib_method: str = "minmax"
    weight_bits: int = 8

    def run(self, g: Graph) -> Graph:
        return quantize_graph(g, quantize=self.quantize, activation_scheme=self.activation_scheme, calib=self.calib,
                              calib_method=self.calib_method, weight_bits=self.weight_bits)
