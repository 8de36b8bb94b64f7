"""CUDA kernels, one module per op family; importing this package registers them all."""

from irc.targets.cuda.kernels import (  # noqa: F401
    backward,
    conv,
    elementwise,
    linalg,
    movement,
    pool,
    quant,
    reduce,
)
from irc.targets.cuda.kernels.registry import KERNELS, GpuKernelDef, cuda_kernel  # noqa: F401
