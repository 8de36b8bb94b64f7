"""Which ops the cuda target has kernels for, and how each is emitted.

An emitter ``emit(k, node) -> Launch`` writes the body of one kernel (``k`` a GpuKernel whose
buffers are the node's outputs then inputs) and says how to launch it. ``view`` marks ops whose
output is the input's bytes unchanged: no kernel runs when the memory plan can alias them.
``inplace(node)`` lists inputs the output may overwrite (the memory plan decides).
``check(node, arch)`` returns why a node cannot run on the GPU (or None): the legality check
reports every such node before any code is generated.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from irc.ir.graph import Node
from irc.targets.cuda.arch import Arch
from irc.targets.cuda.kernel import GpuKernel, Launch
from irc.targets.llvm.registry import register

Emit = Callable[[GpuKernel, Node], Launch]


@dataclass(frozen=True, slots=True)
class GpuKernelDef:
    op: str
    emit: Emit
    #: the family of the kernel (what the PTX tests enumerate): "elementwise", "gemm", ...
    kind: str
    view: bool = False
    inplace: Callable[[Node], list[int]] | None = None
    check: Callable[[Node, Arch], str | None] | None = None


KERNELS: dict[str, GpuKernelDef] = {}

#: Ops the cuda target refuses, and why (every op of the IR is in KERNELS or here).
UNSUPPORTED: dict[str, str] = {
    "if": "control flow: the inline_control pass (cuda pipeline) inlines it, never left for a kernel",
    "loop": "control flow: the inline_control pass (cuda pipeline) unrolls it or refuses it, never left for a kernel",
    "gemm_packed": "a CPU lowering (im2col_gemm pass), never in the cuda pipeline",
    "conv_gemm": "a CPU lowering (im2col_gemm pass), never in the cuda pipeline",
    "qgemm_packed": "a CPU lowering of qgemm, never in the cuda pipeline",
    "qconv_gemm": "a CPU lowering of qconv, never in the cuda pipeline",
    "pack_conv_weights": "a CPU lowering (im2col_gemm pass, run-time conv weights), never in the cuda pipeline",
    "conv_dot": "a CPU lowering of weight-gradient convolutions, never in the cuda pipeline",
    "conv_transpose_gemm": "a CPU lowering of strided conv_transpose, never in the cuda pipeline",
    "conv_winograd": "a CPU lowering of 3x3 convolutions (im2col_gemm pass), never in the cuda pipeline",
    "conv_integer": "ONNX ConvInteger is not implemented on the GPU yet (the quantize pass makes qconv instead)",
    "matmul_integer": "ONNX MatMulInteger is not implemented on the GPU yet (the quantize pass makes qgemm instead)",
    "resize": "resize is not implemented on the GPU yet",
    "attention": "made by the cpu pipeline's fuse_attention pass, never in the cuda pipeline",
    **{op: "not implemented on the GPU yet (the cpu target runs it)"
       for op in ("gather_nd", "scatter_nd", "scatter_elements", "cumsum", "trilu", "one_hot", "topk")},
}


def cuda_kernel(*ops: str, kind: str, view: bool = False, inplace=None, check=None):
    return register(KERNELS, "CUDA", ops, lambda op, fn: GpuKernelDef(op, fn, kind, view, inplace, check))

