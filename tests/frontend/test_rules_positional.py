"""ONNX rules of IsNaN, IsInf, Mod, GatherND, ScatterND, ScatterElements, CumSum, Trilu, OneHot,
TopK, NonZero, Einsum, GroupNormalization and RMSNormalization: imported models against
onnxruntime (interpreter and cpu target), export round trips, the Einsum lowering against
numpy.einsum, and the variants refused with the node named."""

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper
from onnx.shape_inference import infer_shapes

import irc
from irc.errors import IRCError, ModelError, UnsupportedOpError
from irc.frontend.onnx import export_onnx, import_onnx
from irc.ir import interpret
from tests.support.oracle import ort_run

RNG = np.random.default_rng(0)


def _f32(*shape):
    return RNG.standard_normal(shape).astype(np.float32)


def _model(nodes, inputs, consts=None, opset=17):
    """A graph of ``nodes`` (helper.make_node) over graph inputs ``inputs`` (name -> array) and
    initializers ``consts``; output types from ONNX's shape inference."""
    ins = [helper.make_tensor_value_info(k, helper.np_dtype_to_tensor_dtype(a.dtype), a.shape)
           for k, a in inputs.items()]
    inits = [numpy_helper.from_array(np.asarray(a), k) for k, a in (consts or {}).items()]
    outs = [nodes[-1].output[i] for i in range(len(nodes[-1].output))]
    probe = helper.make_model(helper.make_graph(nodes, "t", ins, [], initializer=inits),
                              opset_imports=[helper.make_opsetid("", opset)])
    inferred = {vi.name: vi for vi in infer_shapes(probe, strict_mode=True).graph.value_info}
    # (ONNX infers no types through some function ops: those outputs take the first input's type.)
    first = ins[0].type.tensor_type
    like = helper.make_tensor_value_info("", first.elem_type, [d.dim_value for d in first.shape.dim])
    g = helper.make_graph(nodes, "t", ins, [inferred.get(o) or helper.make_tensor_value_info(
        o, first.elem_type, [d.dim_value for d in like.type.tensor_type.shape.dim]) for o in outs], initializer=inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])


def _node(op, ins, n_out=1, **attrs):
    return helper.make_node(op, ins, ["y"] if n_out == 1 else [f"y{i}" for i in range(n_out)], **attrs)


def _check(model, feeds, targets=("interp", "cpu"), rtol=1e-5, atol=1e-6):
    """irc on each target equals onnxruntime, element types included."""
    want = ort_run(model, feeds)
    for t in targets:
        got = irc.compile(model, target=t)(*feeds.values())
        got = got if isinstance(got, tuple) else (got,)
        for a, e in zip(got, want):
            assert a.shape == e.shape and a.dtype == e.dtype, (t, a.shape, a.dtype, e.shape, e.dtype)
            np.testing.assert_allclose(a, e, rtol=rtol, atol=atol, equal_nan=True, err_msg=t)


def test_attention_softmax_guarded_by_isnan():
    """What torch exporters make of scaled_dot_product_attention: a fully masked row gives NaN,
    which Where(IsNaN(p), 0, p) turns into zeros."""
    x = _f32(2, 8)
    x[1] = -np.inf
    zero = np.array(0.0, np.float32)
    nodes = [helper.make_node("Softmax", ["x"], ["p"], axis=-1), helper.make_node("IsNaN", ["p"], ["nan"]),
             helper.make_node("Where", ["nan", "zero", "p"], ["y"])]
    model = _model(nodes, {"x": x}, {"zero": zero})
    _check(model, {"x": x})
    assert np.all(irc.compile(model)(x)[1] == 0)


def test_dynamo_gather_nd_of_a_bool_mask():
    """The dynamo exporter's GatherND(data=bool[1,64], indices=const int64[1,1,1,64,2])."""
    mask = RNG.random((1, 64)) > 0.5
    idx = np.stack([np.zeros(64, np.int64), RNG.permutation(64)], axis=-1).reshape(1, 1, 1, 64, 2)
    model = _model([_node("GatherND", ["m", "i"], batch_dims=0)], {"m": mask}, {"i": idx})
    _check(model, {"m": mask})


x34 = _f32(3, 4)
CASES = {
    "isnan": (_node("IsNaN", ["a"]), {"a": np.array([0, np.nan, np.inf, -1], np.float32)}, {}, 17),
    "isinf_negative": (_node("IsInf", ["a"], detect_positive=0), {"a": np.array([np.inf, -np.inf, 1], np.float32)},
                       {}, 17),
    "mod_int": (_node("Mod", ["a", "b"]), {"a": np.arange(-6, 6, dtype=np.int32), "b": np.array([4], np.int32)},
                {}, 17),
    "mod_fmod_float": (_node("Mod", ["a", "b"], fmod=1), {"a": x34 * 5, "b": np.array([1.5, -2, 3, -0.7], np.float32)},
                       {}, 17),
    "gather_nd_batch": (_node("GatherND", ["a", "i"], batch_dims=1), {"a": _f32(2, 3, 4)},
                        {"i": np.array([[[1], [0]], [[2], [-1]]], np.int64)}, 17),
    "scatter_nd_add": (_node("ScatterND", ["a", "i", "u"], reduction="add"), {"a": x34},
                       {"i": np.array([[1], [1], [0]], np.int64), "u": _f32(3, 4)}, 17),
    "scatter_elements": (_node("ScatterElements", ["a", "i", "u"], axis=1), {"a": x34},
                         {"i": np.array([[3, 0], [1, 2], [-1, 0]], np.int64), "u": _f32(3, 2)}, 17),
    "cumsum": (_node("CumSum", ["a", "axis"], exclusive=1, reverse=1), {"a": x34}, {"axis": np.array(1, np.int64)},
               17),
    "trilu": (_node("Trilu", ["a", "k"], upper=0), {"a": _f32(2, 4, 5)}, {"k": np.array(1, np.int64)}, 17),
    "one_hot": (_node("OneHot", ["i", "depth", "v"], axis=0), {"i": np.array([[0, 3], [-1, 7]], np.int64)},
                {"depth": np.array(4, np.int64), "v": np.array([0.5, 2], np.float32)}, 17),
    "topk_smallest": (_node("TopK", ["a", "k"], 2, axis=0, largest=0), {"a": _f32(5, 3)},
                      {"k": np.array([2], np.int64)}, 17),
    "einsum_attention": (_node("Einsum", ["q", "k"], equation="bhqd,bhkd->bhqk"), {"q": _f32(1, 2, 3, 4)},
                         {"k": _f32(1, 2, 5, 4)}, 17),
    "group_norm": (_node("GroupNormalization", ["a", "s", "b"], num_groups=2, epsilon=1e-3), {"a": _f32(2, 6, 3, 2)},
                   {"s": _f32(6), "b": _f32(6)}, 21),
    "rms_norm": (_node("RMSNormalization", ["a", "s"], axis=-2), {"a": _f32(2, 3, 4)}, {"s": _f32(3, 4)}, 23),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_imports_and_exports_like_onnxruntime(name):
    node, inputs, consts, opset = CASES[name]
    model = _model([node], inputs, consts, opset=opset)
    _check(model, inputs, targets=("interp",), rtol=1e-5, atol=1e-5)
    g = import_onnx(model)
    back = export_onnx(g)
    want = ort_run(model, inputs)
    for a, e in zip(ort_run(back, inputs), want):
        np.testing.assert_allclose(a, e, rtol=1e-5, atol=1e-5, equal_nan=True)


EQUATIONS = [
    ("bhqd,bhkd->bhqk", [(2, 3, 4, 5), (2, 3, 6, 5)]),
    ("bij,bjk->bik", [(3, 2, 4), (3, 4, 5)]),
    ("ij->ji", [(3, 4)]),
    ("ij->", [(3, 4)]),
    ("i,i", [(5,), (5,)]),
    ("ij,jk", [(2, 3), (3, 4)]),
    ("ba,ca->bc", [(2, 3), (4, 3)]),
    ("...ij,...jk->...ik", [(2, 1, 3, 4), (1, 5, 4, 2)]),
    ("abc,cd,de->abe", [(2, 3, 4), (4, 5), (5, 2)]),
    ("bn,anm,bm->ba", [(2, 3), (4, 3, 5), (2, 5)]),
    ("i,j->ij", [(3,), (4,)]),
    ("ij,ij->ij", [(3, 4), (3, 4)]),
    ("->", [()]),
]


@pytest.mark.parametrize("equation, shapes", EQUATIONS, ids=[e for e, _ in EQUATIONS])
def test_einsum_lowering_matches_numpy(equation, shapes):
    xs = [_f32(*s) for s in shapes]
    names = [f"x{i}" for i in range(len(xs))]
    model = _model([_node("Einsum", names, equation=equation)], dict(zip(names, xs)), opset=12)
    g = import_onnx(model)
    assert "einsum" not in {n.op for n in g.nodes}
    got = interpret(g, xs)[0]
    np.testing.assert_allclose(got, np.einsum(equation, *(x.astype(np.float64) for x in xs)), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("equation, shapes, error", [
    ("ii->i", [(3, 3)], UnsupportedOpError),
    ("ij,jk->ii", [(2, 3), (3, 2)], ModelError),
    ("ij,jk->ik", [(2, 3), (4, 2)], IRCError),
    ("ijk->i", [(2, 3)], IRCError),
])
def test_einsum_refusals_name_the_node(equation, shapes, error):
    xs = {f"x{i}": _f32(*s) for i, s in enumerate(shapes)}
    nodes = [helper.make_node("Einsum", list(xs), ["y"], name="mix", equation=equation)]
    g = helper.make_graph(nodes, "t", [helper.make_tensor_value_info(k, TensorProto.FLOAT, a.shape)
                                       for k, a in xs.items()],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n"])])
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 12)])
    with pytest.raises(error, match=r"node 'mix' \(Einsum\)"):
        import_onnx(model)


def test_nonzero_folds_a_constant_and_refuses_data():
    c = np.array([[1, 0, 2], [0, 3, 0]], np.float32)
    x = _f32(2, 3)
    model = _model([helper.make_node("NonZero", ["c"], ["nz"]), helper.make_node("Cast", ["nz"], ["y"], to=1)],
                   {"x": x}, {"c": c})
    g = import_onnx(model)
    np.testing.assert_array_equal(interpret(g, [x])[0], np.array(np.nonzero(c), np.float32))
    nodes = [helper.make_node("NonZero", ["x"], ["y"], name="nz")]
    g = helper.make_graph(nodes, "t", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])],
                          [helper.make_tensor_value_info("y", TensorProto.INT64, [2, "n"])])
    with pytest.raises(UnsupportedOpError, match=r"node 'nz' \(NonZero\).*known only at run time"):
        import_onnx(helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)]))


def test_topk_needs_a_constant_k():
    nodes = [helper.make_node("TopK", ["x", "k"], ["v", "i"], name="best")]
    g = helper.make_graph(nodes, "t", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 5]),
                                       helper.make_tensor_value_info("k", TensorProto.INT64, [1])],
                          [helper.make_tensor_value_info("v", TensorProto.FLOAT, [2, "k"])])
    with pytest.raises(UnsupportedOpError, match=r"node 'best' \(TopK\): input 'K' must be a constant"):
        import_onnx(helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)]))


def test_export_refuses_reductions_newer_than_its_opset():
    x = _f32(3, 4)
    model = _model([_node("ScatterND", ["a", "i", "u"], reduction="max")], {"a": x},
                   {"i": np.array([[1]], np.int64), "u": _f32(1, 4)}, opset=18)
    with pytest.raises(UnsupportedOpError, match="reduction 'max' needs ONNX opset 18"):
        export_onnx(import_onnx(model))
