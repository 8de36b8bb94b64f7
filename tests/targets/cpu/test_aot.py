"""Ahead-of-time build: a shared library + header that C programs and irc.load can use."""

import shutil
import subprocess
import sys

import numpy as np
import pytest

import irc
from irc.errors import InputError
from irc.ir import GraphBuilder
from irc.ir.interp import interpret

needs_cc = pytest.mark.skipif(shutil.which("cc") is None, reason="no C compiler on the PATH")


def _graph():
    b = GraphBuilder("tiny")
    x = b.input("x", (2, 3))
    w = b.param("w", np.array([0.5, -1.0, 2.0], np.float32))
    y = b.op("mul", x, w)
    return b.build(b.op("relu", y), b.op("sigmoid", y))


@needs_cc
def test_c_program_calls_the_library(tmp_path):
    g = _graph()
    so, h = irc.compile(g, target="cpu").executable.save(tmp_path / "tiny.so")
    assert so.exists() and h.exists()
    src = tmp_path / "main.c"
    src.write_text(r'''
#include <stdio.h>
#include "tiny.h"
int main(void) {
    float x[TINY_INPUT0_SIZE] = {1, 2, 3, -4, 5, -6};
    tiny_output0_t y0[TINY_OUTPUT0_SIZE];
    tiny_output1_t y1[TINY_OUTPUT1_SIZE];
    const void *in[TINY_NUM_INPUTS] = {x};
    void *out[TINY_NUM_OUTPUTS] = {y0, y1};
    void *ws = tiny_alloc_workspace();
    if (!ws || tiny_run(in, out, ws) != 0) return 1;
    tiny_set_num_threads(2);
    if (tiny_run(in, out, ws) != 0) return 1;
    for (int i = 0; i < TINY_OUTPUT0_SIZE; i++) printf("%.9g %.9g\n", y0[i], y1[i]);
    tiny_free_workspace(ws);
    return 0;
}
''')
    exe = tmp_path / "main"
    subprocess.run(["cc", "-O1", "-o", str(exe), str(src), f"-I{tmp_path}", f"-L{tmp_path}", "-l:tiny.so",
                    f"-Wl,-rpath,{tmp_path}"], check=True)
    out = subprocess.run([str(exe)], check=True, capture_output=True, text=True).stdout.split()
    got = np.array(out, np.float64).reshape(6, 2)
    x = np.array([1, 2, 3, -4, 5, -6], np.float32).reshape(2, 3)
    want = interpret(g, [x])
    np.testing.assert_allclose(got[:, 0], want[0].ravel(), rtol=1e-6)
    np.testing.assert_allclose(got[:, 1], want[1].ravel(), rtol=1e-6)


@needs_cc
def test_irc_load_round_trip(tmp_path):
    g = _graph()
    irc.compile(g, target="cpu").executable.save(tmp_path / "m.so")
    m = irc.load(tmp_path / "m.so")
    x = np.random.default_rng(0).standard_normal((2, 3)).astype(np.float32)
    for a, e in zip(m(x), interpret(g, [x])):
        np.testing.assert_allclose(a, e, rtol=1e-6)
    assert m.input_names == ["x"]
    with pytest.raises(InputError, match="shape"):
        m(np.zeros((3, 3), np.float32))


@pytest.mark.slow
@needs_cc
def test_conv_model_library_runs_its_own_thread_pool(tmp_path):
    """LeNet-5 (im2col convs, packed GEMMs, memsets in kernels) as a library at 2 threads: its
    embedded pool runs the parallel loops, and the outputs match the JIT-compiled model."""
    import irc.zoo

    model = irc.zoo.build("lenet5", batch=4)
    compiled = irc.compile(model, target="cpu", threads=2)
    compiled.executable.save(tmp_path / "lenet.so")
    lib = irc.load(tmp_path / "lenet.so")
    lib.set_threads(2)
    x = np.random.default_rng(3).standard_normal((4, 1, 28, 28)).astype(np.float32)
    for _ in range(3):
        np.testing.assert_allclose(lib(x), compiled(x), rtol=1e-6, atol=1e-7)


@pytest.mark.slow
@needs_cc
def test_weights_are_embedded(tmp_path):
    """The library works after the Python objects that built it are gone (no pointer to them)."""
    g = _graph()
    irc.compile(g, target="cpu").executable.save(tmp_path / "e.so")
    del g
    code = ("import irc, numpy as np; m = irc.load(r'%s'); "
            "print(m(np.ones((2, 3), np.float32))[0].ravel().tolist())") % (tmp_path / "e.so")
    out = subprocess.run(["python", "-c", code], check=True, capture_output=True, text=True).stdout
    assert out.strip() == "[0.5, 0.0, 2.0, 0.5, 0.0, 2.0]"


def test_output_path_must_be_a_shared_library(tmp_path):
    with pytest.raises(InputError, match="ending in .so"):
        irc.compile(_graph(), target="cpu").executable.save(tmp_path / "m.bin")
    assert list(tmp_path.iterdir()) == []


def test_load_refuses_other_files(tmp_path):
    p = tmp_path / "x.so"
    p.write_bytes(b"not a library")
    with pytest.raises(InputError, match="not a loadable shared library"):
        irc.load(p)
    with pytest.raises(InputError, match="no such file"):
        irc.load(tmp_path / "missing.so")


@needs_cc
@pytest.mark.parametrize("keep", [5000, 64, 20])
def test_truncated_library_is_an_error_not_a_crash(tmp_path, keep):
    """A library cut short (a copy interrupted, a full disk) would be mapped past its end by the
    loader (SIGBUS); it is refused first. Run in a child so that a crash fails this test only."""
    irc.compile(_graph(), target="cpu").executable.save(tmp_path / "m.so")
    cut = tmp_path / "cut.so"
    cut.write_bytes((tmp_path / "m.so").read_bytes()[:keep])
    code = f"import irc\ntry:\n    irc.load(r'{cut}')\nexcept irc.IRCError as e:\n    print(e)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "is not a loadable shared library" in out.stdout
    why = out.stdout.split("shared library: ", 1)[1]
    assert why.startswith("truncated") if keep >= 64 else why.startswith("not an ELF file")
