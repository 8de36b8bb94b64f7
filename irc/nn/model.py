"""Models: compile, fit, evaluate, predict, save (ONNX) and checkpoints.

    model = nn.Sequential([nn.Dense(1024, activation="relu"), nn.Dense(10, activation="softmax")],
                          input_shape=(784,))
    model.compile(nn.SGD(0.1, momentum=0.9), "cross_entropy", metrics=["accuracy"], target="cpu")
    history = model.fit(x, y, batch_size=100, epochs=5, validation_data=(xv, yv))
    model.save("mlp.onnx")

``Model`` is the functional form (layers called on ``nn.Input`` symbols), ``Sequential`` a
chain of layers, ``GraphModel`` an imported ONNX model (or any irc Graph) made trainable.

Every batch size gets its own compiled train step (irc.nn.step: one graph, state updated in
place), built the first time it is needed and cached; so do the evaluation and prediction graphs,
which take the weights as inputs so one compilation serves every version of the weights. While
training, the truth about the weights lives in the active step's state buffers; the model copies
it out (``_pull``) only when something reads the weights (evaluate, predict, save, a checkpoint)
or another step takes over (the last, smaller batch of an epoch).
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable, Sequence

import numpy as np

from irc.errors import InputError, IRCError, ModelError
from irc.frontend.trace import Tracer
from irc.ir.builder import GraphBuilder
from irc.nn import losses as _losses
from irc.nn import optimizers as _optimizers
from irc.nn.data import BatchLoader, dropout_masks
from irc.nn.layers import LAYERS, Input, InputLayer, Layer, Symbol
from irc.nn.step import _Ctx, inference_graph, train_step_graph
from irc.targets.state import StatefulExecutable


class TrainingError(IRCError):
    """Training cannot go on: the loss became NaN or infinite (names the epoch and step)."""


class History:
    """What fit returns: ``history["loss"]`` etc., one entry per epoch (``epoch``, ``time``,
    ``loss``, each metric, and ``val_`` ones with validation data)."""

    def __init__(self, history: dict[str, list] | None = None):
        self.history: dict[str, list] = history if history is not None else {}

    def append(self, logs: dict) -> None:
        for k, v in logs.items():
            self.history.setdefault(k, []).append(v)

    def __getitem__(self, key):
        return self.history[key]

    def __repr__(self) -> str:
        return f"History({self.history})"


class BaseModel:
    """What every trainable model has; subclasses define the network (``forward``)."""

    name: str
    input_names: list[str]
    input_shapes: list[tuple[int, ...]]
    output_shapes: list[tuple[int, ...]]
    trainable_names: list[str]

    def _init_training_state(self) -> None:
        self.optimizer = None
        self.loss = None
        self.metrics: list = []
        self.target = None
        self.target_options: dict = {}
        self.gpus = None  # the irc.CUDA configuration when compiled for several GPUs (or a mask)
        self.opt_state: dict[str, np.ndarray] = {}
        self.epoch = 0  # epochs trained so far
        self.step_count = 0  # steps trained so far (the schedule's clock)
        self.seed = 0  # fit's seed (kept so that a resumed fit shuffles as before)
        self.history = History()
        self._exes: dict = {}
        self._steps: dict = {}
        self._live: StatefulExecutable | None = None
        self._dirty = False

    # -- weights ------------------------------------------------------------------------
    def weight_keys(self) -> list[str]:
        raise NotImplementedError

    def get_weight(self, key: str) -> np.ndarray:
        """The current value of one weight (the model's own array: copy it to keep it)."""
        self._pull()
        return self._get_weight(key)

    def _get_weight(self, key: str) -> np.ndarray:
        raise NotImplementedError

    def _store_weight(self, key: str, value: np.ndarray) -> None:
        raise NotImplementedError

    def get_weights(self) -> dict[str, np.ndarray]:
        """A copy of every weight (trainable ones and state such as batch-norm statistics)."""
        self._pull()
        return {k: self.get_weight(k).copy() for k in self.weight_keys()}

    def set_weights(self, weights: dict[str, np.ndarray]) -> None:
        self._pull()
        for k, v in weights.items():
            if k not in self.weight_keys():
                raise InputError(f"model {self.name} has no weight '{k}'")
            old = self.get_weight(k)
            v = np.asarray(v)
            if v.shape != old.shape:
                raise InputError(f"weight '{k}' has shape {list(old.shape)}; got {list(v.shape)}")
            self._store_weight(k, np.ascontiguousarray(v, np.float32))
        self._live = None

    def _pull(self) -> None:
        """Copy the active step's state into the model (weights and optimizer state)."""
        if self._live is None or not self._dirty:
            return
        for name, value in self._live.state().items():
            if name.startswith("opt."):
                self.opt_state[name] = value
            else:
                self._store_weight(name, value)
        self._dirty = False

    def _activate(self, exe: StatefulExecutable) -> None:
        if self._live is exe:
            return
        self._pull()
        exe.set_state({n: (self.opt_state[n] if n.startswith("opt.") else self.get_weight(n)) for n in exe.state_names})
        self._live = exe

    # -- graphs -------------------------------------------------------------------------
    def forward(self, ctx, xs: list) -> list:
        raise NotImplementedError

    def supports_batch(self, batch: int) -> bool:
        return True

    def tracer(self, name: str) -> Tracer:
        """A tracer whose fresh names never take a weight's or an input's name."""
        reserved = [*self.weight_keys(), *self.input_names, "y", "lr"]
        reserved += [f"opt.{k}.{s}" for k in self.trainable_names for s in ("velocity", "m", "v")]
        return Tracer(GraphBuilder(name, reserved=reserved))

    def inference_graph(self, batch: int = 1):
        """The prediction graph for ``batch`` samples with the current weights as parameters."""
        self._pull()
        self._check_batch(batch)
        return inference_graph(self, batch, tracer=self.tracer(self.name))

    def _check_batch(self, batch: int) -> None:
        if not self.supports_batch(batch):
            raise InputError(f"model {self.name} runs batches of {self.fixed_batch} samples only; got {batch}")

    def _eval_graph(self, batch: int, with_targets: bool):
        """Prediction (or loss and metrics) for ``batch`` samples, the weights as inputs."""
        tr = self.tracer(f"{self.name}_eval" if with_targets else self.name)
        ctx = _Ctx(self, tr, training=False, as_state=True)
        xs = [tr.input(nm, (batch, *s)) for nm, s in zip(self.input_names, self.input_shapes)]
        outs = self.forward(ctx, xs)
        if not with_targets:
            return tr.build(*outs)
        y = tr.input("y", (batch, *self.output_shapes[0]))
        logits = ctx.logits.get(outs[0].value)
        loss = self.loss(outs[0], y, logits)
        return tr.build(loss, *(m(outs[0], y, logits) for m in self.metrics))

    def _compiled(self, kind: str, batch: int):
        key = (kind, batch)
        exe = self._exes.get(key)
        if exe is None:
            import irc

            self._check_batch(batch)
            if kind == "step":
                step = train_step_graph(self, self.loss, self.metrics, self.optimizer, batch, self.opt_state,
                                        tracer=self.tracer(f"{self.name}_train_step"))
                compiled = irc.compile(step.graph, self.target, **self.target_options)
                inner = compiled.executable
                _check_layout(step.graph, inner.graph)
                exe = StatefulExecutable(inner, step.state_init)
                self._steps[batch] = step
            else:
                g = self._eval_graph(batch, with_targets=(kind == "eval"))
                exe = irc.compile(g, self.target or "interp", **(self.target_options if self.target else {}))
            self._exes[key] = exe
        return exe

    # -- compile ------------------------------------------------------------------------
    def compile(self, optimizer="sgd", loss="cross_entropy", metrics: Sequence = (), target: str = "interp",
                **options) -> BaseModel:
        """Choose optimizer, loss, metrics and the target (``"interp"``, ``"cpu"`` or ``"cuda"``,
        with its options, e.g. ``threads=2``; or ``irc.CUDA(devices=mask, mem=level,
        sync_every=K)``: one process per selected GPU, see :meth:`fit`). Steps compile when fit
        first needs them."""
        from irc.targets import get_target
        from irc.targets.cuda.multi import CUDA

        gpus = None
        if isinstance(target, CUDA):
            gpus, target = target, "cuda"
            if "mem" in options or "device" in options:
                raise InputError("with target=irc.CUDA(...), the GPU and the memory level come from it: "
                                 "give devices= and mem= there, not as options")
            options = dict(options, mem=gpus.target_mem, device=gpus.gpus[0])
        tgt = get_target(target)
        unknown = sorted(set(options) - set(tgt.options))
        if unknown:
            raise InputError(f"unknown option(s) {', '.join(unknown)} for target '{target}'")
        self._pull()
        self.optimizer = _optimizers.get(optimizer)
        self.loss = _losses.get_loss(loss)
        self.metrics = [_losses.get_metric(m) for m in metrics]
        self.target, self.target_options, self.gpus = target, dict(options), gpus
        self.opt_state = {f"opt.{k}": np.float32(v).reshape(()) for k, v in self.optimizer.globals().items()}
        for k in self.trainable_names:
            for s in self.optimizer.slots():
                self.opt_state[f"opt.{k}.{s}"] = np.zeros_like(self.get_weight(k))
        self._exes, self._steps, self._live = {}, {}, None
        return self

    def prepare(self, batch_size: int, n_train: int | None = None, n_val: int | None = None) -> None:
        """Compile now what fit(batch_size=...) on ``n_train`` samples with ``n_val`` validation
        samples will run (train steps for full and last batches, evaluation graphs), which fit
        would otherwise compile when it first needs them, inside the first epoch's time."""
        self._need_compiled()
        self._compiled("step", batch_size)
        if n_train and n_train % batch_size:
            self._compiled("step", n_train % batch_size)
        if n_val:
            for b in {min(batch_size, n_val), n_val % batch_size}:
                if b:
                    self._compiled("eval", b)

    def _need_compiled(self) -> None:
        if self.loss is None:
            raise InputError(f"model {self.name} is not compiled: call model.compile(optimizer, loss, ...) first")

    # -- data checks --------------------------------------------------------------------
    def _inputs(self, x, what: str = "x") -> list[np.ndarray]:
        xs = list(x) if isinstance(x, (list, tuple)) else [x]
        if len(xs) != len(self.input_names):
            raise InputError(f"{what}: the model takes {len(self.input_names)} input(s) "
                             f"({', '.join(self.input_names)}), got {len(xs)}")
        out = []
        for nm, shape, a in zip(self.input_names, self.input_shapes, xs):
            a = np.asarray(a)
            if a.ndim == 0 or a.shape[1:] != tuple(shape):
                raise InputError(f"{what}: input '{nm}' takes samples of shape {list(shape)} (arrays of shape "
                                 f"[n, {', '.join(map(str, shape))}]), got an array of shape {list(a.shape)}")
            if not (np.issubdtype(a.dtype, np.floating) or np.issubdtype(a.dtype, np.integer)):
                raise InputError(f"{what}: input '{nm}' must be numeric, got {a.dtype}")
            out.append(np.ascontiguousarray(a, np.float32))
        n = {len(a) for a in out}
        if len(n) != 1:
            raise InputError(f"{what}: the inputs hold different numbers of samples: {sorted(n)}")
        return out

    def _targets(self, y, n: int, what: str = "y") -> np.ndarray:
        y = np.asarray(y)
        if y.ndim == 0 or len(y) != n:
            raise InputError(f"{what}: {n} samples of x but {len(y) if y.ndim else 'no'} targets")
        try:
            return self.loss.prepare_targets(y, self.output_shapes[0])
        except InputError as e:
            raise InputError(f"{what}: {e.detail}") from None

    # -- training -----------------------------------------------------------------------
    def train_on_batch(self, x, y) -> dict[str, float]:
        """One step on one batch: {'loss': ..., metric: batch mean...} (no shuffling or dropout
        seed bookkeeping beyond the step counter)."""
        self._need_compiled()
        xs = self._inputs(x)
        ys = self._targets(y, len(xs[0]))
        n = len(ys)
        self._compiled("step", n)
        step = self._steps[n]

        arrays = dict(zip(self.input_names, xs), y=ys, **dropout_masks(step.masks, self.seed, self.epoch,
                                                                        self.step_count, n))
        outs = self._run_step(n, arrays, self.epoch, self.step_count)
        return {"loss": outs[0] / n, **{m: v / n for m, v in zip(step.metric_names, outs[1:])}}

    def _run_step(self, batch: int, arrays: dict, epoch: int, step_in_epoch: int) -> list[float]:
        exe = self._compiled("step", batch)
        step = self._steps[batch]
        self._activate(exe)
        arrays = dict(arrays, lr=np.float32(self.optimizer.lr_at(epoch, self.step_count)))
        outs = exe.run([arrays[k] for k in step.data_names])
        self._dirty = True
        loss = float(outs[0])
        if not math.isfinite(loss):
            # The step graph kept the old weights (irc.nn.step); slots it poisoned start afresh.
            reset = self._reset_nonfinite_slots()
            raise TrainingError(f"the loss is {loss} at epoch {epoch + 1}, step {step_in_epoch + 1} "
                                f"(learning rate {float(arrays['lr']):g}); lower the learning rate or check "
                                f"the data (the weights are those before this step"
                                + (f"; {reset} optimizer state array(s) it made non-finite were reset to zero"
                                   if reset else "") + ")")
        self.step_count += 1
        return [loss * batch, *(float(o) for o in outs[1:1 + len(step.metric_names)])]

    def _reset_nonfinite_slots(self) -> int:
        """Zero the optimizer slots a failed step made non-finite; how many there were."""
        self._pull()
        bad = [k for k, v in self.opt_state.items() if not np.isfinite(v).all()]
        for k in bad:
            self.opt_state[k] = np.zeros_like(self.opt_state[k])
        if bad:
            self._live = None  # the next step loads the repaired state
        return len(bad)

    def _training_data(self, x, y, batch_size: int, epochs: int) -> tuple[list[np.ndarray], np.ndarray]:
        """fit's checked inputs and targets (InputError for a bad batch size, epoch count or data)."""
        if batch_size < 1 or epochs < 0:
            raise InputError(f"batch_size must be >= 1 and epochs >= 0, got {batch_size} and {epochs}")
        xs = self._inputs(x)
        ys = self._targets(y, len(xs[0]))
        if len(ys) == 0:
            raise InputError("x and y hold no samples")
        return xs, ys

    def _validation_data(self, validation_data) -> tuple[list[np.ndarray], np.ndarray] | None:
        """fit's checked (x, y) validation pair, or None."""
        if validation_data is None:
            return None
        vx, vy = validation_data
        vxs = self._inputs(vx, "validation x")
        return vxs, self._targets(vy, len(vxs[0]), "validation y")

    def _gpu_world(self, world, distributed: dict):
        """Set up training on irc.CUDA's GPUs: this rank's GPU, K and micro-batches; the
        communicator to train over (a one-process one for low_mem alone), or None."""
        from irc.dist.devices import device_for_rank

        gpus = self.gpus.gpus
        if world is None and len(gpus) > 1:
            raise InputError(f"devices selects {len(gpus)} GPUs ({list(gpus)}): data-parallel training runs one "
                             f"process per GPU; start it with mpirun -np {len(gpus)} python <script>")
        if world is None and self.gpus.mem == "low_mem":
            from irc.dist.launch import world as mpi_world

            world = mpi_world()
        device = device_for_rank(gpus, world.hosts, world.rank) if world is not None else gpus[0]
        if self.target_options.get("device") != device:
            self._pull()
            self.target_options["device"] = device
            self._exes, self._steps, self._live = {}, {}, None
        if world is not None:
            distributed.setdefault("sync_every", self.gpus.sync_every)
            if self.gpus.mem == "low_mem":
                distributed.setdefault("micro_batch", 1)
        return world

    def fit(self, x, y, batch_size: int = 32, epochs: int = 1, validation_data=None, shuffle: bool = True,
            seed: int | None = None, verbose: int = 1, augment: Callable | None = None,
            drop_remainder: bool = False, prefetch: int = 2, comm=None, **distributed) -> History:
        """Train for ``epochs`` more epochs; returns the model's History (all epochs so far).

        Batches come from a background thread (irc.nn.data) seeded by (seed, epoch, step);
        ``augment(arrays, rng) -> arrays`` may transform each batch's inputs there. The last,
        smaller batch is trained too unless ``drop_remainder``. ``verbose``: 0 silent, 1 a
        progress bar per epoch and a summary line.

        Launched by ``mpirun`` with several processes, or given ``comm`` (an mpi4py or
        irc.dist communicator; False: never), training is data-parallel over the ranks
        (irc.dist.fit, whose options ``distributed`` passes on: ``sync_every``, ``checkpoint``...)
        and ``batch_size`` is the global batch.

        Compiled for ``irc.CUDA(devices=mask, mem=level, sync_every=K)``: one process per
        selected GPU, each rank on the GPU its place on its host picks (irc.dist.devices);
        ``sync_every`` defaults to the configuration's K, and ``low_mem`` runs each share a sample
        at a time. One process may train alone on a mask that selects one GPU."""
        if comm is not False or self.gpus is not None:
            from irc.dist.launch import resolve

            world = resolve(comm) if comm is not False else None
            if self.gpus is not None:
                world = self._gpu_world(world, distributed)
            if world is not None:
                from irc.dist.data_parallel import fit as fit_data_parallel

                return fit_data_parallel(self, world, x, y, batch_size=batch_size, epochs=epochs,
                                         validation_data=validation_data, shuffle=shuffle, seed=seed, verbose=verbose,
                                         augment=augment, drop_remainder=drop_remainder, **distributed)
        if set(distributed) - {"sync_every"}:  # one replica: averaging it with itself changes nothing
            raise InputError(f"{', '.join(sorted(distributed))}: options of distributed training, but this process "
                             f"trains alone (start it with mpirun, or give comm=)")
        self._need_compiled()
        xs, ys = self._training_data(x, y, batch_size, epochs)
        n = len(ys)
        self._check_batch(batch_size)
        if n % batch_size and not drop_remainder and not self.supports_batch(n % batch_size):
            # A fixed-batch graph cannot run the smaller last batch.
            warnings.warn(f"model {self.name} runs batches of {batch_size} samples only: the last "
                          f"{n % batch_size} of {n} samples are left out of each epoch", stacklevel=2)
            drop_remainder = True
        if n < batch_size and drop_remainder:
            raise InputError(f"{n} samples do not fill one batch of {batch_size}")
        val = self._validation_data(validation_data)
        if seed is not None:
            self.seed = int(seed)
        arrays = dict(zip(self.input_names, xs), y=ys)
        self._compiled("step", batch_size)
        masks = self._steps[batch_size].masks
        names = ["loss", *(m.name for m in self.metrics)]
        for _ in range(epochs):
            epoch = self.epoch
            t0 = time.perf_counter()
            loader = BatchLoader(arrays, batch_size, seed=self.seed, epoch=epoch, shuffle=shuffle,
                                 drop_remainder=drop_remainder, masks=masks, augment=augment, prefetch=prefetch)
            bar = _progress(len(loader), f"epoch {epoch + 1}", verbose)
            sums = np.zeros(len(names))
            seen = 0
            try:
                for batch in loader:
                    if batch.size != batch_size:
                        self._compiled("step", batch.size)
                    sums += self._run_step(batch.size, batch.arrays, epoch, batch.step)
                    seen += batch.size
                    if bar is not None:
                        bar.update(1)
                        bar.set_postfix({k: f"{v / seen:.4f}" for k, v in zip(names, sums)}, refresh=False)
            finally:
                loader.close()
                if bar is not None:
                    bar.close()
            logs = {"epoch": epoch + 1, **{k: float(v / seen) for k, v in zip(names, sums)}}
            if val is not None:
                logs.update({f"val_{k}": v for k, v in self.evaluate(*val, batch_size=batch_size).items()})
            logs["time"] = time.perf_counter() - t0
            self.epoch += 1
            self.history.append(logs)
            if verbose:
                print(_summary(logs), flush=True)
        return self.history

    def _eval_batch(self, batch_size: int | None) -> int:
        """evaluate/predict's batch size: the one given, else the graph's fixed batch, else 256."""
        b = batch_size or getattr(self, "fixed_batch", None) or 256
        if isinstance(b, bool) or not isinstance(b, int) or b < 1:
            raise InputError(f"batch_size must be a positive integer, got {batch_size!r}")
        return b

    def evaluate(self, x, y, batch_size: int | None = None) -> dict[str, float]:
        """Loss and metrics over the samples (means), with inference-mode layers."""
        self._need_compiled()
        batch_size = self._eval_batch(batch_size)
        xs = self._inputs(x)
        ys = self._targets(y, len(xs[0]))
        n = len(ys)
        sums = np.zeros(1 + len(self.metrics))
        for lo in range(0, n, batch_size):
            part = [a[lo:lo + batch_size] for a in xs]
            b = len(part[0])
            self._check_batch(b)
            exe = self._compiled("eval", b)
            outs = exe.run(self._feed(exe, dict(zip(self.input_names, part), y=ys[lo:lo + batch_size])))
            sums += [float(outs[0]) * b, *(float(o) for o in outs[1:])]
        return {k: float(v / n) for k, v in zip(["loss", *(m.name for m in self.metrics)], sums)}

    def predict(self, x, batch_size: int | None = None) -> np.ndarray:
        """The model's outputs for the samples (inference mode)."""
        batch_size = self._eval_batch(batch_size)
        xs = self._inputs(x)
        n = len(xs[0])
        parts = []
        for lo in range(0, n, batch_size):
            part = [a[lo:lo + batch_size] for a in xs]
            b = len(part[0])
            self._check_batch(b)
            exe = self._compiled("predict", b)
            parts.append(exe.run(self._feed(exe, dict(zip(self.input_names, part))))[0])
        return np.concatenate(parts) if parts else np.zeros((0, *self.output_shapes[0]), np.float32)

    def _feed(self, exe, data: dict) -> list[np.ndarray]:
        self._pull()
        out = []
        for v in exe.graph.inputs:
            out.append(data[v.name] if v.name in data else self.get_weight(v.name))
        return out

    # -- saving -------------------------------------------------------------------------
    def save(self, path, batch_size: int | None = None) -> None:
        """Write the inference graph with the current weights as ONNX (atomically). Without
        ``batch_size`` the batch axis is dynamic ("N") where the graph allows it."""
        from irc.nn.checkpoint import save_onnx_model

        save_onnx_model(self, path, batch_size)

    def save_checkpoint(self, path) -> None:
        """Weights, optimizer state, compile settings, counters and history in one file, so that
        ``irc.nn.load_checkpoint(path)`` resumes training exactly."""
        from irc.nn.checkpoint import save_checkpoint

        save_checkpoint(self, path)

    def summary(self) -> str:
        lines = [f"model {self.name}: inputs {[list(s) for s in self.input_shapes]} -> "
                 f"outputs {[list(s) for s in self.output_shapes]}"]
        total = 0
        for k in self.weight_keys():
            w = self.get_weight(k)
            total += w.size
            lines.append(f"  {k:40s} {str(list(w.shape)):>20s}{'' if k in self.trainable_names else '  (state)'}")
        lines.append(f"  {total} weights")
        return "\n".join(lines)


def _check_layout(traced, compiled) -> None:
    """The target's pipeline must keep inputs and outputs (and so the state pairing) in place."""
    a = [(v.name, v.type) for v in traced.inputs] + [("out", v.type) for v in traced.outputs]
    b = [(v.name, v.type) for v in compiled.inputs] + [("out", v.type) for v in compiled.outputs]
    if a != b or "state" not in compiled.meta:
        raise ModelError(f"the target's passes changed the inputs or outputs of {traced.name}")


def _progress(total: int, desc: str, verbose: int):
    if not verbose:
        return None
    try:
        from tqdm import tqdm
    except ImportError:  # pragma: no cover - tqdm is a dependency
        return None
    return tqdm(total=total, desc=desc, unit="step", leave=False, dynamic_ncols=True)


def _summary(logs: dict) -> str:
    parts = [f"epoch {logs['epoch']}:"]
    for k, v in logs.items():
        if k not in ("epoch", "time"):
            parts.append(f"{k} {v:.4f}")
    parts.append(f"{logs['time']:.2f} s")
    return " ".join(parts)


# ----------------------------------------------------------------------------------------


class Model(BaseModel):
    """A network of layers from its input symbols to its output symbols (functional API).
    Weights are created here, seeded by ``seed`` and each layer's position."""

    def __init__(self, inputs, outputs, name: str = "model", seed: int = 0):
        self.inputs = list(inputs) if isinstance(inputs, (list, tuple)) else [inputs]
        self.outputs = list(outputs) if isinstance(outputs, (list, tuple)) else [outputs]
        self.name = name
        self.init_seed = int(seed)
        self.symbols = _topo(self.outputs)
        for s in self.symbols:
            if isinstance(s.layer, InputLayer) and s not in self.inputs:
                raise ModelError(f"the outputs depend on an input {s} that is not among the model's inputs")
        self.layers = _unique_layers(self.symbols)
        _name_layers(self.layers)
        for k, layer in enumerate(self.layers):
            if not layer.built:
                layer.build(np.random.default_rng([self.init_seed, k]))
                layer.built = True
        self.input_names = [s.layer.name for s in self.inputs]
        self.input_shapes = [s.shape for s in self.inputs]
        self.output_shapes = [s.shape for s in self.outputs]
        self.trainable_names = [f"{layer.name}.{w}" for layer in self.layers for w in layer.trainable]
        self._by_name = {layer.name: layer for layer in self.layers}
        self._init_training_state()

    def weight_keys(self):
        return [f"{layer.name}.{w}" for layer in self.layers for w in layer.weights]

    def _get_weight(self, key):
        layer, w = key.rsplit(".", 1)
        return self._by_name[layer].weights[w]

    def _store_weight(self, key, value):
        layer, w = key.rsplit(".", 1)
        self._by_name[layer].weights[w] = value

    def forward(self, ctx, xs):
        env: dict[int, object] = {}
        for s, x in zip(self.inputs, xs):
            env[id(s)] = x
        for s in self.symbols:
            if id(s) in env:
                continue
            try:
                env[id(s)] = s.layer.forward(ctx, *(env[id(i)] for i in s.inbound))
            except IRCError as e:
                raise type(e)(f"layer {s.layer.label}: {e}") from None
        return [env[id(s)] for s in self.outputs]

    def config(self) -> dict:
        index = {id(s): i for i, s in enumerate(self.symbols)}
        return {
            "class": "Model", "name": self.name, "seed": self.init_seed,
            "layers": [{"class": type(layer).__name__, "config": layer.config()} for layer in self.layers],
            "calls": [{"layer": s.layer.name, "inbound": [index[id(i)] for i in s.inbound]} for s in self.symbols],
            "inputs": [index[id(s)] for s in self.inputs], "outputs": [index[id(s)] for s in self.outputs],
        }

    @staticmethod
    def from_config(cfg: dict) -> Model:
        layers = {}
        for spec in cfg["layers"]:
            layers[spec["config"]["name"]] = LAYERS[spec["class"]](**spec["config"])
        syms: list[Symbol] = []
        for call in cfg["calls"]:
            layer = layers[call["layer"]]
            if isinstance(layer, InputLayer):
                s = Input(layer.shape, layer.name)
                s.layer = layer
            else:
                s = layer(*(syms[i] for i in call["inbound"]))
            syms.append(s)
        return Model([syms[i] for i in cfg["inputs"]], [syms[i] for i in cfg["outputs"]], cfg["name"], cfg["seed"])


class Sequential(Model):
    """Layers applied one after another. The input shape comes from ``input_shape`` or a leading
    ``nn.Input``."""

    def __init__(self, layers: Sequence, input_shape: Sequence[int] | None = None, name: str = "sequential",
                 seed: int = 0):
        layers = list(layers)
        if layers and isinstance(layers[0], Symbol):
            x = layers.pop(0)
        elif input_shape is not None:
            x = Input(tuple(input_shape))
        else:
            raise ModelError("Sequential needs input_shape=... or an nn.Input as its first element")
        h = x
        for layer in layers:
            if not isinstance(layer, Layer):
                raise ModelError(f"Sequential takes layers, got {type(layer).__name__}")
            h = layer(h)
        super().__init__(x, h, name=name, seed=seed)


def _topo(outputs: list[Symbol]) -> list[Symbol]:
    order, seen = [], set()

    def visit(s: Symbol, path: set):
        if id(s) in seen:
            return
        for i in s.inbound:
            visit(i, path)
        seen.add(id(s))
        order.append(s)

    for o in outputs:
        if not isinstance(o, Symbol):
            raise ModelError(f"model outputs must be layer outputs, got {type(o).__name__}")
        visit(o, set())
    return order


def _unique_layers(symbols: list[Symbol]) -> list[Layer]:
    out, seen = [], set()
    for s in symbols:
        if id(s.layer) not in seen:
            seen.add(id(s.layer))
            out.append(s.layer)
    return out


def _name_layers(layers: list[Layer]) -> None:
    taken = {layer.name for layer in layers if layer.name}
    if len(taken) != sum(1 for layer in layers if layer.name):
        names = [layer.name for layer in layers if layer.name]
        dup = sorted({n for n in names if names.count(n) > 1})
        raise ModelError(f"layer names must be unique; repeated: {', '.join(dup)}")
    counters: dict[str, int] = {}
    for layer in layers:
        if layer.name:
            if "." in layer.name:
                raise ModelError(f"layer name '{layer.name}' must not contain '.'")
            continue
        base = "input" if isinstance(layer, InputLayer) else _snake(type(layer).__name__)
        while True:
            k = counters.get(base, 0)
            counters[base] = k + 1
            name = base if k == 0 else f"{base}_{k}"
            if name not in taken:
                break
        layer.name = name
        taken.add(name)


def _snake(s: str) -> str:
    out = []
    for i, ch in enumerate(s):
        if ch.isupper() and i and not s[i - 1].isupper():
            out.append("_")
        out.append(ch.lower())
    return "".join(out)
