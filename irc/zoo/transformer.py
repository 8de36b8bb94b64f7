"""Transformers as PyTorch exports write them: a BERT-style encoder and a GPT-style decoder.

Both take token ids (int64, ``[batch, seq]``) and look them up in an embedding table (Gather),
add learned position embeddings, and run ``layers`` blocks of multi-head self-attention and a
GELU MLP, each around a residual and a LayerNormalization (post-norm for BERT, pre-norm for
GPT, as the two families do). Attention is written the way the torch exporters lower
``scaled_dot_product_attention`` at opset 17: MatMul(Q, K^T), Mul by 1/sqrt(head size), Add of a
mask, Softmax over the last axis, MatMul with V, with heads split and merged by Reshape and
Transpose. GELU is the exact (erf) form, 0.5 x (1 + erf(x / sqrt 2)), which opset 17 spells out.

The decoder's mask is causal (-1e9 above the diagonal, a constant [seq, seq] added before the
softmax); the encoder attends everywhere. The decoder ends in the language-model head (logits
over the vocabulary), the encoder in its last hidden states. Linear weights are normal with
standard deviation 1/sqrt(fan_in) and the token and position tables with variance 1/2 each, so
that without training every activation stays of order one (tests/test_zoo.py checks it);
LayerNorm gains are 1 and biases 0.
"""

from __future__ import annotations

import math

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from irc.zoo.builder import OPSET


class _Writer:
    """Nodes and initializers of one transformer, named after PyTorch's modules."""

    def __init__(self, name: str, seed: int):
        self.name = name
        self.rng = np.random.default_rng(seed)
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self._n = 0
        self._consts: set[str] = set()

    def init(self, name: str, data) -> str:
        self.inits.append(numpy_helper.from_array(np.asarray(data), name))
        return name

    def weight(self, name: str, shape, std: float) -> str:
        return self.init(name, (self.rng.standard_normal(shape) * std).astype(np.float32))

    def op(self, op: str, *inputs: str, **attrs) -> str:
        self._n += 1
        out = f"/{op.lower()}_{self._n}"
        self.nodes.append(helper.make_node(op, list(inputs), [out], name=out, **attrs))
        return out

    def linear(self, x: str, fin: int, fout: int, name: str) -> str:
        y = self.op("MatMul", x, self.weight(f"{name}.weight", (fin, fout), 1 / math.sqrt(fin)))
        return self.op("Add", y, self.init(f"{name}.bias", np.zeros(fout, np.float32)))

    def layer_norm(self, x: str, hidden: int, name: str) -> str:
        return self.op("LayerNormalization", x, self.init(f"{name}.weight", np.ones(hidden, np.float32)),
                       self.init(f"{name}.bias", np.zeros(hidden, np.float32)), axis=-1, epsilon=1e-5)

    def const(self, name: str, value: float) -> str:
        """A float scalar shared by every node that uses it."""
        if name not in self._consts:
            self._consts.add(name)
            self.init(name, np.float32(value))
        return name

    def gelu(self, x: str) -> str:
        inner = self.op("Erf", self.op("Div", x, self.const("gelu.sqrt2", math.sqrt(2))))
        one = self.op("Add", inner, self.const("gelu.one", 1.0))
        return self.op("Mul", self.op("Mul", x, one), self.const("gelu.half", 0.5))

    def shape(self, *dims: int) -> str:
        return self.init(f"/shape_{self._n}_{len(self.inits)}", np.array(dims, np.int64))


def _attention(w: _Writer, x: str, seq: int, hidden: int, heads: int, mask: str | None, name: str) -> str:
    d = hidden // heads

    def split(t: str) -> str:  # [b, s, h*d] -> [b, h, s, d]
        return w.op("Transpose", w.op("Reshape", t, w.shape(0, seq, heads, d)), perm=[0, 2, 1, 3])

    q = split(w.linear(x, hidden, hidden, f"{name}.query"))
    k = split(w.linear(x, hidden, hidden, f"{name}.key"))
    v = split(w.linear(x, hidden, hidden, f"{name}.value"))
    scores = w.op("MatMul", q, w.op("Transpose", k, perm=[0, 1, 3, 2]))
    scores = w.op("Mul", scores, w.init(f"{name}.scale", np.float32(1 / math.sqrt(d))))
    if mask is not None:
        scores = w.op("Add", scores, mask)
    ctx = w.op("MatMul", w.op("Softmax", scores, axis=-1), v)
    ctx = w.op("Reshape", w.op("Transpose", ctx, perm=[0, 2, 1, 3]), w.shape(0, seq, hidden))
    return w.linear(ctx, hidden, hidden, f"{name}.output")


def _mlp(w: _Writer, x: str, hidden: int, name: str) -> str:
    return w.linear(w.gelu(w.linear(x, hidden, 4 * hidden, f"{name}.fc1")), 4 * hidden, hidden, f"{name}.fc2")


def _embed(w: _Writer, ids: str, vocab: int, seq: int, hidden: int) -> str:
    tok = w.op("Gather", w.weight("embeddings.word.weight", (vocab, hidden), math.sqrt(0.5)), ids, axis=0)
    return w.op("Add", tok, w.weight("embeddings.position.weight", (seq, hidden), math.sqrt(0.5)))


def _model(w: _Writer, out: str, out_dims: list, batch, seq: int, vocab: int, doc: str) -> onnx.ModelProto:
    b = "N" if batch is None else int(batch)
    for n in w.nodes:
        n.output[:] = ["output" if o == out else o for o in n.output]
    graph = helper.make_graph(w.nodes, w.name, [helper.make_tensor_value_info("input", TensorProto.INT64, [b, seq])],
                              [helper.make_tensor_value_info("output", TensorProto.FLOAT, [b, seq, *out_dims])],
                              initializer=w.inits)
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="irc.zoo",
                          doc_string=doc)
    m.ir_version = 8
    helper.set_model_props(m, {"irc.vocab": str(vocab)})
    onnx.checker.check_model(m, full_check=True)
    return m


def bert_encoder(batch: int | None = None, *, seq: int = 16, hidden: int = 64, heads: int = 4, layers: int = 2,
                 vocab: int = 1000, seed: int = 0) -> onnx.ModelProto:
    """A BERT-style encoder (post-norm blocks, no mask). ``seq=128, hidden=768, heads=12,
    layers=12, vocab=30522`` is BERT-base's shape; the defaults make a small one."""
    w = _Writer("bert_encoder", seed)
    x = w.layer_norm(_embed(w, "input", vocab, seq, hidden), hidden, "embeddings.norm")
    for i in range(layers):
        name = f"encoder.layer.{i}"
        x = w.layer_norm(w.op("Add", x, _attention(w, x, seq, hidden, heads, None, f"{name}.attention")),
                         hidden, f"{name}.attention.norm")
        x = w.layer_norm(w.op("Add", x, _mlp(w, x, hidden, f"{name}.mlp")), hidden, f"{name}.mlp.norm")
    return _model(w, x, [hidden], batch, seq, vocab, f"BERT-style encoder: {layers} layers, hidden {hidden}")


def gpt_decoder(batch: int | None = None, *, seq: int = 16, hidden: int = 64, heads: int = 4, layers: int = 2,
                vocab: int = 1000, seed: int = 0) -> onnx.ModelProto:
    """A GPT-style decoder (pre-norm blocks, causal mask, tied-free LM head to ``vocab`` logits).
    ``seq=1024, hidden=768, heads=12, layers=12, vocab=50257`` is GPT-2 small's shape."""
    w = _Writer("gpt_decoder", seed)
    causal = np.triu(np.full((seq, seq), -1e9, np.float32), k=1)
    mask = w.init("attention.causal_mask", causal)
    x = _embed(w, "input", vocab, seq, hidden)
    for i in range(layers):
        name = f"h.{i}"
        x = w.op("Add", x, _attention(w, w.layer_norm(x, hidden, f"{name}.ln_1"), seq, hidden, heads, mask,
                                      f"{name}.attn"))
        x = w.op("Add", x, _mlp(w, w.layer_norm(x, hidden, f"{name}.ln_2"), hidden, f"{name}.mlp"))
    x = w.layer_norm(x, hidden, "ln_f")
    logits = w.op("MatMul", x, w.weight("lm_head.weight", (hidden, vocab), 1 / math.sqrt(hidden)))
    return _model(w, logits, [vocab], batch, seq, vocab, f"GPT-style decoder: {layers} layers, hidden {hidden}")
