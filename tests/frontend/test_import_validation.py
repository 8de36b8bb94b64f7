"""The validation step of the import: what onnx's checker lets through (bad payloads, names that
are not UTF-8, external data outside the model's folder, absurd sizes, unknown opsets, wrong
declared outputs, Python lists as inputs) refused with an IRCError naming the tensor or node."""

import os

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import irc
from irc.errors import InputError, ModelError
from irc.frontend.onnx import import_onnx, load_model
from irc.frontend.onnx.validate import DEFAULT_MAX_TENSOR_BYTES, LIMIT_ENV, max_tensor_bytes


def _vi(name, shape, t=TensorProto.FLOAT):
    return helper.make_tensor_value_info(name, t, shape)


def _model(nodes, inputs, outputs, inits=(), opset=17):
    g = helper.make_graph(nodes, "m", inputs, outputs, initializer=list(inits))
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])


def _add_w(w: onnx.TensorProto, n=4) -> onnx.ModelProto:
    return _model([helper.make_node("Add", ["x", "w"], ["y"], name="add")], [_vi("x", [n])], [_vi("y", [n])], [w])


def _w(n=4):
    return numpy_helper.from_array(np.arange(n, dtype=np.float32), "w")


# -- initializer payloads ------------------------------------------------------------------------

def _long(t):
    t.raw_data += bytes(4)


def _ragged(t):
    t.raw_data += b"\0"


def _retyped(t):
    t.data_type = TensorProto.INT8  # 16 bytes of raw data, 4 int8 values need 4


def _stray_field(t):
    t.ClearField("raw_data")
    t.data_type = TensorProto.DOUBLE
    t.float_data.extend([1, 2, 3, 4])  # doubles belong in double_data


def _typed_long(t):
    t.ClearField("raw_data")
    t.float_data.extend([1, 2, 3, 4, 5])


@pytest.mark.parametrize("spoil, msg", [
    (_long, "20 bytes of raw_data; its dims \\[4\\] and type FLOAT need 16"),
    (_ragged, "17 bytes of raw_data"),
    (_retyped, "16 bytes of raw_data; its dims \\[4\\] and type INT8 need 4"),
    (_stray_field, "holds float_data; its values belong in double_data"),
    (_typed_long, "5 values in float_data; its dims \\[4\\] need 4"),
])
def test_initializer_payload_must_match_its_dims(spoil, msg):
    w = _w()
    spoil(w)
    with pytest.raises(ModelError, match=msg) as e:
        import_onnx(_add_w(w))
    assert str(e.value).startswith("initializer 'w' ")


def test_constant_node_payload_is_checked_too():
    t = _w()
    t.raw_data += bytes(8)
    m = _model([helper.make_node("Constant", [], ["c"], name="k", value=t), helper.make_node("Add", ["x", "c"], ["y"])],
               [_vi("x", [4])], [_vi("y", [4])])
    with pytest.raises(ModelError, match="attribute 'value' of node 'k' \\(Constant\\) has 24 bytes"):
        import_onnx(m)


# -- text ------------------------------------------------------------------------------------

def test_name_that_is_not_utf8_is_named_by_its_place():
    m = _model([helper.make_node("Relu", ["x"], ["y"], name="rr")], [_vi("x", [4])], [_vi("y", [4])])
    data = m.SerializeToString().replace(b"rr", b"\xffr")
    with pytest.raises(ModelError, match="node\\[0\\].name is not valid UTF-8"):
        irc.compile(data, "interp")


# -- external data -------------------------------------------------------------------------------

def _external(folder, location, data=None, **info):
    w = _w()
    raw = w.raw_data
    w.ClearField("raw_data")
    w.data_location = TensorProto.EXTERNAL
    for k, v in {"location": location, **{k: str(v) for k, v in info.items()}}.items():
        e = w.external_data.add()
        e.key, e.value = k, v
    if data is not None:
        (folder / location).write_bytes(data(raw) if callable(data) else raw)
    path = folder / "m.onnx"
    path.write_bytes(_add_w(w).SerializeToString())
    return path


def test_external_data_next_to_the_model_is_read(tmp_path, monkeypatch):
    path = _external(tmp_path, "w.bin", lambda raw: b"head" + raw, offset=4, length=16)
    monkeypatch.chdir("/")
    x = np.ones(4, np.float32)
    np.testing.assert_array_equal(irc.compile(path, "interp")(x), x + np.arange(4, dtype=np.float32))


@pytest.mark.parametrize("location, data, info, msg", [
    ("missing.bin", None, {}, "'missing.bin' does not exist next to the model"),
    ("", None, {}, "names no file"),
    (".", None, {}, "must be a file name relative to the model's folder"),
    ("/etc/hostname", None, {}, "must be a file name relative"),
    ("../w.bin", None, {}, "must be a file name relative"),
    ("w\0.bin", None, {}, "must be a file name relative"),
    ("w.bin", True, {"offset": 40}, "offset 40 and length None lie outside 'w.bin' \\(16 bytes\\)"),
    ("w.bin", True, {"length": 8}, "has 8 bytes of raw_data"),
])
def test_bad_external_data_is_a_model_error_naming_the_file(tmp_path, location, data, info, msg):
    path = _external(tmp_path, location, data, **info)
    with pytest.raises(ModelError, match=msg) as e:
        load_model(path)
    assert str(e.value).startswith(f"{path}: ")


def test_external_data_is_never_looked_up_in_the_working_directory(tmp_path, monkeypatch):
    path = _external(tmp_path, "w.bin", True)
    model = onnx.ModelProto()
    model.ParseFromString(path.read_bytes())
    monkeypatch.chdir(tmp_path)  # w.bin is right here, and must still not be used
    for src in (path.read_bytes(), model):
        with pytest.raises(ModelError, match="tensor 'w' keeps its data in an external file \\('w.bin'\\)"):
            load_model(src)


def test_external_link_out_of_the_folder_is_refused(tmp_path):
    outside = tmp_path / "outside.bin"
    outside.write_bytes(bytes(16))
    folder = tmp_path / "model"
    folder.mkdir()
    os.symlink(outside, folder / "w.bin")
    with pytest.raises(ModelError, match="resolves outside the model's folder"):
        load_model(_external(folder, "w.bin"))


# -- sizes ---------------------------------------------------------------------------------------

def _relu(shape):
    return _model([helper.make_node("Relu", ["x"], ["y"], name="r")], [_vi("x", shape)], [_vi("y", shape)])


@pytest.mark.parametrize("dim", [2**40, 2**62])
def test_absurd_static_batch_is_a_model_error(dim):
    with pytest.raises(ModelError, match=f"input 'x' has dimension {dim}"):
        irc.compile(_relu([dim, 3]), "interp")


def test_absurd_bound_batch_is_an_input_error():
    with pytest.raises(InputError, match="tensor 'x' \\(with input shapes x=4611686018427387904x3\\)"):
        import_onnx(_relu(["N", 3]), {"x": (2**62, 3)})


def test_huge_initializer_dims_are_refused_before_reading_data():
    w = onnx.TensorProto(name="w", data_type=TensorProto.FLOAT, dims=[2**31, 2**31])
    with pytest.raises(ModelError, match="initializer 'w' of shape \\[2147483648,2147483648\\] needs 1.678e\\+07 TiB"):
        import_onnx(_add_w(w))


def test_huge_pads_make_an_inferred_tensor_too_large():
    w = numpy_helper.from_array(np.ones((1, 1, 1, 1), np.float32), "w")
    conv = helper.make_node("Conv", ["x", "w"], ["y"], name="conv", pads=[2**20] * 4)
    m = _model([conv], [_vi("x", [1, 1, 4, 4])], [_vi("y", [1, 1, "H", "W"])], [w])
    with pytest.raises(ModelError, match="'y' of shape \\[1,1,2097156,2097156\\] needs 16 TiB"):
        import_onnx(m)


def test_run_time_batch_too_large_is_an_input_error_naming_the_tensor(monkeypatch):
    monkeypatch.setenv(LIMIT_ENV, "1M")
    w = numpy_helper.from_array(np.ones((4, 8), np.float32), "w")
    m = _model([helper.make_node("MatMul", ["x", "w"], ["h"], name="mm"), helper.make_node("Relu", ["h"], ["y"])],
               [_vi("x", ["N", 4])], [_vi("y", ["N", 8])], [w])
    model = irc.compile(m, "interp")
    assert model(np.ones((2, 4), np.float32)).shape == (2, 8)
    msg = "tensor 'h' \\(with input shapes x=40000x4\\) of shape \\[40000,8\\] needs 1.221 MiB"
    with pytest.raises(InputError, match=msg):
        model(np.ones((40000, 4), np.float32))


@pytest.mark.parametrize("text, value", [("", DEFAULT_MAX_TENSOR_BYTES), ("4096", 4096), ("2K", 2048),
                                         ("32G", 32 << 30), ("1GiB", 1 << 30)])
def test_size_limit_from_the_environment(monkeypatch, text, value):
    monkeypatch.setenv(LIMIT_ENV, text)
    assert max_tensor_bytes() == value


@pytest.mark.parametrize("text", ["lots", "-5", "0"])
def test_bad_size_limit_is_an_input_error(monkeypatch, text):
    monkeypatch.setenv(LIMIT_ENV, text)
    with pytest.raises(InputError, match=LIMIT_ENV):
        import_onnx(_relu([2, 3]))


# -- nodes, opsets, outputs ------------------------------------------------------------------------

def test_clip_bounds_must_be_scalars():
    lo = numpy_helper.from_array(np.zeros(2, np.float32), "lo")
    m = _model([helper.make_node("Clip", ["x", "lo"], ["y"], name="clip")], [_vi("x", [2])], [_vi("y", [2])], [lo])
    with pytest.raises(ModelError, match="node 'clip' \\(Clip\\): input 'lo' \\(min\\) must be a scalar, not f32\\[2\\]"):
        import_onnx(m)
    lo1 = numpy_helper.from_array(np.zeros(1, np.float32), "lo")  # one value in a vector: accepted
    m = _model([helper.make_node("Clip", ["x", "lo"], ["y"])], [_vi("x", [2])], [_vi("y", [2])], [lo1])
    np.testing.assert_array_equal(irc.compile(m, "interp")(np.array([-1, 2], np.float32)), [0, 2])


def test_opset_newer_than_onnx_knows_is_refused():
    newest = onnx.defs.onnx_opset_version()
    with pytest.raises(ModelError, match=f"imports ONNX opset 99; the installed onnx defines opsets 1 to {newest}"):
        import_onnx(_model([helper.make_node("Relu", ["x"], ["y"])], [_vi("x", [2])], [_vi("y", [2])], opset=99))
    assert import_onnx(_model([helper.make_node("Relu", ["x"], ["y"])], [_vi("x", [2])], [_vi("y", [2])],
                              opset=newest)).outputs[0].shape == (2,)


@pytest.mark.parametrize("elem, shown", [(TensorProto.INT64, "i64"), (TensorProto.STRING, "STRING"),
                                         (TensorProto.COMPLEX64, "COMPLEX64"), (99, "#99")])
def test_declared_output_dtype_must_agree(elem, shown):
    m = _model([helper.make_node("Relu", ["x"], ["y"])], [_vi("x", [2])], [_vi("y", [2], elem)])
    with pytest.raises(ModelError, match=f"output 'y' is declared {shown} but computes to f32\\[2\\]"):
        import_onnx(m)


def test_static_dims_of_a_partly_dynamic_output_are_checked():
    m = _model([helper.make_node("Relu", ["x"], ["y"])], [_vi("x", ["N", 4])], [_vi("y", ["N", 5])])
    with pytest.raises(ModelError, match="output 'y' is declared f32\\[\\?,5\\] but computes to f32\\[3,4\\]"):
        import_onnx(m, {"x": (3, 4)})
    m = _model([helper.make_node("Relu", ["x"], ["y"])], [_vi("x", ["N", 4])], [_vi("y", ["M", 4])])
    assert import_onnx(m, {"x": (3, 4)}).outputs[0].shape == (3, 4)


def test_missing_tensor_names_the_node_and_the_tensor():
    m = _model([helper.make_node("Relu", ["x"], ["a"]), helper.make_node("Add", ["a", "ghost"], ["y"])],
               [_vi("x", [2])], [_vi("y", [2])])
    with pytest.raises(ModelError, match="node '#1' \\(Add\\): input 'ghost' is not a graph input, an initializer "
                                         "or the output of any node"):
        import_onnx(m)


def test_out_of_order_input_names_its_producer():
    nodes = [helper.make_node("Relu", ["a"], ["y"], name="second"), helper.make_node("Relu", ["x"], ["a"], name="first")]
    m = _model(nodes, [_vi("x", [2])], [_vi("y", [2])])
    with pytest.raises(ModelError, match="node 'second' \\(Relu\\): input 'a' is computed by node 'first' \\(Relu\\), "
                                         "which does not come before it"):
        import_onnx(m)


def test_load_errors_name_the_users_file(tmp_path):
    path = tmp_path / "bad.onnx"
    path.write_bytes(_model([helper.make_node("Relu", ["q"], ["y"])], [_vi("x", [2])], [_vi("y", [2])]).SerializeToString())
    with pytest.raises(ModelError) as e:
        irc.compile(path, "interp")
    assert str(e.value).startswith(f"{path}: node '#0' (Relu): input 'q'")


# -- Python lists as run-time inputs -------------------------------------------------------------

def _relu_compiled(elem=TensorProto.FLOAT):
    return irc.compile(_model([helper.make_node("Relu", ["x"], ["y"])], [_vi("x", [2, 3], elem)],
                              [_vi("y", [2, 3], elem)]), "interp")


def test_list_of_floats_takes_the_declared_dtype():
    rows = [[1.5, -2.0, 3.25], [0.1, -0.1, 7.0]]
    out = _relu_compiled()(rows)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, np.maximum(np.array(rows, np.float32), 0))
    ints = _relu_compiled(TensorProto.INT64)([[1, -2, 3], [4, 5, -6]])
    np.testing.assert_array_equal(ints, [[1, 0, 3], [4, 5, 0]])


def test_list_that_does_not_fit_the_dtype_is_refused():
    with pytest.raises(InputError, match="input 'x' holds values outside the range of float16"):
        _relu_compiled(TensorProto.FLOAT16)([[1e6, 0, 0], [0, 0, 0]])
    with pytest.raises(InputError, match="integers that int32 cannot hold exactly"):
        _relu_compiled(TensorProto.INT32)([[2**40, 0, 0], [0, 0, 0]])
    with pytest.raises(InputError, match="dtype float64; expected i64"):
        _relu_compiled(TensorProto.INT64)([[1.5, 0, 0], [0, 0, 0]])


def test_ragged_list_is_an_input_error():
    with pytest.raises(InputError, match="input 'x' is a ragged nested list"):
        _relu_compiled()([[1.0, 2.0, 3.0], [1.0, 2.0]])


def test_string_attribute_that_is_not_utf8():
    """Found by the 10,000-mutant fuzz run: a Pad whose mode attribute holds invalid UTF-8."""
    node = helper.make_node("Pad", ["x", "pads"], ["y"], mode="constant")
    node.attribute[0].s = b"\xffconstant"
    pads = numpy_helper.from_array(np.array([1, 1], np.int64), "pads")
    m = _model([node], [_vi("x", [4])], [_vi("y", [6])], [pads])
    with pytest.raises(ModelError, match="attribute 'mode' is not UTF-8 text"):
        irc.compile(m, target="interp")


def test_split_of_a_scalar_is_a_shape_error():
    """Found by the fuzz run: Split on a rank-0 tensor (after an op_type mutation)."""
    from irc.errors import ShapeError
    from irc.ir import GraphBuilder

    b = GraphBuilder("g")
    x = b.input("x", ())
    with pytest.raises(ShapeError, match="split cuts a tensor along an axis; got a scalar"):
        b.add_node("split", [x], {"axis": 0, "sizes": (1,)})
