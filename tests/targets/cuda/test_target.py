"""The cuda target as users meet it without a GPU: compiling, the build directory the CLI writes,
and the errors (no pycuda / driver / GPU, unknown architecture, unsupported ops)."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest

import irc
from irc import zoo
from irc.cli.commands import main
from irc.errors import InputError, TargetError, UnsupportedOpError
from irc.ir import GraphBuilder
from irc.ir.types import DType, TensorType
from irc.targets.cuda.plan import LaunchPlan, check_plan
from tests.targets.cuda.support import gpu_count, requires_ptxas, train_convnet


@pytest.fixture(scope="module")
def lenet_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("m") / "lenet.onnx"
    onnx.save(zoo.build("lenet5", batch=2), str(path))
    return path


def test_cli_writes_ptx_plans_weights_and_readme(lenet_file, tmp_path, capsys):
    out = tmp_path / "build"
    assert main(["compile", str(lenet_file), "--target", "cuda", "-o", str(out)]) == 0
    for arch in ("sm_70", "sm_80", "sm_90"):
        ptx = (out / f"lenet5.{arch}.ptx").read_text()
        assert f".target {arch}" in ptx
        plan = LaunchPlan.from_json((out / f"lenet5.{arch}.plan.json").read_text())
        check_plan(plan)
        assert plan.arch == arch
        for name in plan.kernels:
            assert f".entry {name}(" in ptx
    weights = (out / "lenet5.weights.bin").read_bytes()
    assert len(weights) >= plan.weights_bytes
    readme = (out / "README.md").read_text()
    assert "arena" in readme and "lenet5.sm_80.ptx" in readme
    assert "wrote" in capsys.readouterr().err


@requires_ptxas
def test_cli_build_has_ptxas_report(lenet_file, tmp_path):
    out = tmp_path / "b"
    assert main(["compile", str(lenet_file), "--target", "cuda", "--opt", "arch=sm_80", "-o", str(out)]) == 0
    report = (out / "ptxas.txt").read_text()
    assert "sm_80" in report and "regs" in report
    assert not (out / "lenet5.sm_70.ptx").exists()


def test_cli_refuses_a_file_as_output_dir_and_leaves_it(lenet_file, tmp_path, capsys):
    f = tmp_path / "file"
    f.write_text("keep")
    assert main(["compile", str(lenet_file), "--target", "cuda", "-o", str(f)]) == 2
    assert f.read_text() == "keep"
    assert "not a directory" in capsys.readouterr().err


def test_weights_blob_follows_the_plan(tmp_path):
    g = irc.compile(zoo.build("mlp", batch=4), target="cuda", arch="sm_80")
    exe = g.executable
    exe.save(tmp_path / "b")
    blob = np.frombuffer((tmp_path / "b" / f"{exe.graph.name}.weights.bin").read_bytes(), np.uint8)
    for v, data in exe.graph.params.items():
        off = exe.memory.where(v).offset
        np.testing.assert_array_equal(blob[off:off + data.nbytes].view(data.dtype).reshape(data.shape), data)


@pytest.mark.skipif(gpu_count() > 0, reason="a GPU is present: this is the no-GPU error path")
def test_running_without_a_gpu_is_a_clear_target_error():
    c = irc.compile(zoo.build("lenet5", batch=1), target="cuda")  # compiling needs no GPU
    x = np.zeros((1, 1, 28, 28), np.float32)
    with pytest.raises(TargetError, match="pycuda|driver|GPU"):
        c(x)
    with pytest.raises(TargetError, match="pycuda|driver|GPU"):  # and again: nothing half-initialised
        c(x)


def test_cli_run_without_gpu_exits_2(lenet_file, capsys):
    if gpu_count() > 0:
        pytest.skip("a GPU is present")
    assert main(["run", str(lenet_file), "--target", "cuda", "--random-inputs"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("irc: error:") and ("pycuda" in err or "driver" in err or "GPU" in err)


def test_unknown_architecture_and_option():
    g = _relu_graph()
    with pytest.raises(InputError, match="unknown GPU architecture"):
        irc.compile(g, target="cuda", arch="sm_42")
    with pytest.raises(InputError, match="unknown option"):
        irc.compile(g, target="cuda", threads=4)


def test_several_architectures_by_list_or_string():
    g = _relu_graph()
    exe = irc.compile(g, target="cuda", arch="sm_80,sm_90").executable
    assert [a.name for a in exe.archs] == ["sm_80", "sm_90"]
    assert ".target sm_90" in exe.ptx("sm_90")
    exe = irc.compile(g, target="cuda", arch=["86"]).executable
    assert exe.archs[0].name == "sm_86"


def test_unsupported_ops_are_listed_with_their_nodes():
    b = GraphBuilder("t")
    x = b.input("x", TensorType((1, 2, 4, 4), DType.f32))
    y = b.op("resize", x, sizes=(1, 2, 8, 8), name="up")
    g = b.build(b.op("relu", y))
    with pytest.raises(UnsupportedOpError, match="resize .*not implemented.*nodes up"):
        irc.compile(g, target="cuda", arch="sm_80", passes=["dead_code"])


def test_f64_transcendentals_are_refused_by_name():
    b = GraphBuilder("t")
    x = b.input("x", TensorType((4,), DType.f64))
    g = b.build(b.op("exp", x))
    with pytest.raises(UnsupportedOpError, match="f64"):
        irc.compile(g, target="cuda", arch="sm_80")


@pytest.mark.slow
def test_emulated_run_equals_interpreter_on_lenet():
    m = zoo.build("lenet5", batch=1)
    x = np.random.default_rng(0).standard_normal((1, 1, 28, 28)).astype(np.float32)
    got = irc.compile(m, target="cuda", emulate=True)(x)
    want = irc.compile(m, target="interp")(x)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_plan_json_names_kernels_present_in_ptx(tmp_path):
    exe = irc.compile(_relu_graph(), target="cuda", arch="sm_80").executable
    d = json.loads(exe.plan.to_json())
    assert d["steps"][0]["kernel"] in exe.ptx()


def _relu_graph():
    b = GraphBuilder("relu")
    x = b.input("x", TensorType((8, 16), DType.f32))
    return b.build(b.op("relu", x))


@pytest.mark.slow
def test_training_steps_equal_the_cpu_target_emulated():
    """The train step graph (forward, loss, backward, SGD update) compiled for the GPU, run on
    the host emulation: the same losses as the CPU target, step for step."""
    cpu, mc = train_convnet("cpu")
    gpu, mg = train_convnet("cuda", emulate=True)
    np.testing.assert_allclose(gpu["loss"], cpu["loss"], rtol=1e-5)
    assert gpu["accuracy"] == cpu["accuracy"]
