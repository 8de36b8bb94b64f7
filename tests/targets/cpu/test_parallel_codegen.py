"""Code generation in parts on several processes (irc/targets/cpu/parallel_codegen.py): the parts
link into the same computation as the whole module, a cached entry of several objects loads, and
a part that fails in its child falls back to compiling the module whole."""

from __future__ import annotations

import os

import numpy as np
import pytest

import irc
from irc.ir.builder import GraphBuilder
from irc.ir.interp import interpret
from irc.targets.cpu import jit_build, llvm_env, parallel_codegen


def net():
    """Several distinct kernels (GEMM, pooling, element-wise, softmax) with state the thread
    count global shares between parts."""
    rng = np.random.default_rng(0)
    b = GraphBuilder("parts")
    x = b.input("x", (2, 3, 12, 12))
    w = b.param("w", rng.standard_normal((8, 3, 3, 3)).astype(np.float32))
    h = b.op("relu", b.op("conv", x, w, pads=(1, 1, 1, 1)))
    h = b.op("max_pool", h, kernel_shape=(2, 2), strides=(2, 2))
    h = b.op("reshape", h, shape=(2, 8 * 6 * 6))
    h = b.op("matmul", h, b.param("v", rng.standard_normal((8 * 6 * 6, 10)).astype(np.float32)))
    return b.build(b.op("softmax", b.op("sigmoid", h), axis=1))


@pytest.fixture
def split(monkeypatch):
    """Every module is split, into three parts where it has that many kernels."""
    monkeypatch.setattr(parallel_codegen, "MIN_INSTRUCTIONS", 0)
    monkeypatch.setattr(parallel_codegen, "default_jobs", lambda: 3)


def check(m, g) -> None:
    x = np.random.default_rng(1).standard_normal(g.inputs[0].shape).astype(np.float32)
    np.testing.assert_allclose(m(x), interpret(g, [x])[0], rtol=1e-5, atol=1e-6)


def test_parts_compute_what_the_whole_module_does(split, tmp_path, monkeypatch):
    monkeypatch.setenv("IRC_CACHE_DIR", str(tmp_path))
    g = net()
    lowered = irc.compile(g, "cpu", threads=2, cache=False).graph
    spec = llvm_env.cpu_spec("host")
    tm = llvm_env.target_machine(spec, jit=True)
    _, objects = jit_build.compile_objects(lowered, "parts", 2, spec, tm)
    assert len(objects) == 3
    first = irc.compile(g, "cpu", threads=2)
    assert not first.executable.cached
    check(first, g)
    first.executable.set_threads(1)  # the thread count lives in one part, read by the others
    check(first, g)
    again = irc.compile(g, "cpu", threads=2)  # an entry of three objects loads
    assert again.executable.cached
    check(again, g)


def test_partition_keeps_each_kernel_with_what_it_calls(split):
    g = irc.compile(net(), "cpu", threads=2, cache=False).graph
    spec = llvm_env.cpu_spec("host")
    tm = llvm_env.target_machine(spec, jit=True)
    cg = jit_build._generate(g, "parts", 2, spec, tm)
    parts = parallel_codegen.partition(cg.module, cg.entry_name, 3)
    where = {f: k for k, p in enumerate(parts) for f in p}
    assert cg.entry_name in {f.name for f in parts[0]}
    defined = [f for f in cg.module.functions if f.blocks]
    assert sorted(where, key=lambda f: f.name) == sorted(defined, key=lambda f: f.name)
    for f in defined:
        if f.name != cg.entry_name:
            for callee in parallel_codegen._callees(f):
                assert where[callee] == where[f], (f.name, callee.name)


def test_a_failing_part_falls_back_to_the_whole_module(split, monkeypatch):
    parent = os.getpid()
    keep_only = parallel_codegen._keep_only

    def fail_in_children(*a, **k):
        if os.getpid() != parent:
            raise RuntimeError("a part failed")
        return keep_only(*a, **k)

    monkeypatch.setattr(parallel_codegen, "_keep_only", fail_in_children)
    g = net()
    m = irc.compile(g, "cpu", threads=1, cache=False)
    check(m, g)


@pytest.mark.parametrize("cores,load,jobs", [(8, 0.0, 8), (8, 1.0, 8), (8, 6.0, 3), (8, 20.0, 1), (2, 0.2, 2),
                                             (2, 2.5, 1), (32, 0.0, parallel_codegen.MAX_JOBS)])
def test_jobs_follow_the_free_cores(monkeypatch, cores, load, jobs):
    monkeypatch.setattr(parallel_codegen, "available_cores", lambda: cores)
    monkeypatch.setattr(os, "getloadavg", lambda: (load, load, load))
    assert parallel_codegen.default_jobs() == jobs
