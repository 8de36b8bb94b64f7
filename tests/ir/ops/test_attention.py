"""The attention op: its reference against onnxruntime running the unfused ONNX chain, the shape
rule's errors, and its cost."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

from irc.errors import IRCError, ShapeError
from irc.ir import GraphBuilder
from irc.ir.cost import node_cost
from irc.ir.ops import get_op
from irc.ir.types import DType, TensorType
from tests.support.oracle import ort_run

REF = get_op("attention").reference


def _chain(q, k, v, mask, scale):
    """The ONNX MatMul -> Mul -> Add -> Softmax -> MatMul chain the op stands for."""
    inits = [numpy_helper.from_array(np.array(scale, np.float32), "scale")]
    nodes = [helper.make_node("Transpose", ["k"], ["kt"], perm=[*range(k.ndim - 2), k.ndim - 1, k.ndim - 2]),
             helper.make_node("MatMul", ["q", "kt"], ["s"]), helper.make_node("Mul", ["s", "scale"], ["z"])]
    ins = {"q": q, "k": k, "v": v}
    if mask is not None:
        nodes.append(helper.make_node("Add", ["z", "mask"], ["zm"]))
        ins["mask"] = mask
    nodes += [helper.make_node("Softmax", ["zm" if mask is not None else "z"], ["p"], axis=-1),
              helper.make_node("MatMul", ["p", "v"], ["y"])]
    io = [helper.make_tensor_value_info(n, TensorProto.FLOAT, a.shape) for n, a in ins.items()]
    out = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    g = helper.make_graph(nodes, "att", io, [out], initializer=inits)
    return ort_run(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), ins)[0]


@settings(max_examples=40, deadline=None)
@given(batch=st.sampled_from([(), (2,), (1, 3), (2, 2)]), sq=st.integers(1, 9), sk=st.integers(1, 9),
       d=st.integers(1, 8), dv=st.integers(1, 8), mask=st.sampled_from([None, "full", "row", "key"]),
       seed=st.integers(0, 999))
def test_reference_matches_onnxruntime_on_the_chain(batch, sq, sk, d, dv, mask, seed):
    rng = np.random.default_rng(seed)
    q, k = (rng.standard_normal((*batch, n, d)).astype(np.float32) for n in (sq, sk))
    v = rng.standard_normal((*batch, sk, dv)).astype(np.float32)
    m = None
    if mask == "full":
        m = rng.standard_normal((sq, sk)).astype(np.float32) * 3
    elif mask == "key":  # BERT's [b, 1, 1, s] padding mask
        m = np.where(rng.random((*batch[:1], *([1] * max(0, len(batch) - 1)), 1, sk)) < 0.3, -1e9, 0).astype(np.float32)
    elif mask == "row":
        m = rng.standard_normal((sq, 1)).astype(np.float32)
    scale = 1 / math.sqrt(d)
    got = REF(q, k, v, m, scale=scale)
    np.testing.assert_allclose(got, _chain(q, k, v, m, scale), rtol=1e-5, atol=1e-6)
    assert got.dtype == np.float32 and got.shape == (*batch, sq, dv)


def test_reference_rows_masked_out_are_nan_and_others_ignore_masked_keys():
    rng = np.random.default_rng(0)
    q, k, v = (rng.standard_normal((3, 4)) for _ in range(3))
    mask = np.zeros((3, 3))
    mask[0] = -np.inf
    mask[1, 1:] = -np.inf
    y = REF(q, k, v, mask, scale=0.5)
    assert np.isnan(y[0]).all()
    np.testing.assert_allclose(y[1], v[0], rtol=1e-12)
    np.testing.assert_allclose(y[2], REF(q[2:], k, v, scale=0.5)[0], rtol=1e-12)


def _types(*shapes, dt=DType.f32):
    return [TensorType(s, dt) for s in shapes]


@pytest.mark.parametrize("shapes, match", [
    (((2, 4, 8), (2, 5, 7), (2, 5, 8)), "last dimension 8"),
    (((2, 4, 8), (2, 5, 8), (2, 6, 8)), "as many rows as k"),
    (((4, 8), (5, 8), (5, 3), (4, 6)), "must broadcast to the scores"),
    (((8,), (5, 8), (5, 3)), "rank >= 2"),
    (((3, 4, 8), (2, 5, 8), (2, 5, 8)), "do not broadcast"),
    (((4, 8), (0, 8), (0, 3)), "no rows"),
])
def test_shape_errors(shapes, match):
    with pytest.raises(ShapeError, match=match):
        get_op("attention").type_check(_types(*shapes), {"scale": 1.0})


def test_integer_inputs_and_mixed_types_are_refused():
    with pytest.raises(ShapeError, match="float"):
        get_op("attention").type_check(_types((4, 8), (5, 8), (5, 3), dt=DType.i32), {})
    with pytest.raises(ShapeError, match="one element type"):
        get_op("attention").type_check(_types((4, 8), (5, 8)) + _types((5, 3), dt=DType.f64), {})


def test_errors_name_the_node():
    b = GraphBuilder("g")
    q, k, v = b.input("q", (4, 8)), b.input("k", (5, 8)), b.input("v", (6, 3))
    with pytest.raises(IRCError, match=r"attention.*as many rows"):
        b.op("attention", q, k, v, scale=1.0)


def test_cost_counts_both_products():
    b = GraphBuilder("g")
    q, k, v = b.input("q", (2, 3, 16, 8)), b.input("k", (2, 3, 32, 8)), b.input("v", (2, 3, 32, 4))
    g = b.build(b.op("attention", q, k, v, scale=0.5))
    c = node_cost(g.nodes[0])
    scores = 2 * 3 * 16 * 32
    assert c.macs == scores * (8 + 4)
    assert c.flops == 2 * c.macs + 5 * scores + 2 * 3 * 16 * 4
