"""GraphModel: an imported ONNX model (or any irc Graph) as a trainable irc.nn model.

    model = nn.GraphModel("lenet5.onnx")             # or nn.GraphModel(irc.load_onnx(...))
    model.compile(nn.SGD(0.01), "cross_entropy", metrics=["accuracy"])
    model.fit(x, y, batch_size=32)                   # fine-tuning
    model.save("lenet5_tuned.onnx")

Its forward pass replays the graph's nodes with traced tensors. The trainable weights are the
float parameters of rank >= 1, except batch-norm statistics (the mean and variance inputs of
batch_norm stay constant: fine-tuning keeps the imported normalization), or the names given in
``trainable``; every other parameter stays a constant. An ONNX model whose batch axis is dynamic
is imported again for each batch size fit or predict uses, and so is an irc Graph (from
``irc.trace`` or ``inference_graph``) whose nodes all let the batch axis vary: it is written as
ONNX with a symbolic batch first. A graph that fixes its batch runs that batch only (fit then
drops the smaller last batch, with a warning; evaluate and predict use that batch by default).
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import onnx

from irc.errors import InputError, IRCError
from irc.ir.graph import Graph
from irc.nn.model import BaseModel


class GraphModel(BaseModel):
    """An ONNX model (path, bytes, ModelProto) or an irc Graph made trainable (see module doc)."""

    def __init__(self, source, trainable: Sequence[str] | None = None, name: str | None = None):
        from irc.frontend.onnx import input_specs, load_model

        self._graphs: dict[int, Graph] = {}
        if isinstance(source, Graph):
            source = _batch_free_onnx(source) or source
        if isinstance(source, Graph):
            self._proto = None
            g = source
            self.fixed_batch = g.inputs[0].shape[0] if g.inputs and g.inputs[0].shape else None
            self._graphs[self.fixed_batch] = g
        elif isinstance(source, (str, os.PathLike, bytes, bytearray, onnx.ModelProto)):
            self._proto = load_model(source)
            specs = input_specs(self._proto)
            dims = [d for _, d, _ in specs]
            first = {d[0] if d else None for d in dims}
            self.fixed_batch = first.pop() if len(first) == 1 and isinstance(next(iter(first), None), int) else None
            for nm, d, _ in specs:
                if any(not isinstance(v, int) for v in d[1:]):
                    raise InputError(f"input '{nm}' of the ONNX model has dynamic dimensions past the batch axis "
                                     f"({d}); only the batch axis may be dynamic")
            self._specs = [(nm, tuple(d[1:])) for nm, d, _ in specs]
            g = self._graph(self.fixed_batch or 1)
        else:
            raise InputError(f"GraphModel takes an ONNX model or an irc Graph, got {type(source).__name__}")
        self.name = name or g.name or "graph"
        self.input_names = [v.name for v in g.inputs]
        self.input_shapes = [v.shape[1:] for v in g.inputs]
        self.output_shapes = [v.shape[1:] for v in g.outputs]
        self.weights = {v.name: np.array(a, np.float32) for v, a in g.params.items()
                        if a.dtype == np.float32}
        stats = {n.inputs[i].name for n in g.nodes if n.op == "batch_norm" for i in (3, 4)}
        if trainable is None:
            self.trainable_names = [k for k, a in self.weights.items() if a.ndim >= 1 and k not in stats]
        else:
            missing = [k for k in trainable if k not in self.weights]
            if missing:
                raise InputError(f"no float parameter named {', '.join(missing)} in {self.name} "
                                 f"(parameters: {', '.join(self.weights)})")
            self.trainable_names = list(trainable)
        self._trainable = set(self.trainable_names)
        self._init_training_state()

    def _graph(self, batch: int) -> Graph:
        g = self._graphs.get(batch)
        if g is None:
            from irc.frontend.onnx import import_onnx

            g = import_onnx(self._proto, {nm: (batch, *s) for nm, s in self._specs})
            self._graphs[batch] = g
        return g

    def supports_batch(self, batch: int) -> bool:
        return self.fixed_batch is None or batch == self.fixed_batch

    def weight_keys(self):
        return list(self.weights)

    def _get_weight(self, key):
        return self.weights[key]

    def _store_weight(self, key, value):
        self.weights[key] = value

    def forward(self, ctx, xs):
        g = self._graph(xs[0].shape[0])
        env = dict(zip(g.inputs, xs))
        tr = ctx.tracer
        for v, data in g.params.items():
            if v.name in self._trainable:
                env[v] = ctx.variable(v.name, self.weights[v.name])
            else:
                env[v] = tr.param(v.name, self.weights.get(v.name, data))
        for n in g.nodes:
            try:
                outs = tr.ops(n.op, *(env[v] for v in n.inputs), **n.attrs)
            except IRCError as e:
                raise e.at(n.label, n.op) from None
            env.update(zip(n.outputs, outs))
            if n.op == "softmax" and n.attrs["axis"] == n.inputs[0].type.rank - 1:
                ctx.note_logits(outs[0], env[n.inputs[0]], "softmax")
            elif n.op == "sigmoid":
                ctx.note_logits(outs[0], env[n.inputs[0]], "sigmoid")
        return [env[v] for v in g.outputs]

    def config(self) -> dict:
        return {"class": "GraphModel", "name": self.name, "trainable": self.trainable_names}

    def source_bytes(self) -> bytes:
        """The model's ONNX as given (for checkpoints; the weights are stored beside it)."""
        if self._proto is not None:
            return self._proto.SerializeToString()
        from irc.frontend.onnx.exporter import export_onnx

        return export_onnx(self._graphs[self.fixed_batch]).SerializeToString()


def _batch_free_onnx(g: Graph) -> onnx.ModelProto | None:
    """``g`` as ONNX with a symbolic batch axis, or None when a node ties the batch size."""
    from irc.frontend.onnx.exporter import export_onnx
    from irc.nn.checkpoint import dynamic_batch

    if not g.inputs or not g.inputs[0].shape:
        return None
    proto = export_onnx(g)
    out = dynamic_batch(proto, g, g.inputs[0].shape[0])
    return out if out is not proto else None
