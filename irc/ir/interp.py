"""The reference interpreter: runs a graph node by node with each op's numpy reference.

It is the definition of what a graph computes, and the oracle every backend is tested against.
Values are dropped after their last use so that large models fit in memory.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np

from irc.errors import InputError, IRCError
from irc.ir.graph import Graph, Node, Value
from irc.ir.ops import get_op
from irc.ir.types import DType, TensorType


def bind_inputs(g: Graph, inputs: Sequence[np.ndarray] | Mapping[str, np.ndarray]) -> list[np.ndarray]:
    """Inputs in graph order, checked against the declared types (a lossless dtype
    conversion is made; anything else is an InputError naming the input)."""
    if isinstance(inputs, Mapping):
        missing = [v.name for v in g.inputs if v.name not in inputs]
        if missing:
            raise InputError(f"missing input(s) {', '.join(missing)}; the model takes {input_signature(g)}")
        extra = sorted(set(inputs) - {v.name for v in g.inputs})
        if extra:
            raise InputError(f"unknown input(s) {', '.join(extra)}; the model takes {input_signature(g)}")
        inputs = [inputs[v.name] for v in g.inputs]
    inputs = list(inputs)
    if len(inputs) != len(g.inputs):
        raise InputError(f"got {len(inputs)} input(s); the model takes {input_signature(g)}")
    return [check_input(v, a) for v, a in zip(g.inputs, inputs)]


def input_signature(g: Graph) -> str:
    return ", ".join(f"{v.name}: {v.type}" for v in g.inputs) or "no inputs"


def check_input(v: Value, a) -> np.ndarray:
    """``a`` as a C-contiguous array of v's type, or InputError."""
    if a is None:
        raise InputError(f"input '{v.name}' is None; expected {v.type}")
    if not isinstance(a, np.ndarray):
        if np.isscalar(a) or isinstance(a, (list, tuple)):
            a = np.asarray(a)
        else:
            raise InputError(f"input '{v.name}' is a {type(a).__name__}; expected a numpy array of {v.type}")
    if tuple(a.shape) != v.shape:
        raise InputError(f"input '{v.name}' has shape {list(a.shape)}; expected {list(v.shape)} ({v.type})")
    want = v.dtype.numpy
    if a.dtype != want:
        if not _lossless(a.dtype, want):
            raise InputError(f"input '{v.name}' has dtype {a.dtype}; expected {v.dtype} ({v.type})")
        a = a.astype(want)
    return a if a.flags.c_contiguous else a.copy()


def _lossless(src: np.dtype, dst: np.dtype) -> bool:
    try:
        return np.can_cast(src, dst, casting="safe")
    except TypeError:
        return False


Observer = Callable[[Node, tuple[np.ndarray, ...]], None]


def interpret(
    g: Graph,
    inputs: Sequence[np.ndarray] | Mapping[str, np.ndarray],
    *,
    observe: Observer | None = None,
    keep: Sequence[Value] = (),
) -> list[np.ndarray]:
    """Outputs of ``g`` for ``inputs``. ``observe(node, outputs)`` is called after every node
    (calibration records ranges with it); values in ``keep`` are never dropped."""
    env: dict[Value, np.ndarray] = dict(zip(g.inputs, bind_inputs(g, inputs)))
    env.update(g.params)
    last_use: dict[Value, int] = {}
    for i, n in enumerate(g.nodes):
        for v in n.inputs:
            last_use[v] = i
    pinned = set(g.outputs) | set(keep) | set(g.params)
    with np.errstate(all="ignore"):
        for i, n in enumerate(g.nodes):
            outs = run_node(n, [env[v] for v in n.inputs])
            for v, a in zip(n.outputs, outs):
                env[v] = a
            if observe is not None:
                observe(n, outs)
            for v in n.inputs:
                if last_use.get(v) == i and v not in pinned:
                    env.pop(v, None)
    return [env[v] for v in g.outputs]


def run_node(n: Node, arrays: list[np.ndarray]) -> tuple[np.ndarray, ...]:
    """One node through its op's reference; outputs are checked against the node's types."""
    try:
        outs = get_op(n.op).evaluate(arrays, n.attrs)
    except IRCError as e:
        raise e.at(n.label, n.op) from None
    result = []
    for v, a in zip(n.outputs, outs):
        a = np.asarray(a)
        if a.dtype != v.dtype.numpy:
            a = a.astype(v.dtype.numpy)
        assert TensorType.of(a) == v.type or (v.dtype is DType.bool and a.shape == v.shape), (
            f"reference of {n.op} gave {TensorType.of(a)} for {v}"
        )
        result.append(a)
    return tuple(result)
