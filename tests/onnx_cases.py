"""ONNX's backend conformance cases (node tests), driven directly.

The onnx wheel no longer ships the data directory, so the cases are generated in memory with
``collect_testcases``. A case runs when every op it uses has an irc import rule; cases that
use supported ops yet are known not to pass are listed in EXCLUDED with the reason.

``python -m tests.onnx_cases [target]`` prints how many cases ran and passed.
"""

from __future__ import annotations

import functools
import sys
import warnings

import ml_dtypes
import numpy as np

from irc.frontend.onnx.rules import IMPORT_RULES

#: Element types outside irc's DType set (irc tensors are numeric: no strings, sequences, optionals).
_FOREIGN_TYPES = ("FLOAT8", "INT4", "UINT4", "FLOAT4", "INT2", "UINT2", "STRING", "sequence", "optional")


def _why_excluded(case) -> str | None:
    g = case.model.graph
    text = str(g.input) + str(g.output) + "".join(str(n.attribute) for n in g.node)
    for t in _FOREIGN_TYPES:
        if t in case.name.upper() or (t.isupper() and f"elem_type: {_onnx_enum(t)}" in text):
            return f"uses element type {t}, which irc does not have"
    if "sequence_type" in text or "optional_type" in text:
        return "uses sequence or optional values, which irc does not have"
    if case.name.endswith(("window_expanded", "window_symmetric_expanded")) or (
            case.name.startswith("test_center_crop_pad") and case.name.endswith("_expanded")):
        return "a run-time input (window length, crop shape) sets the output's shape; irc shapes are static"
    if case.name.startswith("test_training_dropout"):
        return "Dropout in training mode draws random numbers; no fixed expected output exists for irc to match"
    return _why_excluded_nn(case) or _why_excluded_quant(case)


def _why_excluded_nn(case) -> str | None:
    """Neural-network op variants irc refuses at import (rules_nn.py says why for each)."""
    g = case.model.graph
    outputs = {v.name for v in g.output}
    for n in g.node:
        attrs = {a.name: a for a in n.attribute}
        if n.op_type == "BatchNormalization" and "training_mode" in attrs and attrs["training_mode"].i:
            return ("BatchNormalization in training mode (batch statistics, running-mean outputs) is refused; "
                    "irc imports inference graphs")
        if n.op_type == "MaxPool" and len(n.output) > 1 and n.output[1] in outputs:
            return "MaxPool's Indices output is not produced by irc"
        if n.op_type == "LayerNormalization" and set(n.output[1:]) & outputs:
            return ("irc's layer_norm gives only Y; Mean/InvStdDev outputs are refused "
                    "(tests/frontend/test_rules_nn.py runs these cases on Y alone)")
        if n.op_type == "Resize":
            if "mode" in attrs and attrs["mode"].s == b"cubic":
                return "Resize mode 'cubic' is not implemented (nearest and linear are)"
            ctm = attrs.get("coordinate_transformation_mode")
            if ctm is not None and ctm.s == b"tf_crop_and_resize":
                return "Resize with tf_crop_and_resize is not implemented"
            if "antialias" in attrs and attrs["antialias"].i:
                return "Resize with antialias when downsampling is not implemented"
    return None


def _why_excluded_quant(case) -> str | None:
    """Quantization variants irc refuses at import (rules_quant.py): 8-bit integers only, no blocks."""
    for n in case.model.graph.node:
        if n.op_type in ("QuantizeLinear", "DequantizeLinear"):
            if any(a.name == "block_size" and a.i for a in n.attribute):
                return "blocked quantization (block_size) is not supported"
            if any(t in case.name for t in ("e4m3", "e5m2", "int16", "uint16", "int4", "uint4")):
                return "quantized types other than u8, i8 (and i32 to dequantize) are not supported"
    return None


#: ONNX op -> positions of inputs that irc needs as constants (shapes, axes, sizes, scales, pads):
#: exporters write them as initializers or shape computations that fold, but the conformance
#: cases pass many of them as graph inputs. run_case makes those initializers, with the case's data.
ATTRIBUTE_INPUTS = {
    "Reshape": {1}, "Expand": {1}, "Tile": {1}, "Split": {1}, "Squeeze": {1}, "Unsqueeze": {1},
    "Slice": {1, 2, 3, 4}, "Pad": {1, 2, 3}, "Resize": {1, 2, 3}, "Upsample": {1}, "ConstantOfShape": {0},
    "Range": {0, 1, 2}, **{op: {1} for op in ("ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd",
                                              "ReduceL1", "ReduceL2", "ReduceSumSquare", "ReduceLogSum",
                                              "ReduceLogSumExp")},
}


def freeze_attribute_inputs(model, inputs):
    """``model`` with its graph inputs that feed ATTRIBUTE_INPUTS made initializers holding the
    given data, and the remaining inputs."""
    import copy

    from onnx import numpy_helper

    frozen = {n.input[i] for n in model.graph.node for i in ATTRIBUTE_INPUTS.get(n.op_type, ())
              if i < len(n.input) and n.input[i]}
    if not frozen & {vi.name for vi in model.graph.input}:
        return model, inputs
    model = copy.deepcopy(model)
    keep, rest = [], []
    for vi, a in zip(list(model.graph.input), inputs):
        if vi.name in frozen:
            model.graph.initializer.append(numpy_helper.from_array(np.asarray(a), vi.name))
        else:
            keep.append(vi)
            rest.append(a)
    del model.graph.input[:]
    model.graph.input.extend(keep)
    return model, rest


def _onnx_enum(name: str) -> str:
    import onnx

    return " ".join(str(v) for k, v in onnx.TensorProto.DataType.items() if k.startswith(name))


@functools.cache
def excluded() -> dict[str, str]:
    """Case name -> why irc does not run it although its ops have import rules."""
    out = {c.name: why for c in runnable_cases() if (why := _why_excluded(c))}
    return out


@functools.cache
def all_cases():
    from onnx.backend.test.case.node import collect_testcases

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with np.errstate(all="ignore"):
            return tuple(collect_testcases(None))


def ops_of(case) -> set[str]:
    return {(n.op_type if n.domain in ("", "ai.onnx") else f"{n.domain}.{n.op_type}") for n in case.model.graph.node}


def runnable_cases():
    """Cases whose ops all have import rules, excluded ones included (the test skips those)."""
    return [c for c in all_cases() if ops_of(c) <= set(IMPORT_RULES)]


#: the cases that run without the ``slow`` marker (``pytest -m "not slow"``): one or two per op family
#: (elementwise, activations, conv, gemm, pooling, norms, shapes, indexing, reductions, resize, quantized)
FAST_CASES = frozenset({
    "test_abs", "test_add_bcast", "test_relu", "test_sigmoid", "test_softmax_axis_1", "test_clip", "test_where_example",
    "test_cast_FLOAT_to_FLOAT16", "test_conv_with_strides_padding", "test_convtranspose", "test_gemm_default_no_bias",
    "test_matmul_2d", "test_maxpool_2d_default", "test_averagepool_2d_pads", "test_globalaveragepool",
    "test_batchnorm_example", "test_instancenorm_example", "test_reshape_reordered_all_dims", "test_transpose_default",
    "test_concat_2d_axis_0", "test_slice", "test_gather_0", "test_expand_dim_changed", "test_unsqueeze_axis_0",
    "test_reduce_mean_keepdims_example", "test_argmax_default_axis_example", "test_resize_upsample_scales_nearest",
    "test_quantizelinear", "test_dequantizelinear", "test_qlinearconv",
})


def case_params(fast=FAST_CASES):
    """runnable_cases() as pytest parameters named after the cases; all but those named in
    ``fast`` carry the ``slow`` marker."""
    import pytest

    from tests.support.marks import slow_except

    return slow_except(fast, [pytest.param(c, id=c.name) for c in runnable_cases()])


def check_case(case, target: str = "interp") -> None:
    """The conformance test on ``target``: skips an excluded case (the reason is excluded()'s), runs the others."""
    import pytest

    why = excluded().get(case.name)
    if why:
        pytest.skip(why)
    run_case(case, target)


def run_case(case, target: str = "interp") -> None:
    """Runs one case through irc.backend and asserts its outputs (the case's own rtol/atol)."""
    from irc.backend import prepare

    inputs, expected = (list(map(_array, xs)) for xs in case.data_sets[0])
    model, inputs = freeze_attribute_inputs(case.model, inputs)
    rep = prepare(model, target=target)
    got = rep.run(list(inputs))
    assert len(got) == len(expected), f"{len(got)} outputs, expected {len(expected)}"
    for i, (g, e) in enumerate(zip(got, expected)):
        e = np.asarray(e)
        assert g.shape == e.shape, f"output {i}: shape {g.shape}, expected {e.shape}"
        assert g.dtype == e.dtype, f"output {i}: dtype {g.dtype}, expected {e.dtype}"
        if e.dtype == ml_dtypes.bfloat16:
            g, e = g.astype(np.float32), e.astype(np.float32)
        if e.dtype.kind in "fc":
            np.testing.assert_allclose(g, e, rtol=case.rtol, atol=case.atol, equal_nan=True, err_msg=f"output {i}")
        else:
            np.testing.assert_array_equal(g, e, err_msg=f"output {i}")


def _array(x):
    import onnx
    from onnx import numpy_helper

    return numpy_helper.to_array(x) if isinstance(x, onnx.TensorProto) else x


def report(target: str = "interp") -> None:
    total = all_cases()
    cases = runnable_cases()
    passed, failed = 0, []
    skip = excluded()
    for c in cases:
        if c.name in skip:
            continue
        try:
            run_case(c, target)
            passed += 1
        except Exception as e:  # a report, not a test: every failure is listed
            failed.append((c.name, f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"))
    print(f"{len(total)} node cases; {len(cases)} use only supported ops; {len(skip)} excluded; "
          f"{len(cases) - len(skip)} run, {passed} passed on target '{target}'")
    for name, why in failed:
        print(f"  FAIL {name}: {why[:200]}")
    if "-v" in sys.argv:
        for name, why in sorted(skip.items()):
            print(f"  excluded {name}: {why}")


if __name__ == "__main__":
    report(*[a for a in sys.argv[1:] if not a.startswith("-")])
