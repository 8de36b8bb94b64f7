"""Layer mapping: an irc graph -> the DNeuro layer graph (one RTL block per layer).

Two graphs can be mapped:

- a **float** graph (after ``fold_batchnorm``): shapes only, for resource and cycle estimates
  (``irc dneuro fit``) and to refuse, before any quantization work, the layers the block library
  lacks;
- the **quantized** graph (after the shared ``quantize`` pass): every block gets its integer
  parameters, taken as they are from the qconv / qgemm / qadd / qglobal_average_pool nodes, so
  the accelerator computes exactly what the int8 interpreter computes.

What maps to what:

==============================  =================================================================
model layer                     block
==============================  =================================================================
Conv (strided, grouped, dw)     conv (partial connections for groups)
Gemm / MatMul (Fc)              conv whose kernel covers the whole frame (the flatten is implicit)
GlobalAveragePool               depthwise conv, unit weights, the mean's multiplier
MaxPool, GlobalMaxPool          maxpool
Add (two tensors)               eltwise (sum)
Pad (constant zero)             merged into the next conv (or max pool)
BatchNormalization              merged into the conv before it (fold_batchnorm)
Relu, Clip                      saturation bounds of the layer before (a table if alone)
Sigmoid                         lut (the logistic function tabulated on the 256 codes)
Resize (nearest, whole factor)  upsample
Concat (channels)               concat (implicit: a stream merge)
Dropout, Identity, Flatten      removed
Softmax / LogSoftmax (last)     argmax (top-1 class)
==============================  =================================================================

Everything else is refused, all at once (see refusals.py).
"""

from __future__ import annotations

import numpy as np

from irc.errors import UnsupportedOpError
from irc.ir import quant_arith as qa
from irc.ir.graph import Graph, Node, Value
from irc.ir.ops import get_op
from irc.ir.types import DType
from irc.targets.dneuro.islands import QuantizedEdges, _Ref, _whole_factors
from irc.targets.dneuro.layers import Layer, LayerGraph, Shape
from irc.targets.dneuro.refusals import (
    DEFAULT_REPLACEMENT,
    ONNX_REPLACEMENTS,
    RETRAIN,
    Refusal,
    refusal_error,
    refused_as,
)

# ----------------------------------------------------------------------------------------
# The mapper


class _Mapper(QuantizedEdges):
    def __init__(self, g: Graph):
        self.g = g
        self.quantized = any(n.op in _QUANT_OPS for n in g.nodes)
        self.layers: list[Layer] = []
        self.index: dict[str, Layer] = {}
        self.at: dict[Value, _Ref] = {}
        self.refusals: list[Refusal] = []
        self.host: dict = {}
        self.users = g.users()
        self.producers = g.producers()
        self.consts = g.params
        self.done: set[int] = set()
        #: Float views of codes in a quantized graph: value -> [(layer, nodes from its codes)].
        self.fview: dict[Value, list[tuple[str, list[Node]]]] = {}
        self.fcat: dict[Value, Node] = {}

    # -- helpers
    def refuse(self, n: Node, why: str = "", replacement: str | None = None) -> None:
        onnx_op = refused_as(n.op)
        rep = replacement or ONNX_REPLACEMENTS.get(onnx_op, DEFAULT_REPLACEMENT)
        self.refusals.append(Refusal(n.label, onnx_op, rep, why))

    def add(self, layer: Layer) -> Layer:
        base, k = layer.name or layer.kind, 1
        while layer.name in self.index or not layer.name:
            k += 1
            layer.name = f"{base}_{k}"
        self.layers.append(layer)
        self.index[layer.name] = layer
        return layer

    def shape_of(self, v: Value) -> Shape:
        return self.index[self.at[v].layer].shape

    def const(self, v: Value) -> np.ndarray | None:
        return self.consts.get(v)

    def single_use(self, v: Value) -> bool:
        return len(self.users.get(v, [])) == 1 and v not in self.g.outputs

    def ref(self, n: Node, i: int = 0) -> _Ref | None:
        v = n.inputs[i]
        r = self.at.get(v)
        if r is None:
            self.refuse(n, "its input does not come from a mapped layer")
        return r

    def take_pads(self, r: _Ref) -> tuple[int, int, int, int]:
        return r.pads or (0, 0, 0, 0)

    # -- entry
    def run(self) -> LayerGraph:
        g = self.g
        self.map_input()
        for i, n in enumerate(g.nodes):
            if i in self.done:
                continue
            before = len(self.refusals)
            if not (self.quantized and self.float_node(n)):
                handler = getattr(self, f"op_{n.op}", None)
                if handler is None:
                    self.refuse(n)
                else:
                    handler(n, i)
            if len(self.refusals) > before:
                self.stand_in(n)
        if len(g.outputs) != 1:
            self.refusals.append(Refusal(g.name, "graph", "a model with one output",
                                         f"{len(g.outputs)} outputs"))
        elif not self.refusals:
            out = g.outputs[0]
            r = self.at.get(out)
            if r is None:
                self.refusals.append(Refusal(out.name, "output", DEFAULT_REPLACEMENT, "not produced by a block"))
            elif self.layers[-1].name != r.layer:
                self.refusals.append(Refusal(out.name, "output", "a model whose output is its last layer",
                                             "the output is not the last block"))
        if self.refusals:
            raise refusal_error(self.refusals)
        self.host.setdefault("output_shape", list(g.outputs[0].shape[1:]))
        return LayerGraph(g.name, self.layers, self.host)

    def stand_in(self, n: Node) -> None:
        """Outputs of a refused node: a placeholder of the right shape (never a block), so that
        the layers after it are still checked, each on its own account."""
        for v in n.outputs:
            shape = _frame(v.shape)
            if shape is not None and v not in self.at:
                name = f"<{n.label}>"
                self.index[name] = Layer(name, "input", [], shape, v.dtype is DType.i8)
                self.at[v] = _Ref(name)

    def map_input(self) -> None:
        g = self.g
        if len(g.inputs) != 1:
            self.refusals.append(Refusal(g.name, "graph", "a model with one image input", f"{len(g.inputs)} inputs"))
            return
        x = g.inputs[0]
        shape = _frame(x.shape)
        if shape is None:
            self.refusals.append(Refusal(x.name, "input", "an input of shape (N, C, H, W) or (N, features)",
                                         f"shape {list(x.shape)}"))
            return
        signed = x.dtype is DType.i8
        self.add(Layer("input", "input", [], shape, signed, nodes=[x.name]))
        self.at[x] = _Ref("input")

    # -- convolutions
    def conv_layer(self, n: Node, r: _Ref, *, weight_shape, group, strides, pads, kind_src, arrays=None,
                   attrs=None) -> None:
        src = self.index[r.layer]
        m, cg, kh, kw = weight_shape
        pt, pl, pb, pr = (a + b for a, b in zip(self.take_pads(r), pads))
        sh, sw = strides
        ho = (src.shape.h + pt + pb - kh) // sh + 1
        wo = (src.shape.w + pl + pr - kw) // sw + 1
        a = {"kernel": (kh, kw), "stride": (sh, sw), "pads": (pt, pl, pb, pr), "group": group, "source": kind_src,
             **(attrs or {})}
        nodes = ([r.pad_node] if r.pad_node else []) + [n.label]
        signed = bool(attrs and attrs.get("y_signed"))
        layer = self.add(Layer(n.label, "conv", [src.name], Shape(m, ho, wo), signed, a, arrays or {}, nodes))
        self.at[n.outputs[0]] = _Ref(layer.name)

    def check_conv(self, n: Node, x_rank: int, dilations, group, cin, cout) -> bool:
        if x_rank != 4:
            self.refuse(n, f"{x_rank - 2}-D", "a 2-D convolution on (N, C, H, W) frames")
            return False
        if any(d != 1 for d in dilations):
            self.refuse(n, f"dilations {list(dilations)}", f"an undilated Conv with a larger kernel, {RETRAIN}")
            return False
        if cin % group or cout % group:
            self.refuse(n, f"group {group}")
            return False
        return True

    def op_conv(self, n: Node, i: int) -> None:
        r = self.ref(n)
        if r is None:
            return
        x, w = n.inputs[0], n.inputs[1]
        a = n.attrs
        if not self.check_conv(n, x.type.rank, a["dilations"], a["group"], x.shape[1], w.shape[0]):
            return
        pads = (a["pads"][0], a["pads"][1], a["pads"][2], a["pads"][3])
        self.conv_layer(n, r, weight_shape=w.shape, group=a["group"], strides=a["strides"], pads=pads,
                        kind_src="conv")
        if not self.bn_follows(n.output):
            self.fold_activation(n.output)

    def bn_follows(self, v: Value) -> bool:
        users = self.users.get(v, [])
        return len(users) == 1 and users[0].op == "batch_norm"

    def op_qconv(self, n: Node, i: int) -> None:
        r = self.ref(n)
        if r is None:
            return
        x, w, bias, mult, shift = n.inputs
        a = n.attrs
        if not self.check_conv(n, x.type.rank, a["dilations"], a["group"], x.shape[1], w.shape[0]):
            return
        arrays = self.int_params(n, w, bias, mult, shift)
        if arrays is None:
            return
        pads = (a["pads"][0], a["pads"][1], a["pads"][2], a["pads"][3])
        self.conv_layer(n, r, weight_shape=w.shape, group=a["group"], strides=a["strides"], pads=pads,
                        kind_src="conv", arrays=arrays, attrs=_requant_attrs(a, a["x_zero_point"]))

    def int_params(self, n: Node, w: Value, bias: Value, mult: Value, shift: Value) -> dict | None:
        arrays = {k: self.const(v) for k, v in (("weight", w), ("bias", bias), ("multiplier", mult), ("shift", shift))}
        missing = [k for k, a in arrays.items() if a is None]
        if missing:
            self.refuse(n, f"{', '.join(missing)} not constant", "a layer with constant weights")
            return None
        arrays["weight"] = arrays["weight"].astype(np.int8)
        for k in ("bias", "multiplier", "shift"):
            arrays[k] = arrays[k].astype(np.int32)
        return arrays

    def fc_layer(self, n: Node, r: _Ref, outputs: int, arrays=None, attrs=None) -> None:
        """A fully connected layer: a conv whose kernel covers the whole input frame."""
        frame = self.index[r.layer].shape
        self.conv_layer(n, r, weight_shape=(outputs, frame.c, frame.h, frame.w), group=1, strides=(1, 1),
                        pads=(0, 0, 0, 0), kind_src="fc", arrays=arrays, attrs=attrs)

    def op_gemm(self, n: Node, i: int) -> None:
        r = self.ref(n)
        if r is None:
            return
        a = n.attrs
        w = n.inputs[1]
        if self.const(w) is None or a["trans_a"] or n.inputs[0].type.rank != 2 or (
                len(n.inputs) > 2 and self.const(n.inputs[2]) is None):
            self.refuse(n, "weights are not constant", "a Fc (Gemm) layer with constant weights")
            return
        self.fc_layer(n, r, w.shape[0] if a["trans_b"] else w.shape[1])
        self.fold_activation(n.output)

    def op_matmul(self, n: Node, i: int) -> None:
        r = self.ref(n)
        if r is None:
            return
        w = n.inputs[1]
        if self.const(w) is None or w.type.rank != 2 or n.inputs[0].type.rank != 2:
            self.refuse(n, "not a product with a constant weight matrix", "a Fc (Gemm) layer with constant weights")
            return
        self.fc_layer(n, r, w.shape[1])
        self.fold_activation(n.output)

    def op_qgemm(self, n: Node, i: int) -> None:
        r = self.ref(n)
        if r is None:
            return
        a_, b, bias, mult, shift = n.inputs
        arrays = self.int_params(n, b, bias, mult, shift)
        if arrays is None:
            return
        frame = self.index[r.layer].shape
        if frame.size != b.shape[0]:
            self.refuse(n, f"{b.shape[0]} inputs for a frame of {frame}")
            return
        # b[k, j] with k = (c * H + h) * W + w (the NCHW flatten) -> w[j, c, h, w].
        arrays["weight"] = np.ascontiguousarray(arrays["weight"].T.reshape(b.shape[1], frame.c, frame.h, frame.w))
        at = n.attrs
        attrs = _requant_attrs({**at, "x_zero_point": at["a_zero_point"]}, at["a_zero_point"])
        self.fc_layer(n, r, b.shape[1], arrays, attrs)

    def op_global_average_pool(self, n: Node, i: int) -> None:
        r = self.ref(n)
        if r is None:
            return
        s = self.index[r.layer].shape
        self.conv_layer(n, r, weight_shape=(s.c, 1, s.h, s.w), group=s.c, strides=(1, 1), pads=(0, 0, 0, 0),
                        kind_src="global_average_pool")
        self.fold_activation(n.output)

    def op_qglobal_average_pool(self, n: Node, i: int) -> None:
        r = self.ref(n)
        if r is None:
            return
        s = self.index[r.layer].shape
        a = n.attrs
        # The mean is a depthwise conv with unit weights: acc = sum(x - zp), same requantize.
        arrays = {"weight": np.ones((s.c, 1, s.h, s.w), np.int8), "bias": np.zeros(s.c, np.int32),
                  "multiplier": np.full(s.c, a["multiplier"], np.int32), "shift": np.full(s.c, a["shift"], np.int32)}
        self.conv_layer(n, r, weight_shape=(s.c, 1, s.h, s.w), group=s.c, strides=(1, 1), pads=(0, 0, 0, 0),
                        kind_src="global_average_pool", arrays=arrays,
                        attrs=_requant_attrs(a, a["x_zero_point"]))

    def op_average_pool(self, n: Node, i: int) -> None:
        r = self.ref(n)
        if r is None:
            return
        s = self.index[r.layer].shape
        a = n.attrs
        if tuple(a["kernel_shape"]) == (s.h, s.w) and not any(a["pads"]) and not self.quantized:
            self.op_global_average_pool(n, i)
            return
        self.refuse(n, f"kernel {list(a['kernel_shape'])} on a {s.h}x{s.w} frame")

    # -- pooling
    def op_max_pool(self, n: Node, i: int) -> None:
        r = self.ref(n)
        if r is None:
            return
        a = n.attrs
        if n.inputs[0].type.rank != 4 or any(d != 1 for d in a["dilations"]):
            self.refuse(n, "not a 2-D undilated window", f"a 2-D MaxPool, {RETRAIN}")
            return
        if r.pads and self.quantized:
            self.refuse(n, "an explicit Pad before a max pool", "MaxPool's own padding")
            return
        src = self.index[r.layer]
        pt, pl, pb, pr = (x + y for x, y in zip(self.take_pads(r), a["pads"]))
        _, _, ho, wo = n.output.shape
        attrs = {"kernel": tuple(a["kernel_shape"]), "stride": tuple(a["strides"]), "pads": (pt, pl, pb, pr)}
        nodes = ([r.pad_node] if r.pad_node else []) + [n.label]
        layer = self.add(Layer(n.label, "maxpool", [src.name], Shape(src.shape.c, ho, wo), src.signed, attrs,
                               nodes=nodes))
        self.at[n.output] = _Ref(layer.name)

    def op_global_max_pool(self, n: Node, i: int) -> None:
        r = self.ref(n)
        if r is None:
            return
        src = self.index[r.layer]
        s = src.shape
        attrs = {"kernel": (s.h, s.w), "stride": (1, 1), "pads": (0, 0, 0, 0)}
        layer = self.add(Layer(n.label, "maxpool", [src.name], Shape(s.c, 1, 1), src.signed, attrs, nodes=[n.label]))
        self.at[n.output] = _Ref(layer.name)

    # -- element-wise
    def op_add(self, n: Node, i: int) -> None:
        ra, rb = self.at.get(n.inputs[0]), self.at.get(n.inputs[1])
        if ra is None or rb is None or n.inputs[0].shape != n.inputs[1].shape:
            self.refuse(n, "not a sum of two tensors of one shape", f"an element-wise sum of two layers, {RETRAIN}")
            return
        a, b = self.index[ra.layer], self.index[rb.layer]
        layer = self.add(Layer(n.label, "eltwise", [a.name, b.name], a.shape, False, {}, nodes=[n.label]))
        self.at[n.output] = _Ref(layer.name)
        self.fold_activation(n.output)

    def op_qadd(self, n: Node, i: int) -> None:
        ra, rb = self.at.get(n.inputs[0]), self.at.get(n.inputs[1])
        if ra is None or rb is None:
            self.refuse(n, "an input does not come from a mapped layer")
            return
        at = n.attrs
        attrs = {k: at[k] for k in ("a_zero_point", "b_zero_point", "a_mult", "b_mult", "multiplier", "shift")}
        attrs.update(_requant_attrs(at, None))
        a, b = self.index[ra.layer], self.index[rb.layer]
        layer = self.add(Layer(n.label, "eltwise", [a.name, b.name], a.shape, attrs["y_signed"], attrs,
                               nodes=[n.label]))
        self.at[n.output] = _Ref(layer.name)

    def fold_activation(self, v: Value) -> None:
        """A float ReLU / Clip right after a block becomes that block's saturation bounds."""
        users = self.users.get(v, [])
        if len(users) == 1 and v not in self.g.outputs and users[0].op in ("relu", "clip"):
            m = users[0]
            if m.op == "clip" and m.attrs.get("min", 0.0) is not None and m.attrs.get("min", 0.0) < 0:
                return
            layer = self.index[self.at[v].layer]
            layer.attrs["activation"] = "relu" if m.op == "relu" else "clip"
            layer.nodes.append(m.label)
            self.at[m.output] = self.at[v]
            self.done.add(self.g.nodes.index(m))

    def op_batch_norm(self, n: Node, i: int) -> None:
        """Float graphs: a BatchNorm right after a conv (its only user) is merged into it."""
        r = self.ref(n)
        if r is None:
            return
        prod = self.producers.get(n.inputs[0])
        if prod is None or prod.op not in ("conv", "gemm") or not self.single_use(n.inputs[0]) or \
                any(self.const(v) is None for v in n.inputs[1:]):
            self.refuse(n, "not right after a Conv", f"a BatchNormalization directly after a Conv, {RETRAIN}")
            return
        self.index[r.layer].nodes.append(n.label)
        self.at[n.output] = r
        self.fold_activation(n.output)

    def op_relu(self, n: Node, i: int) -> None:
        self.unary_table(n)

    def op_clip(self, n: Node, i: int) -> None:
        self.unary_table(n)

    def op_sigmoid(self, n: Node, i: int) -> None:
        self.unary_table(n)

    def unary_table(self, n: Node) -> None:
        """An activation that could not be folded: a table block (computed from the op's own
        reference on the 256 codes when the graph is quantized)."""
        r = self.ref(n)
        if r is None:
            return
        src = self.index[r.layer]
        arrays = {}
        if self.quantized:
            if n.inputs[0].dtype not in qa.QTYPES or n.output.dtype is not n.inputs[0].dtype:
                self.refuse(n, "stays float after quantization")
                return
            codes = np.arange(-128, 128, dtype=np.int8) if src.signed else np.arange(0, 256, dtype=np.uint8)
            arrays["table"] = get_op(n.op).evaluate([codes], n.attrs)[0].astype(np.int64)
        layer = self.add(Layer(n.label, "lut", [src.name], src.shape, src.signed, {"in_signed": src.signed,
                                                                                   "function": n.op},
                               arrays, nodes=[n.label]))
        self.at[n.output] = _Ref(layer.name)

    # -- data movement
    def op_concat(self, n: Node, i: int) -> None:
        refs = [self.at.get(v) for v in n.inputs]
        if any(r is None for r in refs) or n.attrs["axis"] != 1 or n.output.type.rank != 4:
            self.refuse(n, f"axis {n.attrs['axis']}", f"a Concat along channels, {RETRAIN}")
            return
        srcs = [self.index[r.layer] for r in refs]
        if self.quantized and len({s.signed for s in srcs}) != 1:
            self.refuse(n, "inputs of different types")
            return
        s = srcs[0].shape
        shape = Shape(sum(x.shape.c for x in srcs), s.h, s.w)
        layer = self.add(Layer(n.label, "concat", [x.name for x in srcs], shape, srcs[0].signed, {},
                               nodes=[n.label]))
        self.at[n.output] = _Ref(layer.name)

    def op_reshape(self, n: Node, i: int) -> None:
        r = self.ref(n)
        if r is None:
            return
        s = self.index[r.layer].shape
        out = n.output.shape
        if r.pads or not (len(out) == 2 and out[1] == s.size or tuple(out[1:]) == (s.c, s.h, s.w)):
            self.refuse(n, f"to {list(out)}", "a Flatten before a Fc layer")
            return
        self.at[n.output] = r
        self.index[r.layer].nodes.append(n.label)

    def op_identity(self, n: Node, i: int) -> None:
        r = self.ref(n)
        if r is not None:
            self.at[n.output] = r

    def op_pad(self, n: Node, i: int) -> None:
        r = self.ref(n)
        if r is None:
            return
        a = n.attrs
        p = a["pads"]
        users = self.users.get(n.output, [])
        ok_users = len(users) == 1 and users[0].op in ("conv", "qconv", "max_pool")
        if n.inputs[0].type.rank != 4 or a["mode"] != "constant" or any(p[k] for k in (0, 1, 4, 5)) or \
                any(x < 0 for x in p) or not ok_users or r.pads:
            self.refuse(n, "not a zero padding of H and W before a conv or max pool",
                        "the padding of the Conv or MaxPool after it")
            return
        if self.quantized and users[0].op == "qconv" and a["value"] != users[0].attrs["x_zero_point"]:
            self.refuse(n, f"pads with {a['value']}, not the zero point", "the padding of the Conv after it")
            return
        self.at[n.output] = _Ref(r.layer, (p[2], p[3], p[6], p[7]), n.label)

    def op_resize(self, n: Node, i: int) -> None:
        r = self.ref(n)
        if r is None:
            return
        a = n.attrs
        src = self.index[r.layer]
        x = n.inputs[0]
        factors = _whole_factors(x.shape, a)
        if a["mode"] != "nearest" or factors is None:
            self.refuse(n, f"{a['mode']} to {list(a['sizes'])}", f"a nearest Resize by whole factors, {RETRAIN}")
            return
        fh, fw = factors
        layer = self.add(Layer(n.label, "upsample", [src.name], Shape(src.shape.c, src.shape.h * fh,
                                                                     src.shape.w * fw), src.signed,
                               {"factor": (fh, fw)}, nodes=[n.label]))
        self.at[n.output] = _Ref(layer.name)

    def op_softmax(self, n: Node, i: int) -> None:
        r = self.ref(n)
        if r is None:
            return
        x = n.inputs[0]
        s = self.index[r.layer].shape
        last_axis = n.attrs["axis"] in (x.type.rank - 1, -1) and x.type.rank == 2 or (
            n.attrs["axis"] in (1, -3) and x.type.rank == 4 and s.h == s.w == 1)
        if n.output not in self.g.outputs or not last_axis:
            self.refuse(n, "not the last layer of a classifier",
                        "a Softmax only as the classifier's last layer (the accelerator gives the top-1 class)")
            return
        src = self.index[r.layer]
        layer = self.add(Layer(n.label, "argmax", [src.name], Shape(1, 1, 1), False, {"classes": s.size},
                               nodes=[n.label]))
        self.at[n.output] = _Ref(layer.name)
        self.host["output_shape"] = [1]

    op_log_softmax = op_softmax

    def op_argmax(self, n: Node, i: int) -> None:
        self.op_softmax(n, i)


_QUANT_OPS = frozenset({"qconv", "qgemm", "qadd", "qglobal_average_pool", "quantize_linear"})


def _requant_attrs(a: dict, x_zero_point: int | None) -> dict:
    out = {"y_zero_point": a["y_zero_point"], "y_min": a["y_min"], "y_max": a["y_max"],
           "y_signed": a["y_dtype"] is DType.i8, "y_scale": a.get("y_scale", 1.0)}
    if x_zero_point is not None:
        out["x_zero_point"] = int(x_zero_point)
    return out


def _frame(shape: tuple[int, ...]) -> Shape | None:
    if len(shape) == 4:
        return Shape(shape[1], shape[2], shape[3])
    if len(shape) == 2:
        return Shape(shape[1], 1, 1)
    return None


def map_graph(g: Graph) -> LayerGraph:
    """The layer graph of ``g`` (float: shapes only; quantized: with integer parameters), or the
    one UnsupportedOpError listing every layer without a block and its replacement."""
    return _Mapper(g).run()


def unsupported(g: Graph) -> list[Refusal]:
    """The refusals of ``g`` (empty when every layer maps)."""
    m = _Mapper(g)
    try:
        m.run()
    except UnsupportedOpError:
        pass
    return m.refusals




def map_onnx(model, shapes: dict | None = None) -> LayerGraph:
    """The float layer graph of an ONNX model. Layers irc cannot even import (MaxUnpool...) and
    layers without a block are refused together, in one error."""
    from irc.errors import IRCError
    from irc.frontend.onnx import import_onnx, load_model
    from irc.passes.pipeline import run_pipeline
    from irc.targets.dneuro.refusals import scan_onnx

    proto = load_model(model)
    early = scan_onnx(proto)
    try:
        g = run_pipeline(import_onnx(proto, shapes), ["dead_code", "fold_constants"])
    except IRCError:
        if early:
            raise refusal_error(early) from None
        raise
    seen = {r.node for r in early}
    refusals = early + [r for r in unsupported(g) if r.node not in seen]
    if refusals:
        raise refusal_error(refusals)
    return map_graph(g)
