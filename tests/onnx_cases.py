"""ONNX's backend conformance cases (node tests), driven directly.

The onnx wheel no longer ships the data directory, so the cases are generated in memory with
``collect_testcases``. Each runs through the unmodified onnx.backend interface, as ONNX's own
suite and users' harnesses call a backend: ``prepare(model)`` then ``run(inputs)``, inputs that
set shapes (Reshape's shape, Slice's starts...) given at run time. A case runs when every op it
uses has an irc import rule (after its opset is brought up to the one irc imports and ONNX
function ops without a rule are expanded into their bodies, as the import does); cases that
use supported ops yet are known not to pass are listed by excluded() with the reason.

``python -m tests.onnx_cases [target] [-v]`` runs all of them and prints the passed, failed and
excluded counts, the exclusions grouped by reason (``-v``: with the cases' names).
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
    if case.name.startswith("test_training_dropout"):
        return "Dropout in training mode draws random numbers; no fixed expected output exists for irc to match"
    return _why_excluded_nn(case) or _why_excluded_quant(case) or _why_excluded_positional(case)


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


def _why_excluded_positional(case) -> str | None:
    """Variants the positional rules refuse at import (rules_position.py, rules_einsum.py)."""
    g = case.model.graph
    known = {t.name for t in g.initializer} | {o for n in g.node if n.op_type == "Constant" for o in n.output}
    for n in g.node:
        if n.op_type == "NonZero" and n.input[0] not in known:
            return "NonZero of run-time data: its output shape is the data's count of non-zeros; irc shapes are static"
        if n.op_type == "Einsum":
            eq = next(a.s.decode() for a in n.attribute if a.name == "equation")
            if any(len(set(t)) != len(t) for t in eq.replace(" ", "").replace("...", "").split("->")[0].split(",")):
                return "Einsum traces and diagonals (a label repeated within one operand) are refused"
    return None


#: Cases one target cannot match within the case's own tolerance, with the reason (target -> name -> why).
#: (each Attention case also runs as Attention's ONNX function body, which computes the same)
TARGET_EXCLUDED = {"cpu": dict.fromkeys(
    (name + suffix for name in ("test_attention_4d_fp16", "test_attention_4d_causal_fp16", "test_attention_4d_causal_bf16",
                                "test_attention_4d_padded_kv_bf16", "test_attention_4d_causal_padded_kv_bf16",
                                "test_attention_4d_attn_mask_causal_bf16", "test_attention_3d_causal_bf16")
     for suffix in ("", "_expanded")),
    "the cpu softmax computes f16/bf16 rows in f32 and rounds once; the reference rounds every step, 1 ulp "
    "apart, beyond these cases' rtol 1e-3 (the interpreter matches them)")}


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
    """The ops the case's model uses as irc imports it: brought up to the opset irc imports (an
    opset-10 Scatter is a ScatterElements then) and with the ONNX function ops irc has no rule
    for expanded into their bodies; the model's own ops where that fails."""
    return _ops(_imported_form(case.name)[1])


def _ops(model) -> set[str]:
    return {(n.op_type if n.domain in ("", "ai.onnx") else f"{n.domain}.{n.op_type}") for n in model.graph.node}


@functools.cache
def _imported_form(name: str):
    """(the case's model, that model as irc imports it; see ops_of)."""
    from irc.errors import IRCError
    from irc.frontend.onnx.functions import expand
    from irc.frontend.onnx.opset import upgrade

    model = next(c.model for c in all_cases() if c.name == name)
    try:
        return model, expand(upgrade(model))
    except IRCError:
        return model, model


@functools.cache
def runnable_cases():
    """Cases whose ops all have import rules, excluded ones included (the test skips those)."""
    return tuple(c for c in all_cases() if ops_of(c) <= set(IMPORT_RULES))


def why_not_run(case) -> str | None:
    """Why ``case`` is not run (no import rule for an op it uses, or excluded()), or None."""
    missing = ops_of(case) - set(IMPORT_RULES)
    if missing:
        own = _ops(_imported_form(case.name)[0])
        inner = sorted(missing - own)
        via = f" (in the ONNX function body of {', '.join(sorted(own - ops_of(case)))})" if inner else ""
        return f"no import rule for {', '.join(sorted(missing))}{via}"
    return excluded().get(case.name)


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
    # a run-time input that sets a shape (Range's bounds); an ONNX function op expanded into its body
    "test_range_int32_type_negative_delta", "test_celu",
    # control flow: an If on a run-time condition; a Loop with a scan output, unrolled at import
    "test_if", "test_loop11",
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

    why = excluded().get(case.name) or TARGET_EXCLUDED.get(target, {}).get(case.name)
    if why:
        pytest.skip(why)
    run_case(case, target)


def run_case(case, target: str = "interp") -> None:
    """Runs one case through irc.backend as any onnx.backend harness does (``prepare(model)``
    then ``run(inputs)``, inputs that set shapes included) and asserts its outputs (the case's
    own rtol/atol)."""
    from irc.backend import prepare

    inputs, expected = (list(map(_array, xs)) for xs in case.data_sets[0])
    rep = prepare(case.model, target=target)
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


def report(target: str = "interp", verbose: bool = False) -> tuple[int, int, int]:
    """Runs every node case ONNX defines through the unmodified backend interface on ``target``
    and prints pass, fail and excluded counts, each failure, and the exclusions grouped by reason
    (each case named with ``verbose``). Returns (passed, failed, excluded)."""
    passed, failed, skipped = 0, [], {}
    for c in all_cases():
        why = why_not_run(c) or TARGET_EXCLUDED.get(target, {}).get(c.name)
        if why:
            skipped.setdefault(why, []).append(c.name)
            continue
        try:
            run_case(c, target)
            passed += 1
        except Exception as e:  # a report, not a test: every failure is listed
            failed.append((c.name, f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"))
    n_skip = sum(map(len, skipped.values()))
    print(f"{len(all_cases())} node cases through prepare(model).run(inputs) on target '{target}': "
          f"{passed} passed, {len(failed)} failed, {n_skip} excluded")
    for name, why in failed:
        print(f"  FAIL {name}: {why[:200]}")
    print("excluded, by reason:")
    for why, names in sorted(skipped.items(), key=lambda kv: (-len(kv[1]), kv[0])):
        print(f"  {len(names):4d}  {why}" + (f": {', '.join(names)}" if verbose else ""))
    return passed, len(failed), n_skip


if __name__ == "__main__":
    report(*[a for a in sys.argv[1:] if not a.startswith("-")], verbose="-v" in sys.argv)
