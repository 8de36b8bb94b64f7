"""If and Loop: imported and run on the interpreter against onnxruntime (constant and run-time
conditions, outer-scope captures, nesting, constant and run-time trip counts, conditions from the
iteration number, scan outputs, data-dependent loops); the cpu target against the interpreter on
the ones it inlines, and its refusal of the others; export back to ONNX and the IR text form."""

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

import irc
from irc.errors import UnsupportedOpError
from irc.frontend.onnx import import_onnx
from irc.frontend.onnx.exporter import export_onnx
from irc.ir.interp import interpret
from irc.ir.parser import parse_graph
from irc.ir.printer import all_params, print_graph
from irc.ir.verify import verify
from irc.passes.fold_constants import fold_constants
from irc.passes.inline_control import inline_control
from tests.support.oracle import ort_run

F, B, I64 = TensorProto.FLOAT, TensorProto.BOOL, TensorProto.INT64
RNG = np.random.default_rng(7)
X = RNG.standard_normal((2, 3)).astype(np.float32)
W = RNG.standard_normal((2, 3)).astype(np.float32)


def _vi(name, elem, shape):
    return helper.make_tensor_value_info(name, elem, shape)


def _model(nodes, inputs, outputs, inits=()):
    g = helper.make_graph(nodes, "control", inputs, outputs, initializer=list(inits))
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    return m


def _branch(name, nodes, out, shape=(2, 3), elem=F):
    return helper.make_graph(nodes, name, [], [_vi(out, elem, list(shape))])


def _if_model(cond_const=None, nested=False):
    """y = If(c): then relu(x) + w (x a run-time capture, w an outer initializer), else -x;
    ``nested``: the then branch is itself an If on a second condition d."""
    then_nodes = [helper.make_node("Relu", ["x"], ["r"]), helper.make_node("Add", ["r", "w"], ["t"])]
    if nested:
        inner_then = _branch("inner_then", [helper.make_node("Mul", ["x", "w"], ["it"])], "it")
        inner_else = _branch("inner_else", [helper.make_node("Sub", ["t", "x"], ["ie"])], "ie")
        then_nodes.append(helper.make_node("If", ["d"], ["tt"], then_branch=inner_then, else_branch=inner_else))
    then = _branch("then", then_nodes, "tt" if nested else "t")
    other = _branch("else", [helper.make_node("Neg", ["x"], ["e"])], "e")
    inputs = [_vi("x", F, [2, 3])]
    inits = [numpy_helper.from_array(W, "w")]
    if cond_const is None:
        inputs.append(_vi("c", B, []))
    else:
        inits.append(numpy_helper.from_array(np.array(cond_const), "c"))
    if nested:
        inputs.append(_vi("d", B, []))
    node = helper.make_node("If", ["c"], ["y"], name="choose", then_branch=then, else_branch=other)
    return _model([node], inputs, [_vi("y", F, [2, 3])], inits)


def _loop_model(*, m=None, cond_from_iter=False, data_cond=False, scan=True):
    """A Loop over carried y (starting at x): y = y * 0.5 + w, scan output y + i; its trip count
    an initializer (``m``) or the graph input ``M``; ``cond_from_iter``: it stops once i >= 2;
    ``data_cond``: it stops once sum(y) exceeds 10 (y doubles)."""
    body_nodes = [helper.make_node("Cast", ["i"], ["fi"], to=F)]
    if data_cond:
        body_nodes += [helper.make_node("Add", ["y_in", "y_in"], ["y_out"]),
                       helper.make_node("ReduceSum", ["y_out"], ["s"], keepdims=0),
                       helper.make_node("Less", ["s", "ten"], ["c_out"])]
    else:
        body_nodes += [helper.make_node("Mul", ["y_in", "half"], ["h"]), helper.make_node("Add", ["h", "w"], ["y_out"])]
        if cond_from_iter:
            body_nodes.append(helper.make_node("Less", ["i", "two"], ["c_out"]))
        else:
            body_nodes.append(helper.make_node("Identity", ["c_in"], ["c_out"]))
    outs = [_vi("c_out", B, []), _vi("y_out", F, [2, 3])]
    if scan:
        body_nodes.append(helper.make_node("Add", ["y_out", "fi"], ["sc"]))
        outs.append(_vi("sc", F, [2, 3]))
    body = helper.make_graph(body_nodes, "body", [_vi("i", I64, []), _vi("c_in", B, []), _vi("y_in", F, [2, 3])], outs)
    consts = {"w": W, "half": np.float32(0.5), "two": np.int64(2), "ten": np.float32(10.0), "c0": np.array(True)}
    inits = [numpy_helper.from_array(np.asarray(a), k) for k, a in consts.items()]
    inputs = [_vi("x", F, [2, 3])]
    if m is None:
        inputs.append(_vi("M", I64, []))
    else:
        inits.append(numpy_helper.from_array(np.array(m, np.int64), "M"))
    node = helper.make_node("Loop", ["M", "c0", "x"], ["y"] + (["ys"] if scan else []), name="repeat", body=body)
    out = [_vi("y", F, [2, 3])] + ([_vi("ys", F, ["n", 2, 3])] if scan else [])
    return _model([node], inputs, out, inits)


def _check(model, feeds, *, cpu=True):
    """interp (and cpu) outputs against onnxruntime; cpu against interp at rtol 1e-6."""
    want = ort_run(model, feeds)
    got = irc.compile(model, target="interp").run(feeds)
    assert len(got) == len(want)
    for a, e in zip(got, want):
        assert a.shape == e.shape
        np.testing.assert_allclose(a, e, rtol=1e-5, atol=1e-6)
    if cpu:
        for a, e in zip(irc.compile(model, target="cpu").run(feeds), got):
            np.testing.assert_allclose(a, e, rtol=1e-6, atol=0)
    return got


def _ops(g):
    return g.op_histogram()


@pytest.mark.parametrize("cond", [True, False])
def test_if_constant_condition_imports_its_branch(cond):
    model = _if_model(cond_const=cond)
    g = import_onnx(model)
    assert "if" not in _ops(g)
    _check(model, {"x": X}, cpu=False)


@pytest.mark.parametrize("cond", [True, False])
def test_if_runtime_condition_with_outer_capture(cond):
    model = _if_model()
    g = import_onnx(model)
    (node,) = [n for n in g.nodes if n.op == "if"]
    assert [v.name for v in node.inputs] == ["c", "x"]  # x captured; w copied into the branch
    assert len(node.attrs["then_branch"].params) == 1
    _check(model, {"x": X, "c": np.array(cond)}, cpu=False)


def test_if_runtime_condition_on_cpu_computes_both_branches():
    model = _if_model()
    inlined = inline_control(import_onnx(model))
    assert "if" not in _ops(inlined) and _ops(inlined)["where"] == 1
    for cond in (True, False):
        _check(model, {"x": X, "c": np.array(cond)})


@pytest.mark.parametrize("c, d", [(True, True), (True, False), (False, True)])
def test_nested_if(c, d):
    model = _if_model(nested=True)
    _check(model, {"x": X, "c": np.array(c), "d": np.array(d)}, cpu=False)


def test_loop_constant_trip_count_with_scan_output():
    model = _loop_model(m=4)
    g = import_onnx(model)
    (node,) = [n for n in g.nodes if n.op == "loop"]
    assert node.attrs["trips"] == 4 and node.outputs[1].shape == (4, 2, 3)
    _check(model, {"x": X}, cpu=False)


@pytest.mark.parametrize("m", [1 << 31, 1 << 62])
def test_a_huge_trip_count_with_scan_outputs_is_refused_at_once(m):
    """An always-true condition that ignores the iteration number holds to M: the import knows
    the scan length without walking 2**62 iterations (a fuzzed trip count once hung it)."""
    import time

    t0 = time.perf_counter()
    with pytest.raises(UnsupportedOpError, match="known at import"):
        import_onnx(_loop_model(m=m))
    assert time.perf_counter() - t0 < 5
    g = import_onnx(_loop_model(m=1000))  # a long but bounded one is counted, not walked
    assert [n for n in g.nodes if n.op == "loop"][0].attrs["trips"] == 1000


def test_loop_unrolled_on_cpu():
    for model in (_loop_model(m=4), _loop_model(m=10, cond_from_iter=True)):
        assert "loop" not in _ops(inline_control(import_onnx(model)))
        _check(model, {"x": X})


def test_loop_runtime_trip_count_is_specialised():
    model = _loop_model()
    compiled = irc.compile(model, target="interp")
    for m in (3, 5, 0):
        feeds = {"x": X, "M": np.array(m, np.int64)}
        got = compiled.run(feeds)
        want = ort_run(model, feeds)
        assert got[1].shape == (m, 2, 3)
        for a, e in zip(got, want):
            np.testing.assert_allclose(a, e, rtol=1e-5, atol=1e-6)


def test_loop_condition_from_iteration_number():
    model = _loop_model(m=10, cond_from_iter=True)
    got = _check(model, {"x": X}, cpu=False)
    assert got[1].shape == (3, 2, 3)  # i = 0, 1, 2 run; i < 2 is false after the third


def test_data_dependent_loop_runs_on_interp_and_is_refused_on_cpu():
    model = _loop_model(m=100, data_cond=True, scan=False)
    feeds = {"x": np.abs(X) + 0.1}
    _check(model, feeds, cpu=False)
    with pytest.raises(UnsupportedOpError, match=r"node 'repeat' \(loop\): .*stops on a condition computed from its "
                                                  r"data.*interp target runs any loop"):
        irc.compile(model, target="cpu").run(feeds)


def test_loop_with_runtime_trip_count_and_no_scan_runs_on_interp_and_is_refused_on_cpu():
    model = _loop_model(scan=False)
    feeds = {"x": X, "M": np.array(3, np.int64)}
    _check(model, feeds, cpu=False)
    with pytest.raises(UnsupportedOpError, match=r"node 'repeat' \(loop\): .*trip count or initial condition is known "
                                                  r"only at run time"):
        irc.compile(model, target="cpu").run(feeds)


def test_data_dependent_loop_with_scan_outputs_is_refused_at_import():
    with pytest.raises(UnsupportedOpError, match=r"node 'repeat' \(Loop\): .*condition depends on the loop's data"):
        import_onnx(_loop_model(m=100, data_cond=True))


def test_carried_value_changing_shape_is_unrolled_at_import():
    """A carried value that grows each iteration cannot have one static type: with a known trip
    count the Loop is imported iteration by iteration."""
    body = helper.make_graph(
        [helper.make_node("Identity", ["c_in"], ["c_out"]), helper.make_node("Concat", ["y_in", "x"], ["y_out"], axis=0)],
        "grow", [_vi("i", I64, []), _vi("c_in", B, []), _vi("y_in", F, ["k", 3])],
        [_vi("c_out", B, []), _vi("y_out", F, ["k", 3])])
    inits = [numpy_helper.from_array(np.array(3, np.int64), "M"), numpy_helper.from_array(np.array(True), "c0")]
    model = _model([helper.make_node("Loop", ["M", "c0", "x"], ["y"], body=body)], [_vi("x", F, [2, 3])],
                   [_vi("y", F, [8, 3])], inits)
    assert "loop" not in _ops(import_onnx(model))
    _check(model, {"x": X}, cpu=False)


def test_branches_of_different_shapes_specialise_on_the_condition():
    then = _branch("then", [helper.make_node("Concat", ["x", "x"], ["t"], axis=0)], "t", shape=(4, 3))
    other = _branch("else", [helper.make_node("Neg", ["x"], ["e"])], "e")
    model = _model([helper.make_node("If", ["c"], ["y"], then_branch=then, else_branch=other)],
                   [_vi("x", F, [2, 3]), _vi("c", B, [])], [_vi("y", F, ["n", 3])])
    compiled = irc.compile(model, target="interp")
    for cond in (True, False):
        feeds = {"x": X, "c": np.array(cond)}
        np.testing.assert_array_equal(compiled.run(feeds)[0], ort_run(model, feeds)[0])


def test_fold_constants_inlines_an_if_whose_condition_folds():
    g = import_onnx(_if_model())
    (node,) = [n for n in g.nodes if n.op == "if"]
    cond = g.inputs[1]
    pinned = g.replace(inputs=[g.inputs[0]], params={**g.params, cond: np.array(False)})
    folded = fold_constants(verify(pinned))
    assert "if" not in _ops(folded)
    np.testing.assert_array_equal(interpret(folded, [X])[0], -X)


@pytest.mark.parametrize("make", [_if_model, lambda: _loop_model(m=100, data_cond=True, scan=False),
                                  lambda: _loop_model(m=4)], ids=["if", "loop_data", "loop_scan"])
def test_export_round_trip(make):
    model = make()
    g = import_onnx(model)
    assert {"if", "loop"} & set(_ops(g))
    feeds = {"x": np.abs(X) + 0.1}
    if "c" in [v.name for v in g.inputs]:
        feeds["c"] = np.array(False)
    want = interpret(g, feeds)
    exported = export_onnx(g)
    for a, e in zip(ort_run(exported, feeds), want):
        np.testing.assert_allclose(a, e, rtol=1e-6)
    again = import_onnx(exported)
    for a, e in zip(interpret(again, feeds), want):
        np.testing.assert_array_equal(a, e)


def test_text_form_round_trip():
    """Text and numbers: the body's own constant (ten) comes back through all_params' path key,
    so the parsed graph stops the loop where the original does."""
    g = import_onnx(_loop_model(m=100, data_cond=True, scan=False))
    text = print_graph(g)
    assert "body=graph" in text
    params = all_params(g)
    assert "y.body/ten" in params
    again = parse_graph(text, params)
    assert print_graph(again) == text
    feeds = {"x": np.abs(X) + 0.1}
    for a, e in zip(interpret(again, feeds), interpret(g, feeds)):
        np.testing.assert_array_equal(a, e)
    zeros = parse_graph(text, {v.name: a for v, a in g.params.items()})
    assert not np.array_equal(interpret(zeros, feeds)[0], interpret(g, feeds)[0])


def test_nested_loop():
    """A Loop whose body holds a Loop reading an outer value: the interpreter runs both, the cpu
    target unrolls both (the inner one once it is spliced into the outer's iterations)."""
    inner = helper.make_graph(
        [helper.make_node("Identity", ["ci"], ["co"]), helper.make_node("Add", ["z", "x"], ["z2"]),
         helper.make_node("Mul", ["z2", "half"], ["z3"])], "inner",
        [_vi("j", I64, []), _vi("ci", B, []), _vi("z", F, [2, 3])], [_vi("co", B, []), _vi("z3", F, [2, 3])])
    outer = helper.make_graph(
        [helper.make_node("Identity", ["c"], ["c2"]), helper.make_node("Loop", ["two", "c0", "y"], ["y2"], body=inner),
         helper.make_node("Cast", ["i"], ["fi"], to=F), helper.make_node("Add", ["y2", "fi"], ["s"])], "outer",
        [_vi("i", I64, []), _vi("c", B, []), _vi("y", F, [2, 3])],
        [_vi("c2", B, []), _vi("y2", F, [2, 3]), _vi("s", F, [2, 3])])
    consts = {"M": np.int64(3), "two": np.int64(2), "c0": np.array(True), "half": np.float32(0.5)}
    model = _model([helper.make_node("Loop", ["M", "c0", "x"], ["y", "ys"], body=outer)], [_vi("x", F, [2, 3])],
                   [_vi("y", F, [2, 3]), _vi("ys", F, [3, 2, 3])],
                   [numpy_helper.from_array(np.asarray(a), k) for k, a in consts.items()])
    assert _ops(import_onnx(model)) == {"loop": 1}
    _check(model, {"x": X})


def test_malformed_control_flow_is_a_model_error_naming_the_node():
    from irc.errors import ModelError

    other = _branch("else", [helper.make_node("Neg", ["x"], ["e"])], "e")
    bad_cond = _model([helper.make_node("If", ["c"], ["y"], name="choose", then_branch=other, else_branch=other)],
                      [_vi("x", F, [2, 3])], [_vi("y", F, [2, 3])], [numpy_helper.from_array(np.float32(1), "c")])
    with pytest.raises(ModelError, match=r"node 'choose' \(If\): cond must be one bool"):
        import_onnx(bad_cond)
    body = helper.make_graph([helper.make_node("Identity", ["c_in"], ["c_out"])], "body",
                             [_vi("i", I64, []), _vi("c_in", B, []), _vi("y_in", F, [2, 3])], [_vi("c_out", B, [])])
    short = _model([helper.make_node("Loop", ["", "", "x"], ["y"], name="repeat", body=body)], [_vi("x", F, [2, 3])],
                   [_vi("y", F, [2, 3])])
    with pytest.raises(ModelError, match=r"node 'repeat' \(Loop\): the body gives 1 output\(s\)"):
        import_onnx(short)
