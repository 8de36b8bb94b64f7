"""Which ops the CPU target has kernels for, and how each one is emitted.

A kernel emitter ``emit(k, node)`` writes the body of one LLVM function whose buffers are
``k.outs`` (the node's outputs) and ``k.ins`` (its inputs); ``k.state.ctx`` is the CpuContext.
``scratch(node, ctx)`` gives temporary bytes the kernel needs; ``inplace(node)`` lists inputs
the output may overwrite; ``view`` marks ops whose output is the input's bytes unchanged (no
code runs for them when the memory plan can alias the buffers); ``check(node)`` names what the
kernel cannot do for this node (a dtype or attribute combination it does not implement), or
returns None."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from irc.ir.graph import Node
from irc.targets.llvm.registry import register

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
    return register(KERNELS, "CPU", ops, lambda op, fn: KernelDef(op, fn, scratch, inplace, view, check))

