"""RNN, GRU and LSTM unrolled at import: against onnxruntime on the interpreter and the cpu target
(directions, batch-first layout, biases, initial states, peepholes, clip, linear_before_reset),
and the variants refused with the node named."""

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

import irc
from irc.errors import UnsupportedOpError
from irc.frontend.onnx import import_onnx
from tests.support.marks import params
from tests.support.oracle import ort_run

SEQ, BATCH, WIDTH, HIDDEN = 4, 2, 3, 5


def _model(kind, attrs, *, gates, n_dirs, layout=0, bias=True, init=True, peep=False, lens=None):
    """One ``kind`` node and an input for it; X is the graph input, everything else an
    initializer. The weights depend on the arguments but not on ``layout``."""
    rng = np.random.default_rng(1)
    x_shape = (BATCH, SEQ, WIDTH) if layout else (SEQ, BATCH, WIDTH)
    consts = {"W": rng.standard_normal((n_dirs, gates * HIDDEN, WIDTH)), "R": rng.standard_normal(
        (n_dirs, gates * HIDDEN, HIDDEN)) * 0.5}
    consts["B"] = rng.standard_normal((n_dirs, 2 * gates * HIDDEN)) * 0.3 if bias else None
    consts["sequence_lens"] = lens
    state = (BATCH, n_dirs, HIDDEN) if layout else (n_dirs, BATCH, HIDDEN)
    consts["initial_h"] = rng.standard_normal(state) * 0.5 if init else None
    if kind == "LSTM":
        consts["initial_c"] = rng.standard_normal(state) * 0.5 if init else None
        consts["P"] = rng.standard_normal((n_dirs, 3 * HIDDEN)) * 0.3 if peep else None
    names = ["X"] + [k if v is not None else "" for k, v in consts.items()]
    while names[-1] == "":
        names.pop()
    inits = [numpy_helper.from_array(np.asarray(v, np.int32 if k == "sequence_lens" else np.float32), k)
             for k, v in consts.items() if v is not None]
    outs = ["Y", "Y_h"] + (["Y_c"] if kind == "LSTM" else [])
    node = helper.make_node(kind, names, outs, name="cell", hidden_size=HIDDEN, layout=layout, **attrs)
    y_shape = (BATCH, SEQ, n_dirs, HIDDEN) if layout else (SEQ, n_dirs, BATCH, HIDDEN)
    out_vis = [helper.make_tensor_value_info("Y", TensorProto.FLOAT, y_shape)] + [
        helper.make_tensor_value_info(o, TensorProto.FLOAT, state) for o in outs[1:]]
    g = helper.make_graph([node], "t", [helper.make_tensor_value_info("X", TensorProto.FLOAT, x_shape)], out_vis,
                          initializer=inits)
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 14)])
    return model, rng.standard_normal(x_shape).astype(np.float32)


CASES = {
    "rnn_bidirectional_relu": ("RNN", 1, {"direction": "bidirectional", "activations": ["Relu", "Tanh"]}, {}),
    "rnn_reverse_batch_first": ("RNN", 1, {"direction": "reverse"}, {"layout": 1, "init": False}),
    "gru_linear_before_reset": ("GRU", 3, {"linear_before_reset": 1}, {}),
    "gru_bidirectional_clip": ("GRU", 3, {"direction": "bidirectional", "clip": 0.8}, {"bias": False}),
    "lstm_peepholes": ("LSTM", 4, {}, {"peep": True, "lens": np.full(BATCH, SEQ)}),
    "lstm_bidirectional_batch_first": ("LSTM", 4, {"direction": "bidirectional"}, {"layout": 1, "init": False}),
    "lstm_hard_sigmoid": ("LSTM", 4, {"activations": ["HardSigmoid", "Tanh", "Softsign"],
                                      "activation_alpha": [0.3], "activation_beta": [0.4]}, {"init": False}),
}


@pytest.mark.parametrize("name", params(sorted(CASES), fast={"lstm_peepholes"}))
def test_matches_onnxruntime(name):
    kind, gates, attrs, kw = CASES[name]
    n_dirs = 2 if attrs.get("direction") == "bidirectional" else 1
    model, x = _model(kind, attrs, gates=gates, n_dirs=n_dirs, **kw)
    if kw.get("layout"):
        # onnxruntime has no batch-first recurrences: the oracle is the sequence-first twin.
        twin, _ = _model(kind, attrs, gates=gates, n_dirs=n_dirs, **{**kw, "layout": 0})
        want = ort_run(twin, {"X": x.transpose(1, 0, 2)})
        want = [want[0].transpose(2, 0, 1, 3)] + [w.transpose(1, 0, 2) for w in want[1:]]
    else:
        want = ort_run(model, {"X": x})
    for target in ("interp", "cpu"):
        got = irc.compile(model, target=target)(x)
        for a, e in zip(got, want):
            assert a.shape == e.shape
            np.testing.assert_allclose(a, e, rtol=1e-4, atol=1e-5, err_msg=target)


@pytest.mark.parametrize("kind, gates, attrs, kw, message", [
    ("LSTM", 4, {}, {"lens": np.array([SEQ, SEQ - 1])}, "padded sequences are not supported"),
    ("LSTM", 4, {"input_forget": 1}, {}, "input_forget"),
    ("GRU", 3, {"activations": ["Affine", "Tanh"]}, {}, "activation 'Affine' is not supported"),
])
def test_refusals_name_the_node(kind, gates, attrs, kw, message):
    model, _ = _model(kind, attrs, gates=gates, n_dirs=1, **kw)
    with pytest.raises(UnsupportedOpError, match=rf"node 'cell' \({kind}\): .*{message}"):
        import_onnx(model)
