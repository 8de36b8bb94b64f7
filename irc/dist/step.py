"""The train step split in two graphs, so that gradients can cross processes between them.

A single process runs one fused graph per step (irc.nn.step). Data-parallel training with
K = 1 must sum the gradients of all ranks *before* the optimizer sees them, so here the step is
two compiled graphs:

    gradient graph : x..., y, masks..., gscale, weights        -> loss, metric sums, gradients,
                                                                  next batch-norm statistics
    update graph   : lr, gradients, weights, optimizer state   -> next weights, next state

``gscale`` seeds the backward pass (the cotangent of the loss), so each rank's gradients come out
already weighted by its share of the global batch and a plain sum over ranks is the gradient of
the global batch's mean loss. The gradient graph writes its gradients straight into the
all-reduce buckets and the update graph writes the new weights and optimizer state over the old
ones (where the compiled graph allows it: irc.targets.state.in_place_safe), so no array is
copied around the collective.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from irc.errors import ModelError
from irc.frontend.trace import Tensor, broadcast_to
from irc.ir.graph import Graph
from irc.ir.interp import check_input
from irc.nn.step import traced_loss
from irc.passes.autodiff import gradients
from irc.targets.state import in_place_safe


def _distinct_outputs(tr, outputs: list[Tensor]) -> list:
    """Output values, each its own value (not an input, not repeated), as graph state needs."""
    b = tr.builder
    seen: list = []
    for t in outputs:
        v = t.value
        if v in b.inputs or v in b.params or v in seen:
            v = b.op("identity", v)
        seen.append(v)
    return seen


@dataclass
class GradientStep:
    """A traced gradient graph and its layout. Outputs: loss, one sum per metric, one gradient
    per trainable weight, the next value of each statistic (batch norm's running moments)."""

    graph: Graph
    metric_names: list[str]
    trainable: list[str]
    stats: list[str]
    masks: list[tuple[str, tuple[int, ...], float]]  # dropout masks: (input name, shape, rate)


def gradient_graph(model, batch: int) -> GradientStep:
    """The gradient graph of ``model`` for ``batch`` samples (see module doc)."""
    tr = model.tracer(f"{model.name}_grad_step")
    ctx, loss, metrics, (scale,) = traced_loss(model, tr, batch, model.loss, model.metrics, "gscale")
    unused = [k for k in model.trainable_names if k not in ctx.tensors]
    if unused:
        raise ModelError(f"weights {', '.join(unused)} are not used by the model's forward pass")
    trainable = list(model.trainable_names)
    seed = scale if loss.shape == () else broadcast_to(scale, loss.shape)
    grads = gradients(tr, list(tr.builder.nodes), loss.value, [ctx.tensors[k].value for k in trainable], seed=seed)
    for k, g in zip(trainable, grads):
        if g is None:
            raise ModelError(f"the loss does not depend on weight {k}")
    frozen = [k for k in ctx.tensors if k not in trainable and k not in ctx.updates]
    if frozen:
        raise ModelError(f"weights {', '.join(frozen)} are neither trained nor updated by the train step")
    stats = list(ctx.updates)
    values = _distinct_outputs(tr, [loss, *metrics, *grads, *(ctx.updates[k] for k in stats)])
    g = tr.builder.build(*values)
    return GradientStep(g, [m.name for m in model.metrics], trainable, stats, ctx.masks)


def update_graph(model) -> tuple[Graph, list[str]]:
    """The optimizer update of every trainable weight; returns (graph, state names), the
    graph's outputs being the next values of the state names in that order."""
    opt = model.optimizer
    tr = model.tracer(f"{model.name}_update")
    lr = tr.input("lr", ())
    globals_in = {k: tr.input(f"opt.{k}", ()) for k in opt.globals()}
    new: dict[str, Tensor] = {f"opt.{k}": t for k, t in opt.update_globals(globals_in).items()}
    globals_new = {k: new[f"opt.{k}"] for k in globals_in}
    for k in model.trainable_names:
        shape = model.get_weight(k).shape
        w = tr.input(k, shape)
        grad = tr.input(f"grad.{k}", shape)
        slots = {s: tr.input(f"opt.{k}.{s}", shape) for s in opt.slots()}
        w_new, slots_new = opt.update(w, grad, slots, lr, globals_new)
        new[k] = w_new
        for s, t in slots_new.items():
            new[f"opt.{k}.{s}"] = t
    names = list(new)
    return tr.builder.build(*_distinct_outputs(tr, [new[k] for k in names])), names


class Runner:
    """Runs a compiled graph from named inputs into given destination arrays.

    ``run(feeds, dest)``: ``feeds`` maps input names to arrays, ``dest`` maps output indices to
    arrays that receive those outputs. Where the target takes output buffers, a destination is
    written directly unless it is one of the inputs and the graph reads that input after
    producing the output (then through a scratch buffer and one copy)."""

    def __init__(self, exe):
        self.exe = exe
        self.graph = exe.graph
        self.input_names = [v.name for v in self.graph.inputs]
        self._takes_out = "out" in inspect.signature(exe.run).parameters
        self._scratch: dict[int, np.ndarray] = {}
        self._safe: dict[tuple[int, int], bool] = {}

    def run(self, feeds: Mapping[str, np.ndarray], dest: Mapping[int, np.ndarray]) -> list[np.ndarray]:
        g = self.graph
        inputs = [check_input(v, feeds[v.name]) for v in g.inputs]
        if not self._takes_out:
            results = self.exe.run(inputs)
            for o, d in dest.items():
                np.copyto(d, results[o])
            return results
        by_ptr = {a.ctypes.data: i for i, a in enumerate(inputs)}
        out, late = [], []
        for o, v in enumerate(g.outputs):
            d = dest.get(o)
            if d is None:
                out.append(np.empty(v.shape, v.dtype.numpy))
                continue
            i = by_ptr.get(d.ctypes.data)
            if i is not None and not self._safe.setdefault((i, o), in_place_safe(g, i, o)):
                if o not in self._scratch:
                    self._scratch[o] = np.empty(v.shape, v.dtype.numpy)
                out.append(self._scratch[o])
                late.append((o, d))
            else:
                out.append(d)
        results = self.exe.run(inputs, out=out)
        for o, d in late:
            np.copyto(d, results[o])
        return results


def compile_graph(model, g: Graph):
    """``g`` compiled for the model's target with its options (the executable)."""
    import irc

    exe = irc.compile(g, model.target, **model.target_options).executable
    want = [(v.name, v.type) for v in g.inputs] + [("out", v.type) for v in g.outputs]
    got = [(v.name, v.type) for v in exe.graph.inputs] + [("out", v.type) for v in exe.graph.outputs]
    if want != got:
        raise ModelError(f"the target's passes changed the inputs or outputs of {g.name}")
    return exe
