"""Shape, index and reduce ops: ONNX models imported and interpreted against onnxruntime on
hypothesis-chosen shapes and attributes, export round trips, the folding of shape
computations at import, and irc's own definitions (out-of-range gather, canonical slices)."""

import numpy as np
import onnxruntime as ort
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper
from onnx.shape_inference import infer_shapes

from irc.errors import IRCError, ShapeError
from irc.frontend.onnx import export_onnx, import_onnx
from irc.ir import GraphBuilder, interpret
from irc.ir.ops import get_op
from irc.ir.types import DType, TensorType

SETTINGS = settings(max_examples=25, deadline=None)


def _model(op_type, x, consts=(), attrs=None, n_outputs=1, opset=17, extra_inputs=()):
    """One ONNX node over graph input ``x`` (plus ``extra_inputs``), constant inputs as initializers
    (None: omitted)."""
    ins = [helper.make_tensor_value_info(f"x{i}", helper.np_dtype_to_tensor_dtype(a.dtype), a.shape)
           for i, a in enumerate((x, *extra_inputs))]
    names = [f"x{i}" for i in range(1 + len(extra_inputs))]
    inits = []
    for k, c in enumerate(consts):
        if c is None:
            names.append("")
        else:
            names.append(f"c{k}")
            inits.append(numpy_helper.from_array(np.asarray(c), f"c{k}"))
    outs = [f"y{i}" for i in range(n_outputs)]
    node = helper.make_node(op_type, names, outs, **(attrs or {}))
    # Output types from ONNX's own shape inference (the checker wants them).
    probe = helper.make_model(helper.make_graph([node], "t", ins, [], initializer=inits),
                              opset_imports=[helper.make_opsetid("", opset)])
    inferred = {vi.name: vi for vi in infer_shapes(probe).graph.value_info}
    out_vi = [inferred[o] for o in outs]
    g = helper.make_graph([node], "t", ins, out_vi, initializer=inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])


def _check(model, *inputs, rtol=1e-5, atol=1e-6):
    """irc (import + interpreter) equals onnxruntime, outputs' types included."""
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    want = sess.run(None, {f"x{i}": a for i, a in enumerate(inputs)})
    g = import_onnx(model)
    got = interpret(g, list(inputs))
    assert len(got) == len(want)
    for a, e in zip(got, want):
        assert a.shape == e.shape and a.dtype == e.dtype, (a.shape, a.dtype, e.shape, e.dtype)
        np.testing.assert_allclose(a, e, rtol=rtol, atol=atol)
    return g


shapes = st.lists(st.integers(1, 4), min_size=1, max_size=4).map(tuple)


def _rand(shape, seed=0, dtype=np.float32):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


# ----------------------------------------------------------------------------------------
# Views and data movement


@SETTINGS
@given(shapes, st.data())
def test_reshape_with_zero_and_minus_one(shape, data):
    """A permutation of x's dims, one of them -1, and 0 (copy x's dim) where it already agrees."""
    x = _rand(shape)
    target = list(data.draw(st.permutations(shape)))
    target[data.draw(st.integers(0, len(target) - 1))] = -1
    if target[0] == shape[0] and data.draw(st.booleans()):
        target[0] = 0
    _check(_model("Reshape", x, [np.array(target, np.int64)]), x)


@SETTINGS
@given(shapes, st.integers(-4, 4))
def test_flatten(shape, axis):
    if not -len(shape) <= axis <= len(shape):
        return
    x = _rand(shape)
    _check(_model("Flatten", x, attrs={"axis": axis}), x)


@SETTINGS
@given(shapes, st.data())
def test_squeeze_unsqueeze(shape, data):
    x = _rand(shape)
    ones = [i for i, d in enumerate(shape) if d == 1]
    axes = data.draw(st.lists(st.sampled_from(ones), unique=True)) if ones else []
    _check(_model("Squeeze", x, [np.array(axes, np.int64)] if axes else []), x)
    rank = len(shape) + data.draw(st.integers(1, 2))
    new = data.draw(st.lists(st.integers(-rank, rank - 1), min_size=rank - len(shape), max_size=rank - len(shape),
                             unique_by=lambda a: a % rank))
    _check(_model("Unsqueeze", x, [np.array(new, np.int64)]), x)


@SETTINGS
@given(shapes, st.data())
def test_transpose(shape, data):
    x = _rand(shape)
    perm = data.draw(st.permutations(range(len(shape))))
    _check(_model("Transpose", x, attrs={"perm": list(perm)}), x)


@SETTINGS
@given(shapes, st.data(), st.integers(1, 3))
def test_concat(shape, data, n):
    axis = data.draw(st.integers(-len(shape), len(shape) - 1))
    parts = []
    for k in range(n):
        s = list(shape)
        s[axis] = data.draw(st.integers(0, 3))
        parts.append(_rand(s, k))
    m = _model("Concat", parts[0], attrs={"axis": axis}, extra_inputs=parts[1:])
    _check(m, *parts)


@SETTINGS
@given(shapes, st.data())
def test_split_with_sizes(shape, data):
    axis = data.draw(st.integers(0, len(shape) - 1))
    x = _rand(shape)
    cuts = sorted(data.draw(st.lists(st.integers(0, shape[axis]), min_size=1, max_size=3)))
    sizes = np.diff([0, *cuts, shape[axis]]).astype(np.int64)
    _check(_model("Split", x, [sizes], {"axis": axis}, n_outputs=len(sizes)), x)


def test_split_into_equal_parts_and_by_num_outputs():
    x = _rand((6, 7))
    _check(_model("Split", x, attrs={"axis": 0}, n_outputs=3), x)
    _check(_model("Split", x, attrs={"axis": 1, "num_outputs": 3}, n_outputs=3, opset=18), x)


@SETTINGS
@given(shapes, st.data())
def test_expand_both_directions(shape, data):
    x = _rand(shape)
    target = [data.draw(st.sampled_from([1, d])) if d != 1 else data.draw(st.integers(1, 3)) for d in shape]
    target = [data.draw(st.integers(1, 2)) for _ in range(data.draw(st.integers(0, 1)))] + target
    _check(_model("Expand", x, [np.array(target, np.int64)]), x)


@SETTINGS
@given(shapes, st.data())
def test_tile(shape, data):
    x = _rand(shape)
    reps = data.draw(st.lists(st.integers(0, 3), min_size=len(shape), max_size=len(shape)))
    _check(_model("Tile", x, [np.array(reps, np.int64)]), x)


@SETTINGS
@given(shapes, st.sampled_from(["constant", "reflect", "edge", "wrap"]), st.data())
def test_pad_modes(shape, mode, data):
    x = _rand(shape)
    r = len(shape)
    lo = -1 if mode == "constant" else 0
    hi = [max(d - 1, 0) for d in shape] if mode == "reflect" else [3] * r
    pads = [data.draw(st.integers(lo, hi[i % r])) for i in range(2 * r)]
    if any(d + pads[i] + pads[i + r] < 0 for i, d in enumerate(shape)):
        return
    value = np.array(data.draw(st.sampled_from([0.0, 1.5])), np.float32)
    _check(_model("Pad", x, [np.array(pads, np.int64), value], {"mode": mode}, opset=18), x)


def test_pad_with_axes_input():
    x = _rand((2, 3, 4))
    _check(_model("Pad", x, [np.array([1, 2, 0, 1], np.int64), np.float32(0), np.array([0, 2], np.int64)],
                  opset=18), x)


@pytest.mark.parametrize("op,attrs", [("SpaceToDepth", {}), ("DepthToSpace", {"mode": "DCR"}),
                                      ("DepthToSpace", {"mode": "CRD"})])
def test_space_depth(op, attrs):
    x = _rand((2, 8, 4, 6))
    _check(_model(op, x, attrs={"blocksize": 2, **attrs}), x)


# ----------------------------------------------------------------------------------------
# Indexing


@SETTINGS
@given(shapes, st.data())
def test_slice(shape, data):
    x = _rand(shape)
    axes = data.draw(st.lists(st.integers(-len(shape), len(shape) - 1), min_size=1, max_size=len(shape),
                              unique_by=lambda a: a % len(shape)))
    big = 2**62
    starts = [data.draw(st.sampled_from([-big, -3, -1, 0, 1, 2, big])) for _ in axes]
    ends = [data.draw(st.sampled_from([-big, -3, -1, 0, 1, 3, big])) for _ in axes]
    steps = [data.draw(st.sampled_from([-2, -1, 1, 2, 3])) for _ in axes]
    consts = [np.array(v, np.int64) for v in (starts, ends, axes, steps)]
    g = _check(_model("Slice", x, consts), x)
    # The resolved attributes are a fixed point: resolving them again changes nothing.
    n = g.nodes[0]
    assert get_op("slice").type_check([n.inputs[0].type], n.attrs)[0] == n.attrs


@SETTINGS
@given(shapes, st.data(), st.sampled_from([np.int32, np.int64]))
def test_gather(shape, data, idx_dtype):
    x = _rand(shape)
    axis = data.draw(st.integers(-len(shape), len(shape) - 1))
    n = shape[axis]
    idx_shape = data.draw(st.lists(st.integers(0, 3), max_size=2))
    idx = np.random.default_rng(1).integers(-n, n, idx_shape).astype(idx_dtype)
    _check(_model("Gather", x, attrs={"axis": axis}, extra_inputs=[idx]), x, idx)


@SETTINGS
@given(shapes, st.data())
def test_gather_elements(shape, data):
    x = _rand(shape)
    axis = data.draw(st.integers(0, len(shape) - 1))
    ishape = [data.draw(st.integers(1, d)) if k != axis else data.draw(st.integers(1, 4)) for k, d in enumerate(shape)]
    idx = np.random.default_rng(2).integers(-shape[axis], shape[axis], ishape).astype(np.int64)
    _check(_model("GatherElements", x, attrs={"axis": axis}, extra_inputs=[idx]), x, idx)


def test_out_of_range_indices_give_zero():
    x = np.arange(1, 7, dtype=np.float32).reshape(2, 3)
    b = GraphBuilder("g")
    xv, iv = b.input("x", TensorType((2, 3), DType.f32)), b.input("i", TensorType((3,), DType.i64))
    g = b.build(b.op("gather", xv, iv, axis=1), b.op("gather_elements", xv, b.op("reshape", iv, shape=(1, 3)), axis=0))
    taken, along = interpret(g, [x, np.array([2, 3, -4], np.int64)])
    np.testing.assert_array_equal(taken, [[3, 0, 0], [6, 0, 0]])
    np.testing.assert_array_equal(along, [[0, 0, 0]])


@SETTINGS
@given(shapes, st.data(), st.sampled_from(["ArgMax", "ArgMin"]))
def test_arg_reductions(shape, data, op):
    x = np.random.default_rng(3).integers(0, 3, shape).astype(np.float32)  # ties on purpose
    attrs = {"axis": data.draw(st.integers(-len(shape), len(shape) - 1)), "keepdims": data.draw(st.integers(0, 1)),
             "select_last_index": data.draw(st.integers(0, 1))}
    _check(_model(op, x, attrs=attrs), x)


# ----------------------------------------------------------------------------------------
# Reductions

REDUCE = ["ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1", "ReduceL2",
          "ReduceSumSquare", "ReduceLogSum", "ReduceLogSumExp"]


@SETTINGS
@given(shapes, st.sampled_from(REDUCE), st.data())
def test_reductions(shape, op, data):
    x = np.abs(_rand(shape)) + 0.5 if op == "ReduceLogSum" else _rand(shape)
    axes = data.draw(st.lists(st.integers(-len(shape), len(shape) - 1), max_size=len(shape),
                              unique_by=lambda a: a % len(shape)))
    keep = data.draw(st.integers(0, 1))
    consts = [np.array(axes, np.int64)] if axes else []
    _check(_model(op, x, consts, {"keepdims": keep}, opset=18), x, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("dtype", [np.int32, np.int64])
def test_integer_sum_and_mean(dtype):
    x = np.array([[-7, 2, 1], [5, 5, 6]], dtype)
    for op in ("ReduceSum", "ReduceMean", "ReduceMax", "ReduceProd"):
        _check(_model(op, x, [np.array([1], np.int64)], {"keepdims": 0}, opset=18), x)


def test_noop_with_empty_axes_is_identity():
    x = _rand((2, 3))
    g = _check(_model("ReduceSum", x, [], {"noop_with_empty_axes": 1}, opset=18), x)
    assert [n.op for n in g.nodes] == ["identity"]


# ----------------------------------------------------------------------------------------
# Folding, export, errors


def test_shape_computation_folds_to_one_reshape():
    """Shape -> Gather -> Unsqueeze -> Concat -> Reshape, as torch.flatten exports it."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 4])
    nodes = [
        helper.make_node("Shape", ["x"], ["s"]),
        helper.make_node("Gather", ["s", "zero"], ["n"], axis=0),
        helper.make_node("Unsqueeze", ["n", "ax0"], ["n1"]),
        helper.make_node("Concat", ["n1", "minus1"], ["target"], axis=0),
        helper.make_node("Reshape", ["x", "target"], ["y"]),
    ]
    inits = [numpy_helper.from_array(np.array(0, np.int64), "zero"), numpy_helper.from_array(np.array([0], np.int64), "ax0"),
             numpy_helper.from_array(np.array([-1], np.int64), "minus1")]
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 12])
    m = helper.make_model(helper.make_graph(nodes, "t", [x], [y], initializer=inits),
                          opset_imports=[helper.make_opsetid("", 17)])
    g = import_onnx(m, shapes={"x": (5, 3, 4)})
    assert [(n.op, n.attrs["shape"]) for n in g.nodes] == [("reshape", (5, 12))]


def _roundtrip(g, *inputs):
    sess = ort.InferenceSession(export_onnx(g).SerializeToString(), providers=["CPUExecutionProvider"])
    want = interpret(g, list(inputs))
    got = sess.run(None, {v.name: a for v, a in zip(g.inputs, inputs)})
    for a, e in zip(got, want):
        assert a.dtype == e.dtype
        np.testing.assert_allclose(a, e, rtol=1e-5, atol=1e-6)


def test_export_round_trip_through_onnxruntime():
    b = GraphBuilder("g")
    x = b.input("x", TensorType((2, 3, 4), DType.f32))
    i = b.input("i", TensorType((2,), DType.i64))
    outs = [
        b.op("reshape", x, shape=(6, 4)), b.op("transpose", x, perm=(2, 0, 1)), b.op("concat", x, x, axis=1),
        b.op("expand", b.op("slice", x, starts=(0, 2), ends=(1, -100), axes=(0, 1), steps=(1, -1)), shape=(3, 1, 3, 4)),
        b.op("tile", x, repeats=(1, 2, 1)), b.op("pad", x, pads=(0, 1, -1, 0, 0, 2), mode="edge"),
        b.op("pad", x, pads=(0, 1, 0, 0, 0, 2), value=2.5), b.op("gather", x, i, axis=2),
        b.op("argmax", x, axis=1, keepdims=0), b.op("argmin", x, axis=2, select_last_index=1),
        *[b.op(op, x, axes=(0, 2), keepdims=k % 2) for k, op in enumerate(
            ["reduce_sum", "reduce_mean", "reduce_max", "reduce_min", "reduce_prod", "reduce_l1", "reduce_l2",
             "reduce_sum_square", "reduce_log_sum_exp"])],
        *b.add_node("split", [x], {"axis": 2, "sizes": (1, 3)}),
    ]
    g = b.build(*outs)
    x_val = np.abs(_rand((2, 3, 4))) + 0.1
    _roundtrip(g, x_val, np.array([3, -1], np.int64))


@pytest.mark.parametrize("op,types,attrs,match", [
    ("reshape", [(2, 3)], {"shape": (4, 2)}, "cannot reshape"),
    ("reshape", [(2, 3)], {"shape": (-1, -1)}, "more than one -1"),
    ("transpose", [(2, 3)], {"perm": (0, 0)}, "not a permutation"),
    ("concat", [(2, 3), (2, 4)], {"axis": 0}, "cannot concatenate"),
    ("split", [(2, 3)], {"axis": 1, "sizes": (1, 1)}, "do not add up"),
    ("expand", [(2, 3)], {"shape": (4, 3)}, "does not broadcast"),
    ("pad", [(2, 3)], {"pads": (0, 5, 0, 0), "mode": "reflect"}, "reflect padding"),
    ("slice", [(2, 3)], {"starts": (0,), "ends": (1,), "steps": (0,)}, "contain 0"),
    ("reduce_mean", [(2, 0)], {"axes": (1,)}, "empty axis"),
    ("argmax", [(2, 3)], {"axis": 2}, "out of range"),
])
def test_shape_errors(op, types, attrs, match):
    with pytest.raises(ShapeError, match=match):
        get_op(op).type_check([TensorType(s, DType.f32) for s in types], attrs)


def test_non_constant_shape_input_is_refused_with_the_node():
    x, s = _rand((2, 3)), np.array([3, 2], np.int64)
    with pytest.raises(IRCError, match=r"node 'y0' \(Reshape\).*constant known at import"):
        import_onnx(_model("Reshape", x, extra_inputs=[s]))
