"""Saving models: the inference graph as ONNX, and checkpoints that resume training exactly.

A checkpoint is one ``.npz`` file (written atomically): every weight under ``weight/<name>``,
every optimizer state array under ``opt/<name>``, and a JSON document under ``meta``: the
architecture (layer configs and how they connect, or for a GraphModel its ONNX bytes under
``onnx``), the compile settings (optimizer, loss, metrics, target and options), the counters
(epochs, steps, fit's seed) and the history. Loading it and calling fit goes on with the same
batches, masks and learning rates as if training had not stopped, so the next step is
bit-identical to the uninterrupted run's. A custom schedule function cannot be stored: give it
again (``model.optimizer.schedule = fn``) after loading.
"""

from __future__ import annotations

import io
import json
import os

import numpy as np
import onnx

from irc.errors import InputError
from irc.fileio import atomic_write

FORMAT = "irc-checkpoint"
VERSION = 1


def save_onnx_model(model, path, batch_size: int | None = None) -> None:
    """The inference graph with trained weights as ONNX; batch axis "N" unless ``batch_size``."""
    from irc.frontend.onnx.exporter import export_onnx

    batch = batch_size or getattr(model, "fixed_batch", None) or 1
    g = model.inference_graph(batch)
    proto = export_onnx(g)
    if batch_size is None and getattr(model, "fixed_batch", None) is None:
        proto = dynamic_batch(proto, g, batch)
    atomic_write(path, proto.SerializeToString())


def dynamic_batch(proto: onnx.ModelProto, g, batch: int) -> onnx.ModelProto:
    """``proto`` with a symbolic batch axis, if every node lets it be (its op is BATCH_FREE or
    element-wise); else unchanged. The only node that records the batch size is reshape (handled
    by writing 0, "copy this dimension")."""
    from irc.ir.ops import get_op
    from irc.ir.ops.registry import Trait

    for n in g.nodes:
        if get_op(n.op).traits & {Trait.BATCH_FREE, Trait.ELEMENTWISE}:
            if n.op == "concat" and n.attrs["axis"] == 0:
                return proto
            if n.op == "reshape" and (n.inputs[0].shape[:1] != (batch,) or n.outputs[0].shape[:1] != (batch,)):
                return proto
            continue
        return proto
    if any(v.shape[:1] != (batch,) for v in (*g.inputs, *g.outputs)):
        return proto
    m = onnx.ModelProto()
    m.CopyFrom(proto)
    inits = {t.name: t for t in m.graph.initializer}
    for node in m.graph.node:
        if node.op_type == "Reshape":
            t = inits[node.input[1]]
            shape = onnx.numpy_helper.to_array(t).copy()
            shape[0] = 0
            t.CopyFrom(onnx.numpy_helper.from_array(shape, t.name))
    for vi in (*m.graph.input, *m.graph.output):
        dim = vi.type.tensor_type.shape.dim[0]
        dim.ClearField("dim_value")
        dim.dim_param = "N"
    onnx.checker.check_model(m)
    return m


def save_checkpoint(model, path) -> None:
    model._pull()
    arrays = {f"weight/{k}": model.get_weight(k) for k in model.weight_keys()}
    arrays.update({f"opt/{k[4:]}": np.asarray(v) for k, v in model.opt_state.items()})
    compiled = None
    if model.loss is not None:
        compiled = {"optimizer": model.optimizer.config(), "loss": model.loss.config(),
                    "metrics": [m.name for m in model.metrics], "target": model.target,
                    "options": model.target_options}
        if model.gpus is not None:
            g = model.gpus
            compiled["gpus"] = {"devices": list(g.devices), "mem": g.mem, "sync_every": g.sync_every}
            compiled["options"] = {k: v for k, v in model.target_options.items() if k not in ("mem", "device")}
    meta = {"format": FORMAT, "version": VERSION, "model": model.config(), "compile": compiled,
            "epoch": model.epoch, "step_count": model.step_count, "seed": model.seed,
            "history": model.history.history}
    if meta["model"]["class"] == "GraphModel":
        arrays["onnx"] = np.frombuffer(model.source_bytes(), np.uint8)
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), np.uint8)
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    atomic_write(path, buf.getvalue())


def load_checkpoint(path):
    """The model saved by ``save_checkpoint``, compiled as it was, with its optimizer state."""
    from irc.nn.graph_model import GraphModel
    from irc.nn.model import History, Model

    if not os.path.isfile(path):
        raise InputError(f"no checkpoint at {path}")
    with open(path, "rb") as f:
        magic = f.read(4)
    if magic != b"PK\x03\x04":  # every .npz is a zip archive
        raise InputError(f"{path} is not an irc checkpoint (save_checkpoint writes .npz files; this one is not)")
    try:
        data = np.load(path, allow_pickle=False)
        meta = json.loads(bytes(data["meta"]).decode())
    except (OSError, ValueError, KeyError) as e:
        raise InputError(f"{path} is not an irc checkpoint ({e})") from None
    if meta.get("format") != FORMAT or meta.get("version") != VERSION:
        raise InputError(f"{path} is not an irc checkpoint of version {VERSION}")
    cfg = meta["model"]
    if cfg["class"] == "GraphModel":
        model = GraphModel(bytes(data["onnx"]), trainable=cfg["trainable"], name=cfg["name"])
    else:
        model = Model.from_config(cfg)
    weights = {k[len("weight/"):]: data[k] for k in data.files if k.startswith("weight/")}
    missing = sorted(set(model.weight_keys()) - set(weights))
    if missing:
        raise InputError(f"checkpoint {path} lacks weights {', '.join(missing)}")
    model.set_weights(weights)
    comp = meta["compile"]
    if comp is not None:
        target = comp["target"]
        if comp.get("gpus"):
            from irc.targets.cuda.multi import CUDA

            target = CUDA(**comp["gpus"])
        model.compile(comp["optimizer"], comp["loss"], comp["metrics"], target, **comp["options"])
        for k in data.files:
            if k.startswith("opt/"):
                name = "opt." + k[4:]
                if name not in model.opt_state:
                    raise InputError(f"checkpoint {path} holds optimizer state {name} the optimizer does not use")
                model.opt_state[name] = np.array(data[k])
    model.epoch, model.step_count, model.seed = meta["epoch"], meta["step_count"], meta["seed"]
    model.history = History({k: list(v) for k, v in meta["history"].items()})
    return model
