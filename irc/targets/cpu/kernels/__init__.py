"""CPU kernels, one module per op family; importing this package registers them all."""

from irc.targets.cpu.kernels import (  # noqa: F401,E401
    argreduce,
    conv,
    elementwise,
    grad,
    indexing,
    linalg,
    movement,
    norm,
    packed,
    pad,
    pool,
    quant,
    reduce,
    resize,
    views,
)
from irc.targets.cpu.kernels.registry import KERNELS, KernelDef, cpu_kernel  # noqa: F401
