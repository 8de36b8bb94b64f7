"""Which ops the CPU target has kernels for, and how each one is emitted.

A kernel emitter ``emit(k, node)`` writes the body of one LLVM function whose buffers are
``k.outs`` (the node's outputs) and ``k.ins`` (its inputs); ``k.state.ctx`` is the CpuContext.
``scratch(node, ctx)`` gives temporary bytes the kernel needs; ``inplace(node)`` lists inputs the output may overwrite; ``view`` marks
ops whose output is the input's bytes unchanged (no code runs for them when the memory plan can
alias the buffers); ``check(node)`` names what the kernel cannot do for this node (a dtype or
attribute combination it does not implement), or returns None."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from irc.ir.graph import Node

Emit = Callable[..., None]


@dataclass(frozen=True, slots=True)
class CpuContext:
    """What kernels may specialise on besides the node: threads and the vector width."""

    threads: int = 1
    vector_bits: int = 512


@dataclass(frozen=True, slots=True)
class KernelDef:
    op: str
    emit: Emit
    scratch: Callable[[Node, CpuContext], int] | None = None
    inplace: Callable[[Node], list[int]] | None = None
    view: bool = False
    check: Callable[[Node], str | None] | None = None


KERNELS: dict[str, KernelDef] = {}


def cpu_kernel(*ops: str, scratch=None, inplace=None, view: bool = False, check=None):
    def wrap(fn: Emit) -> Emit:
        for op in ops:
            assert op not in KERNELS, f"CPU kernel for {op} defined twice"
            KERNELS[op] = KernelDef(op, fn, scratch, inplace, view, check)
        return fn

    return wrap


def same_shape_inputs(node: Node) -> list[int]:
    """Inputs an element-wise output may overwrite: those of exactly the output's type."""
    out = node.outputs[0].type
    return [i for i, v in enumerate(node.inputs) if v.type == out]
