"""Mapping of a quantized graph's edges and float islands (used by mapping._Mapper).

The quantize pass leaves a graph whose integer layers map one to one to blocks. Around them:

- the graph input's ``quantize_linear`` is the host's job (its scale and zero point are recorded);
- the final ``dequantize_linear`` (and a softmax after it) is the host's, or the arg-max block;
- a layer the pass left in float reads ``dequantize_linear(codes)`` and feeds ``quantize_linear``.
  When every float op between the two is element-wise and non-decreasing (sigmoid, relu, clip),
  a channel concat, a nearest upsampling or a max pool, each output code is a function of one
  input code: the island becomes a table per input (a lut block, left out when it is the
  identity), with upsample, max pool and concat blocks on the codes (they commute with the
  tables). The tables come from the interpreter's own references, so they are exact.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from irc.ir.graph import Node
from irc.ir.ops import get_op
from irc.targets.dneuro.layers import Layer, Shape


@dataclass(slots=True)
class _Ref:
    """Where a graph value is in the layer graph: the layer streaming it (as a C x H x W frame),
    and, for a pad not merged yet, the pads (t, l, b, r) waiting for the next conv."""

    layer: str
    pads: tuple[int, int, int, int] | None = None
    pad_node: str | None = None


#: Marks a max pool inside a float island: the island's table must be non-decreasing.
_MONOTONE = Node("max_pool", (), (), {}, "<max pool>")
#: Float element-wise ops a table block can stand for (between a dequantize and a quantize).
_TABLE_OPS = frozenset({"sigmoid", "relu", "clip", "identity"})


class QuantizedEdges:
    """The quantized-graph part of the layer mapper (a mixin of mapping._Mapper)."""

    # -- quantized graph: the edges
    def op_quantize_linear(self, n: Node, i: int) -> None:
        x, scale, zp = n.inputs
        if x not in self.g.inputs or len(self.users.get(x, [])) != 1:
            self.refuse(n, "a float island inside the quantized graph", "a layer that quantizes (see the quantize report)")
            return
        s, z = self.const(scale), self.const(zp)
        if s is None or z is None or s.size != 1:
            self.refuse(n, "input quantization must be per tensor with constant parameters")
            return
        inp = self.layers[0]
        inp.signed = z.dtype == np.int8
        inp.nodes.append(n.label)
        self.host["input_scale"] = float(s.reshape(-1)[0])
        self.host["input_zero_point"] = int(z.reshape(-1)[0])
        self.at[n.output] = _Ref(inp.name)

    # Float islands of a quantized graph. A layer the quantize pass left in float reads
    # dequantize_linear(codes) and feeds quantize_linear. When every float op between the two is
    # element-wise (sigmoid, relu, clip) or a channel concat, each output code is a function of
    # one input code: the island becomes a table per input (a lut block, left out when it is the
    # identity) and a concat block, tabulated with the interpreter's own references (exact).
    def float_node(self, n: Node) -> bool:
        """Handles ``n`` if it reads a float view of codes; False if it does not."""
        views = [self.fview.get(v) for v in n.inputs]
        if all(v is None for v in views):
            return False
        if n.op in _TABLE_OPS and views[0] is not None and all(v is None for v in views[1:]) and \
                all(self.const(v) is not None for v in n.inputs[1:]):
            self.fview[n.output] = [(layer, nodes + [n]) for layer, nodes in views[0]]
            if n.inputs[0] in self.fcat:
                self.fcat[n.output] = self.fcat[n.inputs[0]]
        elif n.op == "concat" and all(v is not None for v in views) and n.attrs["axis"] == 1 and n.output.type.rank == 4:
            self.fview[n.output] = [part for v in views for part in v]
            self.fcat[n.output] = n
        elif n.op == "resize" and views[0] is not None and n.attrs["mode"] == "nearest" and \
                _whole_factors(n.inputs[0].shape, n.attrs) is not None:
            # Nearest upsampling commutes with element-wise ops and concat: upsample the codes.
            f = _whole_factors(n.inputs[0].shape, n.attrs)
            parts = []
            for layer, nodes in views[0]:
                src = self.index[layer]
                up = self.add(Layer(n.label, "upsample", [src.name], Shape(src.shape.c, src.shape.h * f[0],
                                                                          src.shape.w * f[1]), src.signed,
                                    {"factor": f}, nodes=[n.label]))
                parts.append((up.name, nodes))
            self.fview[n.output] = parts
            if n.inputs[0] in self.fcat:
                self.fcat[n.output] = self.fcat[n.inputs[0]]
        elif n.op in ("max_pool", "global_max_pool") and views[0] is not None:
            # Max pooling commutes with the island's tables (all non-decreasing, checked when the
            # island ends): pool the codes.
            parts = []
            for layer, nodes in views[0]:
                ref = _Ref(layer)
                self.at[n.inputs[0]] = ref
                handler = self.op_max_pool if n.op == "max_pool" else self.op_global_max_pool
                handler(n, -1)
                parts.append((self.at[n.output].layer, nodes + [_MONOTONE]))
            self.fview[n.output] = parts
            if n.inputs[0] in self.fcat:
                self.fcat[n.output] = self.fcat[n.inputs[0]]
        elif n.op == "quantize_linear" and views[0] is not None:
            self.end_island(n, views[0])
        elif n.op in ("softmax", "log_softmax", "argmax") and len(views[0]) == 1 and \
                all(m.op in ("dequantize_linear", "identity") for m in views[0][0][1]):
            self.at[n.inputs[0]] = _Ref(views[0][0][0])
            self.op_softmax(n, -1)
        else:
            self.refuse(n, "stays float after quantization", "a layer that quantizes (see the quantize report)")
        return True

    def op_dequantize_linear(self, n: Node, i: int) -> None:
        r = self.ref(n)
        if r is None:
            return
        s = self.const(n.inputs[1])
        if s is None or s.size != 1:
            self.refuse(n, "dequantization must be per tensor with constant parameters")
            return
        self.fview[n.output] = [(r.layer, [n])]
        if n.output in self.g.outputs:
            z = self.const(n.inputs[2]) if len(n.inputs) > 2 else np.zeros((), np.int64)
            self.host["output_scale"] = float(s.reshape(-1)[0])
            self.host["output_zero_point"] = int(np.asarray(z).reshape(-1)[0])
            self.at[n.output] = r

    def table(self, src: Layer, nodes: list[Node]) -> np.ndarray:
        """The codes ``nodes`` (dequantize, element-wise ops, quantize) give for each input code."""
        vals = (np.arange(-128, 128) if src.signed else np.arange(0, 256)).astype(np.int8 if src.signed else np.uint8)
        for m in nodes:
            if m is not _MONOTONE:
                vals = get_op(m.op).evaluate([vals] + [self.consts[v] for v in m.inputs[1:]], m.attrs)[0]
        return vals

    def end_island(self, q: Node, parts: list[tuple[str, list[Node]]]) -> None:
        """quantize_linear closing a float island: a table per input (unless the identity), then
        the concat block if the island joined several inputs."""
        srcs = []
        for layer_name, nodes in parts:
            src = self.index[layer_name]
            table = self.table(src, nodes + [q])
            if _MONOTONE in nodes and np.any(np.diff(table.astype(np.int64)) < 0):
                self.refuse(q, "a max pool between decreasing float layers")
                return
            nodes = [m for m in nodes if m is not _MONOTONE]
            codes = np.arange(-128, 128) if src.signed else np.arange(0, 256)
            out_signed = table.dtype == np.int8
            if out_signed == src.signed and np.array_equal(table.astype(np.int64), codes):
                srcs.append(src)
                continue
            ops = [m for m in nodes if m.op not in ("dequantize_linear", "concat")]
            name = ops[-1].label if ops else f"{q.label}_{src.name}"
            srcs.append(self.add(Layer(name, "lut", [src.name], src.shape, out_signed,
                                       {"in_signed": src.signed, "function": "+".join(m.op for m in ops) or "rescale"},
                                       {"table": table.astype(np.int64)}, [m.label for m in nodes] + [q.label])))
        if len(srcs) == 1:
            self.at[q.output] = _Ref(srcs[0].name)
            return
        cat = self.fcat[q.inputs[0]]
        if len({x.signed for x in srcs}) != 1:
            self.refuse(cat, "inputs of different types")
            return
        s = srcs[0].shape
        shape = Shape(sum(x.shape.c for x in srcs), s.h, s.w)
        layer = self.add(Layer(cat.label, "concat", [x.name for x in srcs], shape, srcs[0].signed, {},
                               nodes=[cat.label, q.label]))
        self.at[q.output] = _Ref(layer.name)


def _whole_factors(shape, attrs) -> tuple[int, int] | None:
    """(fh, fw) when a nearest resize of an NCHW tensor copies each pixel into an fh x fw block."""
    from irc.ir.ops.resize import _round, source_coords

    sizes, scales = attrs["sizes"], attrs["scales"]
    if len(shape) != 4 or tuple(sizes[:2]) != tuple(shape[:2]):
        return None
    out = []
    for ax in (2, 3):
        n_in, n_out = shape[ax], sizes[ax]
        if n_out % n_in:
            return None
        f = n_out // n_in
        src = source_coords(attrs["coordinate_transformation_mode"], n_out, n_in, scales[ax])
        idx = np.clip(_round(src, attrs["nearest_mode"]), 0, n_in - 1).astype(np.int64)
        if not np.array_equal(idx, np.arange(n_out) // f):
            return None
        out.append(f)
    return out[0], out[1]
