"""CPU kernels, one module per op family; importing this package registers them all."""

from irc.targets.cpu.kernels import (  # noqa: F401,E401
    argreduce,
    attention,
    conv,
    conv_dot,
    conv_transpose_gemm,
    elementwise,
    grad,
    indexing,
    linalg,
    masks,
    movement,
    norm,
    packed,
    pad,
    pool,
    quant,
    reduce,
    resize,
    scan,
    scatter,
    topk,
    views,
    winograd,
)
from irc.targets.cpu.kernels.registry import KERNELS, KernelDef, cpu_kernel  # noqa: F401
