"""The one encoding of an activation applied to an op's result: ``act``, ``act_alpha``, ``act_beta``.

``act`` names an activation op (or "none"); ``act_alpha`` and ``act_beta`` are its parameters,
in the order ACTIVATION_OPS lists them (leaky_relu: alpha; clip: min, max; hard_sigmoid: alpha,
beta). ``conv_fused`` / ``gemm_fused`` (and the CPU target's lowered forms) take the ACTIVATIONS
the fuse pass folds in, which every target's fused kernels implement; ONNX-level ``gemm`` takes
any of ACTIVATION_OPS.
"""

from __future__ import annotations

import numpy as np

from irc.ir.ops.registry import Attr, get_op

#: act name -> (op applied, its attributes that act_alpha and act_beta give, in that order)
ACTIVATION_OPS: dict[str, tuple[str, tuple[str, ...]] | None] = {
    "none": None,
    "relu": ("relu", ()),
    "leaky_relu": ("leaky_relu", ("alpha",)),
    "clip": ("clip", ("min", "max")),
    "sigmoid": ("sigmoid", ()),
    "tanh": ("tanh", ()),
    "hard_sigmoid": ("hard_sigmoid", ("alpha", "beta")),
    "hard_swish": ("hard_swish", ()),
    "elu": ("elu", ("alpha",)),
    "selu": ("selu", ("alpha", "gamma")),
    "softplus": ("softplus", ()),
    "softsign": ("softsign", ()),
    "gelu": ("gelu", ()),
    "gelu_tanh": ("gelu_tanh", ()),
    "silu": ("silu", ()),
}

_FUSABLE = ("none", "relu", "leaky_relu", "clip", "sigmoid", "tanh", "hard_sigmoid", "hard_swish", "gelu",
            "gelu_tanh", "silu")

#: The activations the fuse pass makes epilogues of (every target's fused kernels run these).
ACTIVATIONS = {name: ACTIVATION_OPS[name] for name in _FUSABLE}


def act_attrs(choices) -> dict[str, Attr]:
    """The attribute schema of an op taking an activation from ``choices``."""
    return {
        "act": Attr("str", "none", tuple(choices)),
        "act_alpha": Attr("float", 0.0),
        "act_beta": Attr("float", 0.0),
    }


EPILOGUE_ATTRS = act_attrs(ACTIVATIONS)


def activation_node(act: str, alpha: float, beta: float) -> tuple[str, dict] | None:
    """(op, its resolved attributes) that ``act`` applies, or None for "none"."""
    spec = ACTIVATION_OPS[act]
    if spec is None:
        return None
    op = get_op(spec[0])
    return op.name, op.check_attrs(dict(zip(spec[1], (alpha, beta))))


def activation_of(node_op: str, attrs: dict, within=ACTIVATIONS) -> tuple[str, float, float] | None:
    """(act, alpha, beta) if a node of ``node_op`` with ``attrs`` is one of the activations
    ``within`` (by default the ones the fuse pass makes epilogues of), else None."""
    spec = within.get(node_op) if node_op != "none" else None
    if spec is None:
        return None
    params = [float(attrs[a]) for a in spec[1]] + [0.0, 0.0]
    return node_op, params[0], params[1]


def apply_activation(y: np.ndarray, act: str, alpha: float, beta: float) -> np.ndarray:
    """``act`` applied to y by its op's numpy reference."""
    spec = activation_node(act, alpha, beta)
    if spec is None:
        return y
    op = get_op(spec[0])
    return op.evaluate([y], spec[1])[0]
