"""PyTorch as a benchmark peer: runs an ONNX model's graph with torch.nn.functional, op by
op, with the model's own weights — what an eager PyTorch module of the same network does.
Only the ops the zoo models use are mapped; anything else raises. PyTorch is optional."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper


def torch_runner(model: onnx.ModelProto, threads: int):
    """A callable ``run(feeds: dict of numpy arrays) -> list of tensors`` on the CPU, or None
    when torch is missing."""
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(threads)
    graph = torch_graph(model, torch)

    @torch.inference_mode()
    def run(feeds: dict[str, np.ndarray]):
        return graph({k: torch.from_numpy(v) for k, v in feeds.items()})

    return run


def torch_graph(model: onnx.ModelProto, torch, device="cpu"):
    """``graph(feeds: dict of tensors) -> list of tensors``: the model's nodes as torch calls,
    floating-point weights on ``device`` (shapes and other integer constants stay on the host)."""
    import torch.nn.functional as F

    g = model.graph

    def tensor(a):
        t = torch.from_numpy(numpy_helper.to_array(a).copy())
        return t.to(device) if t.is_floating_point() else t

    consts = {t.name: tensor(t) for t in g.initializer}
    nodes = list(g.node)
    for n in nodes:
        if n.op_type == "Constant":
            consts[n.output[0]] = tensor(n.attribute[0].t)

    def attr(n, name, default=None):
        for a in n.attribute:
            if a.name == name:
                return helper.get_attribute_value(a)
        return default

    def conv(n, env):
        x, w = env[n.input[0]], env[n.input[1]]
        b = env[n.input[2]] if len(n.input) > 2 and n.input[2] else None
        pads = attr(n, "pads", [0, 0, 0, 0])
        if pads[0] != pads[2] or pads[1] != pads[3]:
            x = F.pad(x, (pads[1], pads[3], pads[0], pads[2]))
            pads = [0, 0, 0, 0]
        return F.conv2d(x, w, b, attr(n, "strides", [1, 1]), pads[:2], attr(n, "dilations", [1, 1]), attr(n, "group", 1))

    def pool(fn):
        def run(n, env):
            pads = attr(n, "pads", [0, 0, 0, 0])
            return fn(env[n.input[0]], attr(n, "kernel_shape"), attr(n, "strides", None), pads[:2],
                      ceil_mode=bool(attr(n, "ceil_mode", 0)))
        return run

    def gemm(n, env):
        a, b = env[n.input[0]], env[n.input[1]]
        if attr(n, "transA", 0):
            a = a.t()
        c = env[n.input[2]] if len(n.input) > 2 else None
        y = F.linear(a, b, c) if attr(n, "transB", 0) else a @ b + (c if c is not None else 0)
        return y

    ops = {
        "Conv": conv,
        "Relu": lambda n, e: F.relu(e[n.input[0]]),
        "Clip": lambda n, e: torch.clamp(e[n.input[0]], float(e[n.input[1]]), float(e[n.input[2]])),
        "Add": lambda n, e: e[n.input[0]] + e[n.input[1]],
        "MaxPool": pool(F.max_pool2d),
        "AveragePool": pool(lambda x, k, s, p, ceil_mode: F.avg_pool2d(x, k, s, p, ceil_mode=ceil_mode)),
        "GlobalAveragePool": lambda n, e: F.adaptive_avg_pool2d(e[n.input[0]], 1),
        "Flatten": lambda n, e: torch.flatten(e[n.input[0]], attr(n, "axis", 1)),
        "Reshape": lambda n, e: torch.reshape(e[n.input[0]], [int(d) for d in e[n.input[1]]]),
        "Gemm": gemm,
        "MatMul": lambda n, e: e[n.input[0]] @ e[n.input[1]],
        "Softmax": lambda n, e: F.softmax(e[n.input[0]], attr(n, "axis", -1)),
        "BatchNormalization": lambda n, e: F.batch_norm(e[n.input[0]], e[n.input[3]], e[n.input[4]], e[n.input[1]],
                                                        e[n.input[2]], False, 0.0, attr(n, "epsilon", 1e-5)),
        "Constant": lambda n, e: consts[n.output[0]],
    }
    missing = sorted({n.op_type for n in nodes} - set(ops))
    if missing:
        raise NotImplementedError(f"the PyTorch peer has no mapping for {', '.join(missing)}")

    def graph(feeds):
        env = dict(consts)
        env.update(feeds)
        for n in nodes:
            env[n.output[0]] = ops[n.op_type](n, env)
        return [env[o.name] for o in g.output]

    return graph
