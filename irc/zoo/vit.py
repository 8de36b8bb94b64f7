"""Vision Transformer: a patch-embedding conv, a class token and learned position embeddings,
pre-norm encoder blocks of multi-head self-attention and a GELU MLP, and a classifier on the
final LayerNorm of the class token, as torchvision lays ViT out and torch exports it.

The encoder blocks are the ones the GPT-style decoder uses (irc/zoo/transformer.py), without a
mask. The class token is broadcast to the batch as the exporter writes ``expand(n, -1, -1)``:
Shape -> Gather -> Unsqueeze -> Concat -> Expand, which an importer must fold for a fixed batch.
The patch conv's weights have standard deviation 1/sqrt(fan_in), and the class token and
position table variance 1/2 each, so the tokens start of order one.
"""

from __future__ import annotations

import math

import numpy as np
import onnx
from onnx import TensorProto, helper

from irc.errors import InputError
from irc.zoo.builder import OPSET
from irc.zoo.transformer import _attention, _mlp, _Writer


def vit_b16(batch: int | None = None, *, image: int = 224, patch: int = 16, hidden: int = 768, heads: int = 12,
            layers: int = 12, classes: int = 1000, seed: int = 0) -> onnx.ModelProto:
    """ViT (dropout omitted: inference). The defaults give ViT-B/16 (86,567,656 trainable
    parameters); a smaller image, hidden size and depth make it cheap."""
    if image % patch:
        raise InputError(f"vit_b16: image size {image} must be a multiple of the patch size {patch}")
    w = _Writer("vit_b16", seed)
    tokens = (image // patch) ** 2
    seq = tokens + 1
    x = w.op("Conv", "input", w.weight("conv_proj.weight", (hidden, 3, patch, patch), 1 / math.sqrt(3 * patch * patch)),
             w.weight("conv_proj.bias", hidden, 0.05), kernel_shape=[patch, patch], strides=[patch, patch])
    x = w.op("Transpose", w.op("Reshape", x, w.shape(0, hidden, tokens)), perm=[0, 2, 1])
    n = w.op("Unsqueeze", w.op("Gather", w.op("Shape", x), w.init("/batch_index", np.array(0, np.int64)), axis=0),
             w.init("/unsqueeze_axes", np.array([0], np.int64)))
    cls = w.op("Expand", w.weight("class_token", (1, 1, hidden), math.sqrt(0.5)),
               w.op("Concat", n, w.init("/expand_rest", np.array([1, 1], np.int64)), axis=0))
    x = w.op("Add", w.op("Concat", cls, x, axis=1),
             w.weight("encoder.pos_embedding", (1, seq, hidden), math.sqrt(0.5)))
    for i in range(layers):
        name = f"encoder.layers.encoder_layer_{i}"
        y = _attention(w, _layer_norm(w, x, hidden, f"{name}.ln_1"), seq, hidden, heads, None, f"{name}.self_attention")
        x = w.op("Add", x, y)
        x = w.op("Add", x, _mlp(w, _layer_norm(w, x, hidden, f"{name}.ln_2"), hidden, f"{name}.mlp"))
    x = _layer_norm(w, x, hidden, "encoder.ln")
    x = w.op("Gather", x, w.init("/class_index", np.array(0, np.int64)), axis=1)
    out = w.op("Gemm", x, w.weight("heads.head.weight", (classes, hidden), 1 / math.sqrt(hidden)),
               w.weight("heads.head.bias", classes, 0.05), transB=1)
    return _model(w, out, batch, image, classes, f"ViT: patch {patch}, {layers} layers, hidden {hidden}")


def _layer_norm(w: _Writer, x: str, hidden: int, name: str) -> str:
    """LayerNorm over the hidden axis with ViT's epsilon (1e-6), gains 1 and biases 0."""
    return w.op("LayerNormalization", x, w.init(f"{name}.weight", np.ones(hidden, np.float32)),
                w.init(f"{name}.bias", np.zeros(hidden, np.float32)), axis=-1, epsilon=1e-6)


def _model(w: _Writer, out: str, batch: int | None, image: int, classes: int, doc: str) -> onnx.ModelProto:
    b = "N" if batch is None else int(batch)
    for node in w.nodes:
        node.output[:] = ["output" if o == out else o for o in node.output]
    graph = helper.make_graph(w.nodes, w.name,
                              [helper.make_tensor_value_info("input", TensorProto.FLOAT, [b, 3, image, image])],
                              [helper.make_tensor_value_info("output", TensorProto.FLOAT, [b, classes])],
                              initializer=w.inits)
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="irc.zoo",
                          doc_string=doc)
    m.ir_version = 8
    onnx.checker.check_model(m, full_check=True)
    return m
