"""The view op: ``reshape`` changes only the shape, so its output is its input's bytes.

Registered with ``view=True``: the memory plan then gives the output the input's buffer and no
code runs. The kernel below is what runs when the two cannot share (the input is a graph input
and the output a graph output, each in the caller's own buffer): one plain copy.
"""

from __future__ import annotations

from irc.ir.graph import Node
from irc.targets.cpu.kernel import KernelBuilder
from irc.targets.cpu.kernels.registry import cpu_kernel
from irc.targets.cpu.kernels.strided import emit_copy


@cpu_kernel("reshape", view=True)
def _reshape(k: KernelBuilder, node: Node) -> None:
    out, x = k.outs[0], k.ins[0]
    emit_copy(k, (out.size,), out, 0, (1,), x, 0, (1,))
