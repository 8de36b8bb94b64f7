"""The models mutants start from: the shipped LeNet-5 file, small builds of the zoo's networks
(transformers among them), one small graph of shape-computation ops (Shape, Gather, Concat,
Reshape, Clip, Pad ...) whose constant inputs the import folds, and one of control flow (an If on
a run-time condition, a Loop with a scan output) whose subgraphs the mutations reach too."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

SHIPPED = Path(__file__).resolve().parents[2] / "examples" / "models" / "lenet5.onnx"


def _zoo(name: str, **kw) -> Callable[[], bytes]:
    def build() -> bytes:
        from irc import zoo

        return zoo.build(name, **kw).SerializeToString()

    return build


def _shape_ops() -> bytes:
    """x[N,3,4,4] -> Pad -> Clip -> Reshape(to [N,-1] via Shape/Gather/Concat) -> MatMul -> Softmax."""
    f = TensorProto.FLOAT
    inits = [
        numpy_helper.from_array(np.array([0, 0, 1, 1, 0, 0, 1, 1], np.int64), "pads"),
        numpy_helper.from_array(np.array(0.0, np.float32), "lo"),
        numpy_helper.from_array(np.array(6.0, np.float32), "hi"),
        numpy_helper.from_array(np.array(0, np.int64), "zero"),
        numpy_helper.from_array(np.array([-1], np.int64), "minus_one"),
        numpy_helper.from_array(np.linspace(-1, 1, 108 * 5, dtype=np.float32).reshape(108, 5), "w"),
        numpy_helper.from_array(np.array([0, 2], np.int64), "perm_idx"),
    ]
    nodes = [
        helper.make_node("Pad", ["x", "pads"], ["padded"], name="pad", mode="constant"),
        helper.make_node("Clip", ["padded", "lo", "hi"], ["clipped"], name="clip"),
        helper.make_node("Shape", ["clipped"], ["shp"], name="shape"),
        helper.make_node("Gather", ["shp", "zero"], ["n"], name="gather", axis=0),
        helper.make_node("Unsqueeze", ["n", "zero"], ["n1"], name="unsqueeze"),
        helper.make_node("Concat", ["n1", "minus_one"], ["newshape"], name="concat", axis=0),
        helper.make_node("Reshape", ["clipped", "newshape"], ["flat"], name="reshape"),
        helper.make_node("MatMul", ["flat", "w"], ["logits"], name="matmul"),
        helper.make_node("Transpose", ["logits"], ["lt"], name="transpose", perm=[1, 0]),
        helper.make_node("Transpose", ["lt"], ["lt2"], name="transpose2", perm=[1, 0]),
        helper.make_node("Softmax", ["lt2"], ["y"], name="softmax", axis=-1),
    ]
    g = helper.make_graph(nodes, "shape_ops", [helper.make_tensor_value_info("x", f, ["N", 3, 4, 4])],
                          [helper.make_tensor_value_info("y", f, ["N", 5])], initializer=inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()


def _control_flow() -> bytes:
    """y = If(sum(x) > 0, x * 2, x - 1); s = Loop(3 trips) accumulating y, scanning each partial sum."""
    f = TensorProto.FLOAT
    vi = helper.make_tensor_value_info
    then_g = helper.make_graph([helper.make_node("Mul", ["x", "two"], ["t"], name="then_mul")], "then", [],
                               [vi("t", f, [2, 3])])
    else_g = helper.make_graph([helper.make_node("Sub", ["x", "one"], ["e"], name="else_sub")], "else", [],
                               [vi("e", f, [2, 3])])
    body = helper.make_graph(
        [helper.make_node("Identity", ["cond_in"], ["cond_out"], name="keep_going"),
         helper.make_node("Add", ["acc_in", "y"], ["acc_out"], name="accumulate"),
         helper.make_node("Identity", ["acc_out"], ["scan"], name="scan_out")],
        "body", [vi("i", TensorProto.INT64, []), vi("cond_in", TensorProto.BOOL, []), vi("acc_in", f, [2, 3])],
        [vi("cond_out", TensorProto.BOOL, []), vi("acc_out", f, [2, 3]), vi("scan", f, [2, 3])])
    inits = [numpy_helper.from_array(np.array(2.0, np.float32), "two"),
             numpy_helper.from_array(np.array(1.0, np.float32), "one"),
             numpy_helper.from_array(np.array(0.0, np.float32), "zero_f"),
             numpy_helper.from_array(np.array(3, np.int64), "trips"),
             numpy_helper.from_array(np.array(True), "true"),
             numpy_helper.from_array(np.zeros((2, 3), np.float32), "acc0")]
    nodes = [
        helper.make_node("ReduceSum", ["x"], ["total"], name="sum", keepdims=0),
        helper.make_node("Greater", ["total", "zero_f"], ["positive"], name="greater"),
        helper.make_node("If", ["positive"], ["y"], name="branch", then_branch=then_g, else_branch=else_g),
        helper.make_node("Loop", ["trips", "true", "acc0"], ["acc", "partials"], name="loop", body=body),
    ]
    g = helper.make_graph(nodes, "control_flow", [vi("x", f, [2, 3])],
                          [vi("acc", f, [2, 3]), vi("partials", f, [3, 2, 3])], initializer=inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()


#: name -> builder of the serialized seed model
SEEDS: dict[str, Callable[[], bytes]] = {
    "lenet5_file": SHIPPED.read_bytes,
    "mlp": _zoo("mlp", batch=None, sizes=(32, 16, 10)),
    "shape_ops": _shape_ops,
    "lenet5": _zoo("lenet5", batch=1),
    "small_resnet": _zoo("small_resnet", batch=None, width=4),
    "vgg_cifar": _zoo("vgg_cifar", batch=1, width=0.125),
    "mobilenet_v2": _zoo("mobilenet_v2", batch=None, width=0.25, image=32, classes=10),
    "bert_encoder": _zoo("bert_encoder", batch=1, seq=8, hidden=16, heads=2, layers=1, vocab=50),
    "gpt_decoder": _zoo("gpt_decoder", batch=1, seq=8, hidden=16, heads=2, layers=1, vocab=50),
    "control_flow": _control_flow,
}


@functools.cache
def seed_bytes(name: str) -> bytes:
    return SEEDS[name]()


def seed_model(name: str) -> onnx.ModelProto:
    m = onnx.ModelProto()
    m.ParseFromString(seed_bytes(name))
    return m
