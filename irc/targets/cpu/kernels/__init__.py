"""CPU kernels, one module per op family; importing this package registers them all."""

from irc.targets.cpu.kernels.registry import KERNELS, KernelDef, cpu_kernel  # noqa: F401
from irc.targets.cpu.kernels import elementwise, packed, norm, views, movement, pad, indexing, reduce, argreduce, conv, pool, quant, grad, linalg, resize  # noqa: F401,E401
