"""The CPU target's own lowering: the ops only it makes and the passes that make them.

- ``ops``: gemm_packed, conv_gemm, qgemm_packed, qconv_gemm (packed-weight GEMMs) and their
  packing helpers; pack_conv_weights (run-time weights packed), conv_dot (weight-gradient
  convolutions), conv_transpose_gemm (GEMM + col2im);
- ``im2col_gemm``: conv_fused / conv_transpose / gemm_fused onto the packed f32 GEMM engine;
- ``int8_gemm``: qconv / qgemm onto the u8 x s8 -> s32 GEMM of this CPU;
- ``winograd``: conv_winograd (3x3 stride-1 convolutions by Winograd F(m x m, 3 x 3)), chosen
  in im2col_gemm by ``winograd_rule``'s cost model.

Importing this package registers the ops and the passes (the CPU target imports it).
"""

from irc.targets.cpu.lowering import im2col_gemm, int8_gemm, ops, winograd  # noqa: F401
