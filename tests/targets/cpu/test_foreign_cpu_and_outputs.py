"""Code for a CPU this machine lacks is written, never run (an InputError instead of SIGILL), and
the shared library and header appear with ordinary permissions, the library first, with no
build folder or temporary file left behind, even when the build is killed."""

from __future__ import annotations

import os
import shutil
import signal
import stat
import tempfile
from pathlib import Path

import numpy as np
import pytest

import irc
from irc.errors import InputError
from irc.ir import GraphBuilder
from irc.ir.interp import interpret
from irc.targets.cpu import aot, llvm_env

needs_cc = pytest.mark.skipif(shutil.which("cc") is None, reason="no C compiler on the PATH")

#: CPUs with AVX-512 (and others) that a machine may lack
_WIDE = ("skylake-avx512", "x86-64-v4", "sapphirerapids")


def _graph():
    b = GraphBuilder("tiny")
    x = b.input("x", (2, 8))
    w = b.param("w", np.linspace(-1, 1, 8, dtype=np.float32))
    return b.build(b.op("relu", b.op("mul", x, w)))


def _foreign_cpu() -> str:
    """A CPU name whose instructions this machine lacks (skip where it has all of them)."""
    host = llvm_env.isa_features("host")
    for cpu in _WIDE:
        if llvm_env.isa_features(cpu) - host:
            return cpu
    pytest.skip("this machine has every instruction of " + ", ".join(_WIDE))


def test_isa_probe_reads_what_a_cpu_name_implies():
    assert llvm_env.isa_features("generic") == frozenset()
    v3 = llvm_env.isa_features("x86-64-v3")
    assert {"avx", "avx2", "fma", "bmi2", "f16c", "sse4.1"} <= v3 and "avx512f" not in v3
    assert {"avx512f", "avx512bw"} <= llvm_env.isa_features("x86-64-v4")
    assert llvm_env.isa_features("x86-64-v2") == {"sse4.1", "popcnt"}


def test_host_and_what_it_covers_run():
    llvm_env.check_runs_here("host")
    llvm_env.check_runs_here("generic")
    x = np.arange(16, dtype=np.float32).reshape(2, 8) - 8
    m = irc.compile(_graph(), target="cpu", cpu="x86-64-v2")  # every x86-64 still made has SSE4.1
    np.testing.assert_allclose(m(x), interpret(_graph(), [x])[0], rtol=1e-6)


def test_code_for_a_cpu_this_machine_lacks_is_refused_not_run():
    cpu = _foreign_cpu()
    m = irc.compile(_graph(), target="cpu", cpu=cpu)  # compiling is fine: it is running that is not
    with pytest.raises(InputError, match=rf"cpu='{cpu}' uses instructions this machine lacks \(.*avx512f"):
        m(np.zeros((2, 8), np.float32))


@needs_cc
def test_library_for_another_cpu_is_written_and_refused_when_run_here(tmp_path):
    cpu = _foreign_cpu()
    exe = irc.compile(_graph(), target="cpu", cpu=cpu).executable
    so, h = exe.save(tmp_path / "wide.so")
    lib = irc.load(so)
    assert "avx512f" in lib.meta["isa"]
    with pytest.raises(InputError, match="built for a CPU with .*avx512f.* which this machine lacks"):
        lib(np.zeros((2, 8), np.float32))


@needs_cc
@pytest.mark.parametrize("mask", [0o022, 0o077])
def test_library_and_header_modes_follow_the_umask(tmp_path, mask):
    old = os.umask(mask)
    try:
        so, h = irc.compile(_graph(), target="cpu").executable.save(tmp_path / "tiny.so")
    finally:
        os.umask(old)
    assert stat.S_IMODE(so.stat().st_mode) == 0o777 & ~mask
    assert stat.S_IMODE(h.stat().st_mode) == 0o666 & ~mask
    x = np.ones((2, 8), np.float32)
    np.testing.assert_allclose(irc.load(so)(x), interpret(_graph(), [x])[0], rtol=1e-6)


@needs_cc
def test_library_is_renamed_before_its_header(tmp_path, monkeypatch):
    order = []
    real = os.replace

    def replace(src, dst):
        order.append(Path(dst).name)
        real(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    irc.compile(_graph(), target="cpu").executable.save(tmp_path / "tiny.so")
    assert [name for name in order if name.startswith("tiny.")] == ["tiny.so", "tiny.h"]  # (and cache entries)


def _our_leftovers(folder: Path, build_root: Path) -> list[str]:
    hidden = [p.name for p in folder.iterdir() if p.name.startswith(".")]
    builds = [p.name for p in build_root.glob(f"irc-aot-{os.getpid()}-*")]
    return hidden + builds


@needs_cc
def test_a_terminated_compile_leaves_no_temporaries(tmp_path, monkeypatch, irc_cli):
    """SIGTERM in the middle of linking the library: the command ends with status 143, and neither
    the hidden temporary beside the target nor the build folder stays."""
    import onnx

    from irc.zoo import mlp

    model = tmp_path / "m.onnx"
    onnx.save(mlp(None, sizes=(8, 4), seed=1), model)
    build_root = tmp_path / "tmp"
    build_root.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(build_root))
    real_run = aot._run

    def run_then_terminated(cmd, cwd):
        real_run(cmd, cwd)
        if "-shared" in cmd:
            os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr(aot, "_run", run_then_terminated)
    status, _, err = irc_cli("compile", model, "--shape", "input=1x8", "-o", tmp_path / "out" / "m.so")
    assert status == 128 + signal.SIGTERM and "terminated" in err
    assert _our_leftovers(tmp_path / "out", build_root) == []
    assert not (tmp_path / "out" / "m.so").exists()
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # the command put the default back
