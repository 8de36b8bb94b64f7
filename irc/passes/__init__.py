"""Graph passes. Importing this package registers all of them."""

from irc.passes.registry import PASSES, get_pass, register_pass  # noqa: F401
from irc.passes import dead_code, fold_constants, flush_denormals, fold_batchnorm, fuse, fuse_elementwise, im2col_gemm, calibrate, quantize, fold_qdq, int8_gemm, autodiff  # noqa: F401,E401,E501
