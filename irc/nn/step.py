"""The graphs a Model runs: the inference graph, and the train step as ONE graph.

The train step of a batch size is traced in one go:

    inputs : x..., y, lr, dropout masks...   (data, given each step by the loader)
             weights, batch-norm statistics, optimizer state   (state: irc.targets.state)
    nodes  : forward (training mode) -> loss, metrics -> backward (passes/autodiff)
             -> optimizer update
    outputs: loss, metric sums..., next value of every state input

``g.meta["state"]`` pairs each state input with its next value, so the compiled step keeps
weights and optimizer state in its own buffers and updates them in place: nothing is copied
between steps, and the whole step (forward, loss, backward, update) is one call into the target.
The update nodes come last, after every read of the old weights, which is what lets a target
write each new weight over the old one. Each next weight, batch-norm statistic and optimizer
global is taken only when the loss is finite (``where(loss - loss == 0, new, old)``, fused into
its update): a step whose loss is NaN or infinite leaves them as they were, so the model stays
usable after fit reports it. Optimizer slots (momentum, Adam's moments) are not guarded in the
graph, which would cost a pass over memory; the model resets those the step made non-finite.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from irc.errors import ModelError
from irc.frontend.trace import Tensor, Tracer
from irc.ir.graph import Graph
from irc.passes.autodiff import gradients
from irc.targets.state import STATE_KEY


class _Ctx:
    """What layers see while traced (see irc.nn.layers)."""

    def __init__(self, model, tracer: Tracer, training: bool, as_state: bool):
        self.model = model
        self.tracer = tracer
        self.training = training
        self.as_state = as_state  # weights as state inputs (train step) or parameters (inference)
        self.tensors: dict[str, Tensor] = {}
        self.updates: dict[str, Tensor] = {}
        self.masks: list[tuple[str, tuple[int, ...], float]] = []
        self.logits: dict = {}

    def weight(self, layer, name: str) -> Tensor:
        return self.variable(f"{layer.name}.{name}", layer.weights[name])

    def variable(self, key: str, data: np.ndarray) -> Tensor:
        """The model weight ``key`` (holding ``data``): a state input or a parameter."""
        t = self.tensors.get(key)
        if t is None:
            if self.as_state:
                t = self.tracer.wrap(self.tracer.builder.input(key, data.shape))
            else:
                t = self.tracer.wrap(self.tracer.builder.param(key, data, exact=True))
            self.tensors[key] = t
        return t

    def dropout_mask(self, layer, shape, rate: float) -> Tensor:
        name = f"{layer.name}.mask"
        k = 1
        while any(m[0] == name for m in self.masks):
            k += 1
            name = f"{layer.name}.mask{k}"
        self.masks.append((name, tuple(shape), rate))
        return self.tracer.input(name, shape)

    def update(self, layer, name: str, value: Tensor) -> None:
        if self.training:
            self.updates[f"{layer.name}.{name}"] = value

    def note_logits(self, out: Tensor, logits: Tensor, kind: str) -> None:
        self.logits[out.value] = (logits, kind)


@dataclass
class TrainStep:
    """A traced train step: the graph and how its inputs and outputs are laid out."""

    graph: Graph
    batch: int
    data_names: list[str]  # data inputs in graph order: x..., y, lr, masks...
    masks: list[tuple[str, tuple[int, ...], float]]
    metric_names: list[str]
    state_init: dict[str, np.ndarray] = field(default_factory=dict)


def inference_graph(model, batch: int, tracer: Tracer | None = None) -> Graph:
    """The model's prediction graph for ``batch`` samples, weights as parameters."""
    tr = tracer or Tracer(model.name)
    ctx = _Ctx(model, tr, training=False, as_state=False)
    xs = [tr.input(nm, (batch, *shape)) for nm, shape in zip(model.input_names, model.input_shapes)]
    outs = model.forward(ctx, xs)
    return tr.build(*outs)


def traced_loss(model, tr: Tracer, batch: int, loss, metrics, *scalars: str) -> tuple[_Ctx, Tensor, list[Tensor],
                                                                                        list[Tensor]]:
    """The training-mode forward pass of ``model`` for ``batch`` samples, traced into ``tr``
    with inputs x..., y and the named scalar inputs (in that order), and the loss and metric
    tensors on it: (ctx, loss, metrics, scalar inputs). Shared by the train step and the
    distributed gradient step (irc.dist.step)."""
    ctx = _Ctx(model, tr, training=True, as_state=True)
    xs = [tr.input(nm, (batch, *shape)) for nm, shape in zip(model.input_names, model.input_shapes)]
    y = tr.input("y", (batch, *model.output_shapes[0]))
    named = [tr.input(nm, ()) for nm in scalars]
    outs = model.forward(ctx, xs)
    if len(outs) != 1:
        raise ModelError(f"model {model.name} has {len(outs)} outputs; training supports one")
    pred = outs[0]
    logits = ctx.logits.get(pred.value)
    return ctx, loss(pred, y, logits), [m(pred, y, logits) for m in metrics], named


def train_step_graph(model, loss, metrics, optimizer, batch: int, opt_state: dict[str, np.ndarray],
                     tracer: Tracer | None = None) -> TrainStep:
    """The train step of ``model`` for ``batch`` samples (see module doc)."""
    tr = tracer or Tracer(f"{model.name}_train_step")
    b = tr.builder
    ctx, loss_t, metric_ts, (lr,) = traced_loss(model, tr, batch, loss, metrics, "lr")

    trainable = [k for k in model.trainable_names if k in ctx.tensors]
    unused = [k for k in model.trainable_names if k not in ctx.tensors]
    if unused:
        raise ModelError(f"weights {', '.join(unused)} are not used by the model's forward pass")
    grads = gradients(tr, list(b.nodes), loss_t.value, [ctx.tensors[k].value for k in trainable])

    # Optimizer state: inputs like the weights, created after the forward pass. Each next weight
    # (and global, and batch-norm statistic) is kept only when the loss is finite.
    finite = (loss_t - loss_t) == 0.0  # false for NaN and for either infinity

    def keep(new: Tensor, old: Tensor) -> Tensor:
        return tr.op("where", finite, new, old)

    state_out: dict[str, Tensor] = {}
    globals_in = {k: tr.input(f"opt.{k}", ()) for k in optimizer.globals()}
    globals_new = {k: keep(t, globals_in[k]) for k, t in optimizer.update_globals(globals_in).items()}
    for k, t in globals_new.items():
        state_out[f"opt.{k}"] = t
    for k, grad in zip(trainable, grads):
        w = ctx.tensors[k]
        if grad is None:
            raise ModelError(f"the loss does not depend on weight {k}")
        slots = {s: tr.input(f"opt.{k}.{s}", w.shape) for s in optimizer.slots()}
        w_new, slots_new = optimizer.update(w, grad, slots, lr, globals_new, keep=keep)
        state_out[k] = w_new
        for s, t in slots_new.items():
            state_out[f"opt.{k}.{s}"] = t
    for k, t in ctx.updates.items():
        state_out[k] = keep(t, ctx.tensors[k])

    outputs = [loss_t, *metric_ts]
    state_values = []
    for t in state_out.values():
        v = t.value
        # A state output must be its own value, distinct from every input and other output.
        if v in b.inputs or v in b.params or v in [o.value for o in outputs] or v in state_values:
            v = b.op("identity", v)
        state_values.append(v)
    g = b.build(*(o.value for o in outputs), *state_values)
    index = {v.name: i for i, v in enumerate(g.inputs)}
    pairs = [(index[k], len(outputs) + j) for j, k in enumerate(state_out)]
    g.meta[STATE_KEY] = pairs

    frozen = [k for k in ctx.tensors if k not in state_out]
    if frozen:
        raise ModelError(f"weights {', '.join(frozen)} are neither trained nor updated by the train step")
    state_init = {name: opt_state[name] if name.startswith("opt.") else model.get_weight(name) for name in state_out}
    data_names = [v.name for i, v in enumerate(g.inputs) if i not in {p[0] for p in pairs}]
    return TrainStep(g, batch, data_names, ctx.masks, [m.name for m in metrics], state_init)
