"""PyTorch as a benchmark peer: runs an ONNX model's graph with torch.nn.functional, op by
op, with the model's own weights — what an eager PyTorch module of the same network does.
Where the export spelled out an activation PyTorch has as one function, the peer calls that
function, as the module would: ``x * sigmoid(x)`` is ``F.silu`` and ``x * 0.5 * (1 + erf(x /
sqrt 2))`` is ``F.gelu`` (matched on the ONNX nodes, below). Only the ops the
zoo models use are mapped; anything else raises. PyTorch is optional."""

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

    def ints(t) -> list[int]:
        return [int(d) for d in (t.tolist() if hasattr(t, "tolist") else t)]

    def gather(n, e):
        data, idx, axis = e[n.input[0]], e[n.input[1]], attr(n, "axis", 0)
        axis %= data.dim()
        flat = torch.as_tensor(idx).reshape(-1).long() % data.shape[axis]
        out = torch.index_select(data, axis, flat.to(data.device) if data.is_floating_point() else flat)
        return out.reshape((*data.shape[:axis], *torch.as_tensor(idx).shape, *data.shape[axis + 1:]))

    def layer_norm(n, e):
        x = e[n.input[0]]
        axis = attr(n, "axis", -1) % x.dim()
        bias = e[n.input[2]] if len(n.input) > 2 and n.input[2] else None
        return F.layer_norm(x, x.shape[axis:], e[n.input[1]], bias, attr(n, "epsilon", 1e-5))

    def unsqueeze(n, e):
        x = e[n.input[0]]
        axes = ints(e[n.input[1]]) if len(n.input) > 1 else attr(n, "axes")
        for a in sorted(d % (x.dim() + len(axes)) for d in axes):
            x = torch.unsqueeze(x, a)
        return x

    def reshape(n, e):
        x = e[n.input[0]]
        keep = not attr(n, "allowzero", 0)  # ONNX: a 0 copies the input's dimension
        return torch.reshape(x, [x.shape[i] if d == 0 and keep else d for i, d in enumerate(ints(e[n.input[1]]))])

    def expand(n, e):
        x = e[n.input[0]]
        return torch.broadcast_to(x, torch.broadcast_shapes(tuple(x.shape), tuple(ints(e[n.input[1]]))))

    ops = {
        "Conv": conv,
        "Sigmoid": lambda n, e: torch.sigmoid(e[n.input[0]]),
        "Mul": lambda n, e: e[n.input[0]] * e[n.input[1]],
        "Div": lambda n, e: e[n.input[0]] / e[n.input[1]],
        "Sub": lambda n, e: e[n.input[0]] - e[n.input[1]],
        "Erf": lambda n, e: torch.erf(e[n.input[0]]),
        "Transpose": lambda n, e: e[n.input[0]].permute(*attr(n, "perm", list(range(e[n.input[0]].dim()))[::-1])),
        "LayerNormalization": layer_norm,
        "Shape": lambda n, e: torch.tensor(list(e[n.input[0]].shape), dtype=torch.int64),
        "Gather": gather,
        "Unsqueeze": unsqueeze,
        "Concat": lambda n, e: torch.cat([torch.as_tensor(e[i]) for i in n.input], attr(n, "axis")),
        "Expand": expand,
        "SiLU": lambda n, e: F.silu(e[n.input[0]]),
        "GELU": lambda n, e: F.gelu(e[n.input[0]]),
        "Relu": lambda n, e: F.relu(e[n.input[0]]),
        "Clip": lambda n, e: torch.clamp(e[n.input[0]], float(e[n.input[1]]), float(e[n.input[2]])),
        "Add": lambda n, e: e[n.input[0]] + e[n.input[1]],
        "MaxPool": pool(F.max_pool2d),
        "AveragePool": pool(lambda x, k, s, p, ceil_mode: F.avg_pool2d(x, k, s, p, ceil_mode=ceil_mode)),
        "GlobalAveragePool": lambda n, e: F.adaptive_avg_pool2d(e[n.input[0]], 1),
        "Flatten": lambda n, e: torch.flatten(e[n.input[0]], attr(n, "axis", 1)),
        "Reshape": reshape,
        "Gemm": gemm,
        "MatMul": lambda n, e: e[n.input[0]] @ e[n.input[1]],
        "Softmax": lambda n, e: F.softmax(e[n.input[0]], attr(n, "axis", -1)),
        "BatchNormalization": lambda n, e: F.batch_norm(e[n.input[0]], e[n.input[3]], e[n.input[4]], e[n.input[1]],
                                                        e[n.input[2]], False, 0.0, attr(n, "epsilon", 1e-5)),
        "Constant": lambda n, e: consts[n.output[0]],
    }
    nodes = _call_activations(nodes, consts)
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


def _call_activations(nodes: list, consts: dict) -> list:
    """``nodes`` with SiLU (Mul(x, Sigmoid(x))) and erf-GELU (Div(x, sqrt 2) -> Erf -> Add 1 ->
    Mul x -> Mul 0.5, in either operand order) replaced by single nodes of op "SiLU"/"GELU",
    when their intermediate values are used only inside the pattern."""
    producer = {o: n for n in nodes for o in n.output}
    uses: dict[str, int] = {}
    for n in nodes:
        for i in n.input:
            uses[i] = uses.get(i, 0) + 1

    def const(name, value) -> bool:
        t = consts.get(name)
        return t is not None and t.numel() == 1 and abs(float(t.reshape(-1)[0]) - value) < 1e-6 * abs(value)

    def made_by(name, op):
        p = producer.get(name)
        return p if p is not None and p.op_type == op and uses.get(name) == 1 else None

    replace: dict[int, onnx.NodeProto] = {}
    dropped: set[int] = set()
    for n in nodes:
        if n.op_type != "Mul":
            continue
        for x, s in (n.input, n.input[::-1]):  # SiLU: Mul(x, Sigmoid(x))
            sig = made_by(s, "Sigmoid")
            if sig is not None and sig.input[0] == x:
                replace[id(n)] = helper.make_node("SiLU", [x], list(n.output))
                dropped.add(id(sig))
                break
        if id(n) in replace:
            continue
        for half, inner in (n.input, n.input[::-1]):  # GELU: Mul(Mul(x, Add(Erf(Div(x, c)), 1)), 0.5)
            if not const(half, 0.5):
                continue
            m = made_by(inner, "Mul")
            if m is None:
                continue
            for x, a in (m.input, m.input[::-1]):
                add = made_by(a, "Add")
                if add is None:
                    continue
                erf_out = add.input[0] if const(add.input[1], 1.0) else add.input[1] if const(add.input[0], 1.0) else None
                erf = made_by(erf_out, "Erf") if erf_out else None
                div = made_by(erf.input[0], "Div") if erf is not None else None
                if div is not None and div.input[0] == x and const(div.input[1], 2 ** 0.5):
                    replace[id(n)] = helper.make_node("GELU", [x], list(n.output))
                    dropped |= {id(m), id(add), id(erf), id(div)}
                    break
            if id(n) in replace:
                break
    return [replace.get(id(n), n) for n in nodes if id(n) not in dropped]
