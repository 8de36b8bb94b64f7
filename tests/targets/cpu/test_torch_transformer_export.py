"""A BERT-style encoder exported by PyTorch itself (nn.TransformerEncoder, batch-first, GELU,
post-norm, TorchScript exporter at opset 17) compiles for the cpu target with its attention fused
and its residual adds in the GEMM epilogues, and equals onnxruntime (rtol 1e-4: both compute in
f32, in different orders). BERT-base's own shape is benchmarked, not tested (a 120 MB export)."""

import io

import numpy as np
import onnx
import pytest

import irc

torch = pytest.importorskip("torch", reason="PyTorch is not installed (dev extra)")
ort = pytest.importorskip("onnxruntime", reason="onnxruntime is not installed (dev extra)")


def _export(hidden=64, heads=4, layers=2, seq=16, vocab=100) -> onnx.ModelProto:
    nn = torch.nn
    torch.manual_seed(0)

    class Encoder(nn.Module):
        def __init__(self):
            super().__init__()
            self.tok = nn.Embedding(vocab, hidden)
            self.pos = nn.Parameter(torch.randn(seq, hidden) * 0.1)
            self.norm = nn.LayerNorm(hidden)
            layer = nn.TransformerEncoderLayer(hidden, heads, 4 * hidden, dropout=0.0, activation="gelu",
                                               batch_first=True)
            self.enc = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)

        def forward(self, ids):
            return self.enc(self.norm(self.tok(ids) + self.pos))

    fastpath = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)  # the exported graph, not the fused inference kernel
    try:
        buf = io.BytesIO()
        torch.onnx.export(Encoder().eval(), (torch.zeros(1, seq, dtype=torch.int64),), buf, input_names=["input"],
                          output_names=["output"], opset_version=17, dynamo=False)
    finally:
        torch.backends.mha.set_fastpath_enabled(fastpath)
    return onnx.load_from_string(buf.getvalue())


@pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning")
@pytest.mark.parametrize("threads", [1, pytest.param(2, marks=pytest.mark.slow)])
def test_pytorch_exported_encoder_fuses_and_matches_onnxruntime(threads):
    model = _export()
    ids = np.random.default_rng(0).integers(0, 100, (1, 16)).astype(np.int64)
    m = irc.compile(model, "cpu", threads=threads)
    ops = [n.op for n in m.graph.nodes]
    assert ops.count("attention") == 2 and "softmax" not in ops
    assert ops.count("add") <= 1  # the embedding sum; every residual rides a GEMM epilogue
    want = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"input": ids})[0]
    np.testing.assert_allclose(m(ids), want, rtol=1e-4, atol=1e-5)
