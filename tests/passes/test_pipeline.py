"""Passes as typed classes, pipelines as data: options reach passes by name, unknown ones are
errors that name the valid ones, every target's pipeline names registered passes."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

import irc
from irc.errors import InputError, IRCError, TargetError
from irc.ir import GraphBuilder, interpret
from irc.passes.pipeline import Step, pass_class, run_pipeline, select, when
from irc.passes.registry import PASSES, Pass, get_pass
from irc.targets import get_target, target_names
from irc.zoo import mlp

RNG = np.random.default_rng(0)


def _dense():
    b = GraphBuilder("dense")
    x = b.input("x", (2, 6))
    w = b.param("w", RNG.standard_normal((6, 5)).astype(np.float32))
    bias = b.param("b", RNG.standard_normal(5).astype(np.float32))
    return b.build(b.op("relu", b.op("gemm", x, w, bias)))


def _targets():
    """(name, target) for every target and fpga flow that loads here."""
    out = []
    for name in target_names():
        try:
            t = get_target(name)
        except TargetError:
            continue
        flows = getattr(t, "flows", None)
        out += [(f"{name}:{f}", ft) for f, ft in flows.items()] if flows else [(name, t)]
    return out


# -- a pass is a frozen dataclass whose fields are its options


def test_every_pass_is_a_named_documented_dataclass():
    for name in ("im2col_gemm", "int8_gemm", "dneuro_check"):
        get_pass(name)  # a target's own passes load when named
    for name, cls in PASSES.items():
        assert issubclass(cls, Pass) and dataclasses.is_dataclass(cls), name
        assert cls.name == name
        assert (cls.__doc__ or "").strip(), f"pass {name} has no docstring"


def test_a_pass_fields_are_its_options():
    assert get_pass("im2col_gemm").option_names() == ("vector_bits", "winograd")
    assert set(get_pass("quantize").option_names()) == {"quantize", "activation_scheme", "calib", "calib_method",
                                                           "weight_bits"}
    assert get_pass("dead_code").option_names() == ()
    assert get_pass("autodiff").option_names() == ("loss", "wrt")  # its fields
    p = get_pass("im2col_gemm").configure({"vector_bits": 256, "threads": 4})  # shared: takes its own only
    assert p.vector_bits == 256
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.vector_bits = 512
    assert get_pass("int8_gemm")().int8_isa == "auto"


def test_an_option_given_to_a_pass_that_it_does_not_take_is_an_error():
    with pytest.raises(InputError, match=r"pass 'im2col_gemm' has no option\(s\) vector_bit \(its options: vector_bits, winograd\)"):
        get_pass("im2col_gemm").configure(vector_bit=256)
    with pytest.raises(InputError, match=r"pass 'dead_code' has no option\(s\) calib \(its options: none\)"):
        run_pipeline(_dense(), [Step("dead_code", options={"calib": None})])


def test_options_reach_the_passes_that_take_them():
    g = _dense()
    out = run_pipeline(g, ["fuse", Step("im2col_gemm", options={"vector_bits": 256})])
    assert [n.op for n in out.nodes] == ["gemm_packed"]
    x = RNG.standard_normal((2, 6)).astype(np.float32)
    np.testing.assert_allclose(interpret(out, [x])[0], interpret(g, [x])[0], rtol=1e-5, atol=1e-6)


# -- pipelines as data


def test_every_target_pipeline_names_registered_passes():
    seen = set()
    for name, t in _targets():
        assert t.PIPELINE, f"{name} declares no pipeline"
        for spec in t.PIPELINE:
            cls = pass_class(spec)
            assert issubclass(cls, Pass) and cls.name == (spec if isinstance(spec, str) else spec.name)
            seen.add(cls.name)
    assert {"dead_code", "fuse", "im2col_gemm", "int8_gemm", "quantize", "dneuro_check"} <= seen


def test_pipeline_steps_chosen_by_options():
    cpu = get_target("cpu")
    names = [s.name for s in cpu.pipeline({})]
    assert names[-1] == "flush_denormals" and "calibrate" not in names
    names = [s.name for s in cpu.pipeline({"quantize": "int8", "ftz": False})]
    assert names.index("calibrate") < names.index("quantize") < names.index("int8_gemm")
    assert "flush_denormals" not in names
    fpga = get_target("fpga")
    assert "quantize" not in [s.name for s in fpga.pipeline({})]
    assert "quantize" in [s.name for s in fpga.pipeline({"precision": "int8"})]
    assert [s.name for s in select(["a", *when("b", "c"), Step("d", when=lambda o: o["e"] > 1)], {"e": 2})] == ["a", "d"]


# -- compile options: the target's, or those of a pass that runs


def test_an_unknown_compile_option_names_the_valid_ones():
    g = _dense()
    with pytest.raises(IRCError, match=r"unknown option\(s\) bogus for target 'cpu' \(known: .*threads.*vector_bits"):
        irc.compile(g, "cpu", bogus=1)
    with pytest.raises(InputError, match=r"unknown option\(s\) vector_bits for target 'interp' \(known: .*quantize"):
        irc.compile(g, "interp", vector_bits=256)  # interp's pipeline does not lower


def test_a_pass_option_reaches_the_pass_through_compile():
    g = _dense()
    m = irc.compile(g, "interp", passes=["fuse", "im2col_gemm"], vector_bits=256)
    assert [n.op for n in m.graph.nodes] == ["gemm_packed"]
    x = RNG.standard_normal((2, 6)).astype(np.float32)
    np.testing.assert_allclose(m(x), interpret(g, [x])[0], rtol=1e-5, atol=1e-6)


# -- the command line


def test_print_after_a_target_pass(irc, model_file):
    path = model_file(mlp(None, sizes=(12, 16, 5), seed=3))
    status, out, _ = irc("compile", path, "--target", "cpu", "--shape", "input=2x12", "--print-after", "im2col_gemm")
    assert status == 0
    assert out.startswith("// after im2col_gemm\n") and "gemm_packed(" in out
    status, out, _ = irc("compile", path, "--target", "interp", "--shape", "input=2x12", "--passes", "fuse,im2col_gemm",
                         "--print-after", "all")
    assert status == 0
    assert "// after fuse\n" in out and "// after im2col_gemm\n" in out and "gemm_packed(" in out
