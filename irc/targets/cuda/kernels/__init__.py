"""CUDA kernels, one module per op family; importing this package registers them all."""

from irc.targets.cuda.kernels.registry import KERNELS, GpuKernelDef, cuda_kernel  # noqa: F401
from irc.targets.cuda.kernels import elementwise  # noqa: F401,E401
from irc.targets.cuda.kernels import linalg, conv, reduce, pool, movement, quant  # noqa: F401,E401,E402
