"""Kernel sharing and optimisation effort in the CPU code generator (irc/targets/cpu/codegen.py):
repeated blocks emit each distinct kernel once, kernels whose code coincides are emitted once,
sharing changes no result (bit for bit, inference and a train step), and only big kernels that
run multiply-add loops of their own keep LLVM's loop unrolling."""

from __future__ import annotations

import re

import numpy as np
import pytest

import irc
from irc import nn
from irc.ir.builder import GraphBuilder
from irc.ir.interp import interpret
from irc.targets.cpu import codegen, llvm_env

BLOCKS = 4


def repeated_blocks():
    """``BLOCKS`` residual blocks of one shape (conv 3x3, relu, add), each with its own weights."""
    rng = np.random.default_rng(0)
    b = GraphBuilder("blocks")
    h = x = b.input("x", (2, 8, 10, 10))
    for i in range(BLOCKS):
        w = b.param(f"w{i}", (0.2 * rng.standard_normal((8, 8, 3, 3))).astype(np.float32))
        h = b.op("add", b.op("relu", b.op("conv", h, w, pads=(1, 1, 1, 1))), h)
    return b.build(b.op("sigmoid", h)), x


def lowered(g):
    return irc.compile(g, "cpu", threads=2, cache=False).graph


def module_of(g, monkeypatch, share: bool):
    monkeypatch.setattr(codegen, "SHARE_KERNELS", share)
    spec = llvm_env.cpu_spec("host")
    return codegen.generate(g, prefix="m", threads=2, triple=llvm_env.target_machine(spec, jit=True).triple,
                            vector_bits=spec.vector_bits)


def kernels(cg) -> list[str]:
    """Names of the kernel functions the module defines (not their parallel bodies or helpers)."""
    return [f.name for f in cg.module.functions if f.blocks and re.fullmatch(r"k_\w+\.\d+", f.name)]


def node_key(n):
    return n.op, codegen._attr_key(n.attrs), tuple(v.type for v in n.outputs), tuple(v.type for v in n.inputs)


def test_repeated_blocks_emit_each_distinct_kernel_once(monkeypatch):
    g = lowered(repeated_blocks()[0])
    shared = module_of(g, monkeypatch, share=True)
    alone = module_of(g, monkeypatch, share=False)
    run = [n for i, n in enumerate(g.nodes) if i not in alone.plan.views]
    assert len(kernels(alone)) == len(run)
    distinct = {node_key(n) for n in run}
    # one kernel per distinct node (no two of these have the same code), not one per block
    assert len(kernels(shared)) == len(distinct) <= len(run) - (BLOCKS - 1)


def test_sharing_changes_no_result(monkeypatch):
    g, x = repeated_blocks()
    feed = np.random.default_rng(1).standard_normal(x.shape).astype(np.float32)
    monkeypatch.setattr(codegen, "SHARE_KERNELS", False)
    alone = irc.compile(g, "cpu", threads=2, cache=False)(feed)
    monkeypatch.setattr(codegen, "SHARE_KERNELS", True)
    shared = irc.compile(g, "cpu", threads=2, cache=False)(feed)
    np.testing.assert_array_equal(shared, alone)
    np.testing.assert_allclose(shared, interpret(g, [feed])[0], rtol=1e-4, atol=1e-5)


def same_code_graph():
    """Two multiplies of different shapes but as many elements: one loop over 576 elements."""
    b = GraphBuilder("same_code")
    a, c = b.input("a", (16, 36)), b.input("c", (16, 36))
    d, e = b.input("d", (24, 24)), b.input("e", (24, 24))
    return b.build(b.op("mul", a, c), b.op("mul", d, e))


def test_kernels_with_the_same_code_are_emitted_once(monkeypatch):
    g = same_code_graph()
    assert len([k for k in kernels(module_of(g, monkeypatch, share=False)) if k.startswith("k_mul")]) == 2
    assert len([k for k in kernels(module_of(g, monkeypatch, share=True)) if k.startswith("k_mul")]) == 1
    rng = np.random.default_rng(2)
    feeds = [rng.standard_normal(v.shape).astype(np.float32) for v in g.inputs]
    y1, y2 = irc.compile(g, "cpu", threads=2, cache=False)(*feeds)
    np.testing.assert_array_equal(y1, feeds[0] * feeds[1])  # one rounding per element: exact
    np.testing.assert_array_equal(y2, feeds[2] * feeds[3])


def test_only_big_multiply_add_loops_keep_unrolling(monkeypatch):
    """A direct convolution (its multiply-adds are its own loops) keeps unrolling; the relu after
    it and the packed GEMM (whose micro-kernels are functions apart) do not."""
    rng = np.random.default_rng(3)
    b = GraphBuilder("effort")
    x = b.input("x", (2, 16, 32, 32))
    w = b.param("w", (0.1 * rng.standard_normal((16, 16, 3, 3))).astype(np.float32))
    h = b.op("relu", b.op("conv", x, w, pads=(1, 1, 1, 1)))
    v = b.param("v", rng.standard_normal((1024, 64)).astype(np.float32))
    h = b.op("matmul", b.op("reshape", h, shape=(32, 1024)), v)
    g = b.build(h)
    compiled = irc.compile(g, "cpu", threads=2, cache=False, passes=[])
    efforts = {n.op: codegen.effort(n) for n in compiled.graph.nodes if n.op != "reshape"}
    assert efforts == {"conv": "full", "relu": "light", "matmul": "light"}
    cg = module_of(compiled.graph, monkeypatch, share=True)
    text = {f.name: str(f) for f in cg.module.functions if f.blocks}
    for name in kernels(cg):
        op = re.fullmatch(r"k_(\w+)\.\d+", name).group(1)
        body = "".join(t for n, t in text.items() if n == name or n.startswith(name + "."))
        assert ("!llvm.loop" in body) == (efforts[op] == "light"), (name, efforts[op])
    assert any(n.startswith("uk") and "!llvm.loop" not in t for n, t in text.items())  # GEMM micro-kernels
    feed = rng.standard_normal(x.shape).astype(np.float32)
    np.testing.assert_allclose(compiled(feed), interpret(g, [feed])[0], rtol=1e-4, atol=1e-4)


def test_small_contractions_are_light():
    b = GraphBuilder("small")
    x = b.input("x", (1, 2, 6, 6))
    y = b.op("conv", x, b.param("w", np.ones((2, 2, 3, 3), np.float32)))
    (node,) = [n for n in b.build(y).nodes if n.op == "conv"]
    assert codegen.effort(node) == "light"


def train_once(share: bool, monkeypatch) -> tuple[float, dict]:
    monkeypatch.setattr(codegen, "SHARE_KERNELS", share)
    model = nn.Sequential([nn.Dense(16, activation="relu") for _ in range(3)] + [nn.Dense(4, activation="softmax")],
                          input_shape=(16,), name="repeated")
    model.compile(nn.SGD(0.1, momentum=0.9), "cross_entropy", target="cpu", threads=2, cache=False)
    rng = np.random.default_rng(4)
    x = rng.standard_normal((8, 16)).astype(np.float32)
    y = np.eye(4, dtype=np.float32)[rng.integers(0, 4, 8)]
    logs = [model.train_on_batch(x, y) for _ in range(2)]
    return logs[-1]["loss"], model.get_weights()


@pytest.mark.slow
def test_train_step_of_repeated_layers_is_bit_identical_with_sharing(monkeypatch):
    loss_shared, w_shared = train_once(True, monkeypatch)
    loss_alone, w_alone = train_once(False, monkeypatch)
    assert loss_shared == loss_alone
    assert w_shared.keys() == w_alone.keys()
    for k in w_shared:
        np.testing.assert_array_equal(w_shared[k], w_alone[k], err_msg=k)
