"""The ``irc`` command: info, compile and run on real models, and one clear line for every bad input."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from irc.cli.args import parse_shape, parse_value
from irc.errors import InputError
from irc.ir import parse_graph
from irc.zoo import lenet5, mlp
from tests.support.cli import assert_user_error
from tests.support.oracle import ROOT

# (the ``irc`` fixture, the command line run in process, is in tests/conftest.py)


def small_mlp() -> onnx.ModelProto:
    return mlp(None, sizes=(12, 16, 5), seed=3)


# -- info


def test_version(irc):
    import irc as pkg

    status, out, _ = irc("--version")
    assert status == 0 and out.strip() == f"irc {pkg.__version__}"


def test_bare_command_prints_help(irc):
    status, out, _ = irc()
    assert status == 0 and "compile" in out and "run" in out and "info" in out


def test_info_lenet(irc, lenet_path):
    status, out, err = irc("info", lenet_path, "--shape", "input=2x1x28x28")
    assert status == 0, err
    assert "f32[2,1,28,28]" in out and "model [N,1,28,28]" in out
    assert "f32[2,10]" in out
    assert "61.71K values in 10 tensors" in out  # 61,706 weights and biases
    rows = {line.split()[0]: line.split()[1:] for line in out.splitlines() if line.startswith("  ")}
    assert rows["conv"][0] == "2" and rows["gemm"][0] == "3" and rows["max_pool"][0] == "2"
    # MACs per image: conv1 6*28*28*25, conv2 16*10*10*6*25, fc 400*120 + 120*84 + 84*10.
    macs = 2 * (6 * 28 * 28 * 25 + 16 * 10 * 10 * 6 * 25 + 400 * 120 + 120 * 84 + 84 * 10)
    assert rows["total"][1] == f"{macs / 1e3:.2f}K"
    assert "activations" in out and "peak" in out
    assert err == ""


def test_info_binds_dynamic_dims_to_one_with_a_note(irc, lenet_path):
    status, out, err = irc("info", lenet_path)
    assert status == 0
    assert "f32[1,1,28,28]" in out
    assert "irc: note: input 'input' has dynamic dimension(s) N; bound to 1" in err


def test_info_counts_every_mlp_mac(irc, model_file):
    status, out, _ = irc("info", model_file(small_mlp()), "--shape", "input=3x12")
    assert status == 0
    total = out.splitlines()[-2].split()
    assert total[:2] == ["total", "4"]  # gemm, relu, gemm, softmax
    assert total[2] == str(3 * (12 * 16 + 16 * 5))


# -- compile


def test_readme_command(irc, lenet_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    status, out, err = irc("compile", "examples/models/lenet5.onnx", "--shape", "input=1x1x28x28", "--emit", "ir")
    assert status == 0, err
    g = parse_graph(out)
    assert [v.shape for v in g.inputs] == [(1, 1, 28, 28)]
    assert [v.shape for v in g.outputs] == [(1, 10)]
    hist = g.op_histogram()  # compiled for the default (cpu) target: the convs are lowered and fused
    assert sum(hist.get(op, 0) for op in ("conv", "conv_fused", "conv_gemm")) == 2


def test_compile_summary_without_emit(irc, model_file):
    status, out, err = irc("compile", model_file(small_mlp()), "--shape", "input=2x12")
    assert status == 0, err
    assert out.startswith("compiled 'mlp' for target 'cpu'")


def test_print_after_pass(irc, model_file):
    status, out, _ = irc("compile", model_file(small_mlp()), "--shape", "input=2x12", "--print-after", "dead_code")
    assert status == 0
    header, text = out.split("\n", 1)
    assert header == "// after dead_code"
    assert parse_graph(text).op_histogram()["gemm"] == 2


def test_print_after_a_pass_that_does_not_run(irc, model_file):
    path = model_file(small_mlp())
    assert_user_error(irc("compile", path, "--shape", "input=2x12", "--passes", "", "--print-after", "dead_code"),
                      "dead_code", "did not run")
    assert_user_error(irc("compile", path, "--print-after", "no_such_pass"), "unknown pass 'no_such_pass'")
    assert_user_error(irc("compile", path, "--passes", "dead_code,nope"), "unknown pass 'nope'")


def test_save_with_a_target_that_makes_nothing_writes_nothing(irc, model_file, tmp_path):
    out = tmp_path / "model.so"
    line = assert_user_error(irc("compile", model_file(small_mlp()), "--target", "interp", "--shape", "input=1x12",
                                 "-o", out))
    assert "interp" in line and "-o" in line
    assert not out.exists()


def test_unknown_target_and_option(irc, model_file):
    path = model_file(small_mlp())
    assert_user_error(irc("compile", path, "--target", "tpu"), "unknown target 'tpu'")
    assert_user_error(irc("compile", path, "--opt", "threads=2", "--target", "interp"), "unknown option 'threads'")
    assert_user_error(irc("compile", path, "--opt", "novalue"), "KEY=VALUE")


@pytest.mark.parametrize("text, dims", [("x=1x3x224x224", (1, 3, 224, 224)), ("x=2,3", (2, 3)), ("a=b=4", (4,)),
                                        ("x=7", (7,)), ("x=2X3", (2, 3))])
def test_parse_shape(text, dims):
    assert parse_shape(text)[1] == dims


@pytest.mark.parametrize("text", ["x", "x=", "=1x2", "x=1xx2", "x=1x-2", "x=ax2", "x=1.5", "x=1x2x"])
def test_malformed_shape(irc, lenet_path, text):
    with pytest.raises(InputError, match="malformed"):
        parse_shape(text)
    assert_user_error(irc("info", lenet_path, "--shape", text), "--shape", "malformed")


def test_parse_option_values_follow_the_default_type():
    assert parse_value("ftz", "false", True) is False
    assert parse_value("threads", "4", None) == 4
    assert parse_value("cpu", "znver4", "host") == "znver4"
    assert parse_value("scale", "0.5", None) == 0.5
    with pytest.raises(InputError, match="true or false"):
        parse_value("ftz", "maybe", True)


# -- compile --emit llvm/asm and the memory plan


def test_emit_llvm_and_asm_for_the_cpu_target(irc, model_file):
    path = model_file(small_mlp())
    status, out, err = irc("compile", path, "-t", "cpu", "--shape", "input=2x12", "--emit", "llvm")
    assert status == 0, err
    assert "define" in out and "_entry(" in out
    status, out, err = irc("compile", path, "-t", "cpu", "--shape", "input=2x12", "--emit", "asm")
    assert status == 0, err
    assert "_entry:" in out and "text" in out
    assert_user_error(irc("compile", path, "-t", "interp", "--emit", "asm"), "does not generate asm")


def test_compile_reports_the_memory_plan(irc, model_file):
    status, out, err = irc("compile", model_file(small_mlp()), "-t", "cpu", "--shape", "input=2x12")
    assert status == 0, err
    assert "memory plan: arena " in out and "peak live activations" in out


# -- bench


def test_bench_times_irc_next_to_onnxruntime(irc, model_file):
    status, out, err = irc("bench", model_file(small_mlp()), "--shape", "input=4x12", "--threads", "1",
                           "--budget", "0.05", "--target", "interp")
    assert status == 0, err
    lines = out.splitlines()
    assert lines[1].startswith("threads  1;")
    assert [ln.split()[0] for ln in lines[3:5]] == ["irc", "onnxruntime"]
    ratio_line = lines[5]
    assert ratio_line.startswith("irc/onnxruntime = ")
    assert float(ratio_line.split("=")[1].split()[0]) > 0
    assert float(ratio_line.rsplit(" ", 1)[1]) < 1e-5  # the outputs agree


def test_bench_without_peer(irc, model_file):
    status, out, err = irc("bench", model_file(small_mlp()), "--vs", "none", "--budget", "0.01", "--target", "interp")
    assert status == 0, err
    assert "onnxruntime" not in out and "irc (interp)" in out


# -- run


def test_run_matches_onnxruntime_and_writes_npz(irc, model_file, tmp_path, ort_run):
    model = small_mlp()
    x = np.random.default_rng(0).standard_normal((4, 12)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    out = tmp_path / "out.npz"
    status, stdout, err = irc("run", model_file(model), "--input", f"input={tmp_path / 'x.npy'}", "--output", out)
    assert status == 0, err
    assert stdout.startswith("output  f32[4,5]  min ")
    want = ort_run(model, {"input": x})[0]
    with np.load(out) as z:
        assert z.files == ["output"]
        np.testing.assert_allclose(z["output"], want, rtol=1e-5, atol=1e-6)
    assert f"argmax [{' '.join(map(str, want.argmax(1)))}]" in stdout


def test_run_inputs_from_npz_and_bare_npy(irc, model_file, tmp_path):
    path = model_file(small_mlp())
    x = np.ones((2, 12), np.float32)
    np.savez(tmp_path / "in.npz", input=x)
    np.save(tmp_path / "x.npy", x)
    a = irc("run", path, "--input", tmp_path / "in.npz")
    b = irc("run", path, "--input", tmp_path / "x.npy")
    assert a[0] == b[0] == 0 and a[1] == b[1] and "f32[2,5]" in a[1]


def test_run_random_inputs(irc, lenet_path, tmp_path):
    status, out, err = irc("run", lenet_path, "--random-inputs", "--seed", "1", "--shape", "input=3x1x28x28")
    assert status == 0, err
    assert out.startswith("output  f32[3,10]") and "argmax [" in out
    again = irc("run", lenet_path, "--random-inputs", "--seed", "1", "--shape", "input=3x1x28x28")
    assert again[1] == out


def test_run_needs_data_or_random_inputs(irc, model_file):
    assert_user_error(irc("run", model_file(small_mlp())), "no data for input(s) input", "--random-inputs")


# -- every bad input: status 2, one line, no traceback


def _unsupported_model() -> onnx.ModelProto:
    nodes = [
        helper.make_node("Relu", ["x"], ["a"], name="ok"),
        helper.make_node("FancyOp", ["a"], ["b"], name="fancy1"),
        helper.make_node("FancyOp", ["b"], ["c"], name="fancy2"),
        helper.make_node("Warp", ["c"], ["y"], name="warp", domain="com.acme"),
    ]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])
    graph = helper.make_graph(nodes, "g", [x], [y])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.acme", 1)])


def _relu_chain(edges: list[tuple[str, str]]) -> onnx.ModelProto:
    nodes = [helper.make_node("Relu", [i], [o], name=f"n_{o}") for i, o in edges]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])
    return helper.make_model(helper.make_graph(nodes, "g", [x], [y]), opset_imports=[helper.make_opsetid("", 17)])


def test_missing_file(irc, tmp_path):
    assert_user_error(irc("info", tmp_path / "nope.onnx"), "no such file")
    assert_user_error(irc("run", tmp_path, "--random-inputs"), "directory")


def test_truncated_model(irc, model_file, lenet_path):
    data = lenet_path.read_bytes()
    for cut in (len(data) // 2, 100, 7):
        assert_user_error(irc("compile", model_file(data[:cut], f"cut{cut}.onnx")), "not an ONNX model")
    assert_user_error(irc("info", model_file(b"", "empty.onnx")), "empty")


@pytest.mark.parametrize("seed", range(6))
def test_random_bytes(irc, model_file, seed):
    data = np.random.default_rng(seed).integers(0, 256, 300 + 100 * seed, dtype=np.uint8).tobytes()
    assert_user_error(irc("info", model_file(data)))


def test_protobuf_that_is_not_a_model(irc, model_file):
    tensor = onnx.numpy_helper.from_array(np.arange(6, dtype=np.float32), "t")
    assert_user_error(irc("compile", model_file(tensor.SerializeToString())))
    graph = helper.make_graph([], "g", [], [])
    assert_user_error(irc("compile", model_file(graph.SerializeToString(), "graph.onnx")))


def test_unsupported_ops_are_listed_in_one_line(irc, model_file):
    line = assert_user_error(irc("compile", model_file(_unsupported_model())), "unsupported op(s)")
    for fragment in ("FancyOp (nodes: fancy1, fancy2)", "com.acme.Warp (nodes: warp)"):
        assert fragment in line
    assert "Relu" not in line


def test_cycle_and_dangling_input(irc, model_file):
    cycle = _relu_chain([("y", "a"), ("a", "y")])
    assert_user_error(irc("info", model_file(cycle, "cycle.onnx")))
    dangling = _relu_chain([("x", "a"), ("ghost", "y")])
    assert_user_error(irc("info", model_file(dangling, "dangling.onnx")), "ghost")


def test_wrong_input_shape_or_dtype_in_npy(irc, model_file, tmp_path):
    path = model_file(lenet5(1))
    np.save(tmp_path / "shape.npy", np.zeros((1, 1, 32, 32), np.float32))
    np.save(tmp_path / "dtype.npy", np.zeros((1, 1, 28, 28), np.float64))
    np.save(tmp_path / "rank.npy", np.zeros((28, 28), np.float32))
    (tmp_path / "junk.npy").write_bytes(b"not numpy")
    (tmp_path / "cut.npy").write_bytes((tmp_path / "shape.npy").read_bytes()[:100])
    assert_user_error(irc("run", path, "--input", f"input={tmp_path / 'shape.npy'}"), "input", "32")
    assert_user_error(irc("run", path, "--input", f"input={tmp_path / 'dtype.npy'}"), "dtype float64", "f32")
    assert_user_error(irc("run", path, "--input", f"input={tmp_path / 'rank.npy'}"), "input")
    assert_user_error(irc("run", path, "--input", f"input={tmp_path / 'junk.npy'}"), "not a .npy or .npz file")
    assert_user_error(irc("run", path, "--input", f"input={tmp_path / 'cut.npy'}"), "cannot read")
    assert_user_error(irc("run", path, "--input", f"other={tmp_path / 'rank.npy'}"), "not an input")
    assert_user_error(irc("run", path, "--input", tmp_path / "missing.npy"), "no such input file")


def test_shape_that_contradicts_the_model(irc, lenet_path, model_file):
    assert_user_error(irc("info", lenet_path, "--shape", "input=1x3x28x28"), "contradicts", "[N,1,28,28]")
    assert_user_error(irc("compile", lenet_path, "--shape", "input=1x1x28"), "contradicts")
    assert_user_error(irc("compile", lenet_path, "--shape", "image=1x1x28x28"), "unknown input(s) image", "input")
    x = model_file(lenet5(2))
    assert_user_error(irc("run", x, "--random-inputs", "--shape", "input=4x1x28x28"), "contradicts")


def test_unexpected_exception_is_an_internal_error(irc, model_file, monkeypatch):
    import irc.cli.commands as cli

    def boom(*_):
        raise RuntimeError("kaboom\nsecond line")

    monkeypatch.setattr(cli, "parse_shapes", boom)
    status, _, err = irc("info", model_file(small_mlp()))
    assert status == 1
    assert err.splitlines() == ["irc: internal error: RuntimeError: kaboom second line "
                                "(a bug in irc; rerun with --debug for the traceback)"]


def test_usage_errors(irc):
    assert_user_error(irc("compile"), "Missing argument 'MODEL'")
    assert_user_error(irc("frobnicate"), "No such command")
    assert_user_error(irc("info", "--bogus", "x.onnx"), "--bogus")
    assert_user_error(irc("run", "x.onnx", "--seed", "many"), "--seed")


def test_entry_point_in_a_subprocess(model_file):
    """The real process: one line and status 2; --debug adds the traceback."""
    path = model_file(b"\x00garbage", "bad.onnx")
    cmd = [sys.executable, "-m", "irc.cli", "info", str(path)]
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 2 and r.stdout == ""
    assert len(r.stderr.splitlines()) == 1 and r.stderr.startswith("irc: error: ")
    r = subprocess.run(cmd + ["--debug"], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 2 and "Traceback" in r.stderr and r.stderr.splitlines()[-1].startswith("irc: error: ")


# -- start-up, help per target, progress


def test_version_and_help_load_neither_llvm_nor_onnx():
    code = ("import sys\nfrom irc.cli.commands import main\n"
            "assert main(['--version']) == 0 and main(['--help']) == 0 and main(['compile', '--help']) == 0\n"
            "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('llvmlite', 'onnx', 'numpy', 'irc.api'))\n"
            "heavy += [m for m in ('irc.api', 'irc.ir', 'irc.targets') if m in sys.modules]\n"
            "print('HEAVY', heavy)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[-1] == "HEAVY []"


def test_help_table_names_every_target():
    from irc.api import DEFAULT_TARGET
    from irc.cli.target_help import DEFAULT_TARGET as HELP_DEFAULT
    from irc.cli.target_help import TARGETS
    from irc.targets import target_names

    assert sorted(TARGETS) == sorted(target_names()) and HELP_DEFAULT == DEFAULT_TARGET


def test_compile_help_lists_targets_and_general_flags_only(irc):
    status, out, _ = irc("compile", "--help")
    assert status == 0
    assert "Targets (--target NAME, default cpu)" in out and all(f"  {t} " in out for t in ("cpu", "interp", "fpga"))
    assert "--shape" in out and "--emit" in out and "--progress" in out
    assert "--board" not in out and "--max-dsp" not in out and "--calib" not in out
    status, out, _ = irc("run", "--help")
    assert status == 0 and "--random-inputs" in out and "--board" not in out and "Targets" in out


@pytest.mark.parametrize("how", [("compile", "--target", "fpga", "--help"), ("compile", "--help", "-t", "fpga"),
                                 ("run", "--target=fpga", "--help"), ("help", "fpga")])
def test_a_targets_own_flags(irc, how):
    status, out, _ = irc(*how)
    assert status == 0
    assert "Flags of target fpga" in out and "--board NAME" in out and "--max-dsp F" in out
    assert "--opt ap_include=..." in out  # an option without a flag
    assert "--quantize [int8]" not in out  # the fpga target quantizes by --precision int8 or the dneuro flow


def test_cpu_target_help(irc):
    status, out, _ = irc("help", "cpu")
    assert status == 0 and "--quantize [int8]" in out and "--opt threads=..." in out and "--board" not in out
    assert_user_error(irc("help", "tpu"), "unknown target 'tpu'")
    status, out, _ = irc("help")
    assert status == 0 and "Commands:" in out


def test_progress_shows_after_the_delay_and_counts_passes():
    import io

    from irc.cli import progress

    stream = io.StringIO()
    with progress.CompileProgress(3, enabled=True, delay_s=0.0, stream=stream) as bar:
        bar.on_pass("fold_constants", None)
        bar.on_pass("fuse", None)
        bar.on_pass("im2col_gemm", None)
        assert bar.stage == "generating code"
        import time

        deadline = time.monotonic() + 5
        while "generating code" not in stream.getvalue() and time.monotonic() < deadline:
            time.sleep(0.05)
    assert bar.shown and "compiling: 3/4 steps" in stream.getvalue()
    quiet = io.StringIO()
    with progress.CompileProgress(3, enabled=True, delay_s=5.0, stream=quiet) as bar:
        bar.on_pass("fuse", None)  # ends long before the delay: nothing shown
    assert quiet.getvalue() == "" and not bar.shown
    assert progress.wanted(True, quiet=False) and not progress.wanted(True, quiet=True)
    assert not progress.wanted(False, quiet=False)


def test_compile_progress_goes_to_stderr_and_never_with_quiet(irc, model_file, monkeypatch):
    from irc.cli import progress

    monkeypatch.setattr(progress, "DELAY_S", 0.0)
    path = model_file(small_mlp())
    status, out, err = irc("compile", path, "--shape", "input=1x12", "--progress")
    assert status == 0 and "compiling: " in err
    assert "compiling" not in out and out.startswith("compiled 'mlp'")
    status, out, err = irc("compile", path, "--shape", "input=1x12")  # stderr is no terminal here
    assert status == 0 and "compiling" not in err
    status, out, err = irc("compile", path, "--shape", "input=1x12", "--progress", "--quiet")
    assert status == 0 and err == "" and "compiling" not in out


def test_dynamic_dimension_note_once_and_not_with_shape(irc, lenet_path):
    status, _, err = irc("info", lenet_path)
    assert status == 0 and err.count("dynamic dimension") == 1
    status, _, err = irc("info", lenet_path, "--shape", "input=1x1x28x28")
    assert status == 0 and "dynamic dimension" not in err
    status, _, err = irc("-q", "info", lenet_path)
    assert status == 0 and err == ""


# -- every bad value is one line and status 2


def test_flag_values_out_of_range(irc, lenet_path):
    assert_user_error(irc("run", lenet_path, "--random-inputs", "--seed", "-5"), "--seed", "-5")
    assert_user_error(irc("bench", lenet_path, "--threads", "0"), "--threads", "0")
    assert_user_error(irc("bench", lenet_path, "--budget", "-1"), "--budget", "-1")
    assert_user_error(irc("bench", lenet_path, "--budget", "0"), "--budget")
    assert_user_error(irc("run", lenet_path, "--random-inputs", "--opt", "threads=0"), "threads", "got 0")


def test_flags_without_what_uses_them(irc, lenet_path, tmp_path):
    calib = tmp_path / "calib.npz"
    np.savez(calib, input=np.zeros((2, 1, 28, 28), np.float32))
    assert_user_error(irc("run", lenet_path, "--random-inputs", "--calib", calib), "--calib", "add --quantize int8")
    assert_user_error(irc("compile", lenet_path, "--opt", f"calib={calib}"), "--calib", "--quantize int8")
    assert_user_error(irc("compile", lenet_path, "-t", "fpga", "--calib", calib), "--precision int8")
    line = assert_user_error(irc("compile", lenet_path, "-t", "fpga", "--flow", "dneuro"))
    assert "dneuro flow" in line and "needs calibration inputs" in line and "--calib DATA.npz" in line
    assert "quantization needs" not in line
    assert_user_error(irc("compile", lenet_path, "-t", "fpga", "--max-dsp", "0.5"),
                      "--max-dsp is for the fpga flow dneuro", "add --flow dneuro")
    assert_user_error(irc("compile", lenet_path, "-t", "fpga", "--flow", "dneuro", "--calib", calib, "--board", "u200"),
                      "--board is for the fpga flow hls")
    assert_user_error(irc("compile", lenet_path, "-t", "fpga", "--opt", "flow=rtl"), "flow")
    assert_user_error(irc("compile", lenet_path, "-t", "fpga", "--quantize", "int8"), "--quantize", "--precision int8")


@pytest.mark.parametrize("args", [
    ("info",), ("info", "{missing}"), ("info", "{model}", "--shape", "input=1x1x0"),
    ("compile", "{model}", "--emit", "wasm"), ("compile", "{model}", "-o", "{tmp}/x.txt"),
    ("compile", "{model}", "--opt", "cpu=pentium9000"), ("compile", "{model}", "-t", "cpu", "--opt", "ftz=maybe"),
    ("run", "{model}", "--random-inputs", "--opt", "cpu=skylake-avx512+"), ("run", "{missing}"),
    ("run", "{model}", "-i", "{model}"), ("bench", "{missing}"), ("bench", "{model}", "--vs", "tvm"),
    ("bench", "{model}", "--threads", "x"), ("help", "gpu"), ("dneuro", "curve", "{model}", "-o", "{tmp}/c",
                                                              "--points", "1"),
    ("dneuro", "fit", "{missing}"), ("--quiet", "compile", "{missing}"),
])
def test_every_command_answers_bad_input_with_one_line(irc, lenet_path, tmp_path, args):
    filled = [a.format(model=lenet_path, missing=tmp_path / "none.onnx", tmp=tmp_path) for a in args]
    assert_user_error(irc(*filled))
