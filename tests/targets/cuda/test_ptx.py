"""PTX for every kernel the cuda target has, assembled by ptxas for sm_70, sm_80 and sm_90.

CUDA 13's ptxas no longer generates sm_70 code; PTX written for ``.target sm_70`` is then
assembled for the oldest architecture that ptxas has (sm_75), which still rejects any instruction
sm_70 lacks (the test of the sm_70 PTX is that check)."""

from __future__ import annotations

import functools

import pytest

from irc.ir import GraphBuilder
from irc.ir.types import DType, TensorType
from irc.targets.cuda import ptx as ptxmod
from irc.targets.cuda.arch import get_arch
from irc.targets.cuda.codegen import generate
from irc.targets.cuda.kernels import KERNELS
from tests.support.marks import params
from tests.targets.cuda.cases import CASES, combined_graph
from tests.targets.cuda.support import ARCHS, requires_ptxas


@functools.cache
def all_kernels(arch: str):
    return generate(combined_graph(CASES), get_arch(arch))


#: sm_80 takes every path (tensor cores, dp4a, SIMT tiles); the other architectures are slow
@pytest.mark.parametrize("arch", params(ARCHS, fast={"sm_80"}))
def test_ptx_for_every_kernel_kind_is_produced(arch):
    code = all_kernels(arch)
    a = get_arch(arch)
    assert f".target {arch}" in code.ptx
    assert f".version {a.ptx[0]}.{a.ptx[1]}" in code.ptx
    # every op of every case has a kernel entry in the PTX, and every kind is present
    assert {s.op for s in code.plan.steps} == {c.op for c in CASES} - {"reshape"} | (
        {"reshape"} if any(s.op == "reshape" for s in code.plan.steps) else set())
    for name in code.plan.kernels:
        assert f".entry {name}(" in code.ptx
    assert set(code.kinds.values()) == {d.kind for d in KERNELS.values()}


@requires_ptxas
@pytest.mark.parametrize("arch", params(ARCHS, fast={"sm_80"}))
def test_every_kernel_assembles(arch):
    code = all_kernels(arch)
    r = ptxmod.ptxas(code.ptx, code.arch)
    assert set(r.kernels) == set(code.plan.kernels)
    for name, rep in r.kernels.items():
        assert rep.registers <= 255, name
        assert rep.shared_bytes <= 48 * 1024, name


def _gemm_graph(m, n, k, dt):
    b = GraphBuilder("gemm")
    a = b.input("a", TensorType((m, k), dt))
    w = b.input("w", TensorType((k, n), dt))
    (o,) = b.add_node("gemm_fused", [a, w], {"act": "relu"})
    return b.build(o)


@requires_ptxas
@pytest.mark.parametrize("arch,dt", params([(a, DType.f32) for a in ARCHS] + [("sm_80", DType.bf16), ("sm_90", DType.bf16)],
                                            fast={"sm_80-f32"}))
def test_large_gemm_does_not_spill(arch, dt):
    """The 4096^3 GEMM's kernel (the largest tile) keeps its micro-tile in registers."""
    code = generate(_gemm_graph(4096, 4096, 4096, dt), get_arch(arch))
    (rep,) = ptxmod.ptxas(code.ptx, code.arch).kernels.values()
    assert rep.spill_stores == 0 and rep.spill_loads == 0
    assert code.plan.steps[0].block == (256, 1, 1)
    assert code.plan.steps[0].grid == (32, 32, 1)


def test_tensor_cores_from_sm80_only():
    g = _gemm_graph(256, 256, 256, DType.bf16)
    assert "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32" in generate(g, get_arch("sm_80")).ptx
    assert "mma.sync" not in generate(g, get_arch("sm_70")).ptx
    assert "mma.sync" not in generate(_gemm_graph(256, 256, 256, DType.f32), get_arch("sm_90")).ptx


def test_int8_products_use_dp4a():
    ptx = all_kernels("sm_80").ptx
    assert "dp4a.s32.u32" in ptx and "dp4a.u32.s32" in ptx


def test_ftz_option_sets_flush_to_zero():
    g = _gemm_graph(64, 64, 64, DType.f32)
    assert ".ftz.f32" in generate(g, get_arch("sm_80"), ftz=True).ptx
    assert ".ftz.f32" not in generate(g, get_arch("sm_80"), ftz=False).ptx


@pytest.mark.slow  # (generates the sm_90 module, which only slow tests share)
def test_device_math_is_defined_in_the_module():
    """exp, log, sin... are irc's own device functions: the PTX calls nothing external."""
    ptx = all_kernels("sm_90").ptx
    assert ".extern" not in ptx


def test_every_op_has_a_kernel_or_a_stated_refusal():
    from irc.ir.ops.registry import REGISTRY
    from irc.targets.cuda.kernels.registry import UNSUPPORTED

    assert set(REGISTRY) <= set(KERNELS) | set(UNSUPPORTED), sorted(set(REGISTRY) - set(KERNELS) - set(UNSUPPORTED))
    assert not set(KERNELS) & set(UNSUPPORTED)
    assert {c.op for c in CASES} == set(KERNELS)  # and every kernel has a test case
