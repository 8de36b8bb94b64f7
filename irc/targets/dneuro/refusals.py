"""The layers the DNeuro block library lacks, and what to use instead.

A model with such layers is refused with ONE error (:func:`refusal_error`) that lists every
offending layer, why, and the usual replacement (LRN -> BatchNorm, Tanh -> clipped ReLU, then
retrain), so that one round of model changes is enough.
"""

from __future__ import annotations

from dataclasses import dataclass

import onnx

import irc.frontend.onnx.rules_all  # noqa: F401  (fills each op's onnx_names)
from irc.errors import UnsupportedOpError
from irc.ir.ops import get_op

RETRAIN = "then retrain"

#: ONNX op type -> the usual replacement, for layers no block implements.
ONNX_REPLACEMENTS: dict[str, str] = {
    "LRN": f"BatchNormalization (merged into the conv before it), {RETRAIN}",
    "Tanh": f"a clipped ReLU (Clip 0..6), {RETRAIN}",
    "Softplus": f"ReLU, {RETRAIN}",
    "Softsign": f"a clipped ReLU, {RETRAIN}",
    "Elu": f"ReLU, {RETRAIN}",
    "Selu": f"ReLU, {RETRAIN}",
    "Celu": f"ReLU, {RETRAIN}",
    "LeakyRelu": f"ReLU, {RETRAIN}",
    "PRelu": f"ReLU, {RETRAIN}",
    "HardSwish": f"a clipped ReLU, {RETRAIN}",
    "HardSigmoid": f"Sigmoid (tabulated) or a clipped ReLU, {RETRAIN}",
    "Gelu": f"ReLU, {RETRAIN}",
    "Mish": f"ReLU, {RETRAIN}",
    "ConvTranspose": f"a nearest Resize (upsampling) followed by a Conv, {RETRAIN}",
    "MaxUnpool": f"a nearest Resize (upsampling), {RETRAIN}",
    "AveragePool": f"MaxPool or a strided Conv ({RETRAIN}); a pool over the whole frame is a GlobalAveragePool",
    "LpPool": f"MaxPool, {RETRAIN}",
    "GlobalLpPool": f"GlobalAveragePool, {RETRAIN}",
    "InstanceNormalization": f"BatchNormalization after a Conv, {RETRAIN}",
    "LayerNormalization": f"BatchNormalization after a Conv, {RETRAIN}",
    "Mul": f"an element-wise sum (Add), {RETRAIN}",
    "Sub": f"an element-wise sum (Add), {RETRAIN}",
    "Div": f"an element-wise sum (Add), {RETRAIN}",
    "Transpose": "nothing: the accelerator streams NCHW frames; remove it",
    "LSTM": "convolutions (no recurrent block)",
    "GRU": "convolutions (no recurrent block)",
    "RNN": "convolutions (no recurrent block)",
}



def refused_as(op: str) -> str:
    """The name a refused node of irc op ``op`` is listed under: the ONNX op type it imports from
    when that type has a usual replacement, else the irc op (refused for a structural reason)."""
    return next((t for t in get_op(op).onnx_names if t in ONNX_REPLACEMENTS), op)

DEFAULT_REPLACEMENT = f"a supported layer (Conv, Fc, MaxPool, Add, ReLU, Concat), {RETRAIN}"

#: ONNX op types the flow accepts (whether a node is really supported is decided on the graph).
ONNX_SUPPORTED = frozenset({
    "Conv", "Gemm", "MatMul", "Relu", "Clip", "BatchNormalization", "MaxPool", "GlobalAveragePool", "GlobalMaxPool",
    "Add", "Concat", "Flatten", "Reshape", "Identity", "Dropout", "Pad", "Softmax", "LogSoftmax", "Sigmoid",
    "Resize", "Upsample", "Constant", "Shape", "Gather", "Unsqueeze", "Squeeze", "Cast", "ArgMax",
    "QuantizeLinear", "DequantizeLinear", "AveragePool",
})


@dataclass(frozen=True, slots=True)
class Refusal:
    """One layer the block library lacks."""

    node: str
    op: str
    replacement: str
    why: str = ""

    def __str__(self) -> str:
        why = f" ({self.why})" if self.why else ""
        return f"'{self.node}' ({self.op}{why}) -> {self.replacement}"


def refusal_error(refusals: list[Refusal]) -> UnsupportedOpError:
    """The one error naming every refused layer with its replacement."""
    listed = "; ".join(str(r) for r in refusals)
    n = len(refusals)
    first = refusals[0]
    return UnsupportedOpError(f"{n} layer(s) have no DNeuro block; replace them: {listed}",
                              node=first.node if n == 1 else None, op=first.op if n == 1 else None)


def scan_onnx(model: onnx.ModelProto) -> list[Refusal]:
    """Refusals that can be read off the ONNX op types alone (before import: some, such as
    MaxUnpool, irc cannot even import). AveragePool is decided later, on its shape."""
    out = []
    for i, n in enumerate(model.graph.node):
        if n.op_type in ONNX_SUPPORTED and n.domain in ("", "ai.onnx"):
            continue
        name = n.name or (n.output[0] if n.output else f"{n.op_type}_{i}")
        out.append(Refusal(name, n.op_type, ONNX_REPLACEMENTS.get(n.op_type, DEFAULT_REPLACEMENT)))
    return out
