"""One test case per op the cuda target has a kernel for (plus variants that take other kernel
paths: thin and tiled GEMMs, tensor cores, depthwise, groups, padding modes...). The same table
feeds the PTX tests (every case assembled by ptxas for each architecture), the host-emulation
tests (every case against the interpreter) and the GPU tests."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from irc.ir import Graph, GraphBuilder, parse_graph
from irc.ir.ops.quant import REQUANT_ATTRS  # noqa: F401  (the op exists: quantized cases below)
from irc.ir.types import DType, TensorType

F32, F16, BF16, I8, U8, I32, I64 = DType.f32, DType.f16, DType.bf16, DType.i8, DType.u8, DType.i32, DType.i64


@dataclass
class Case:
    id: str
    op: str
    inputs: list  # TensorType per input; a numpy array makes it a parameter
    attrs: dict = field(default_factory=dict)
    #: how float inputs are drawn: "normal", "positive" (for log, sqrt...), "small" (exp...)
    dist: str = "normal"
    rtol: float = 1e-4
    atol: float = 1e-5

    def add_to(self, b: GraphBuilder, prefix: str = "", node_name: str | None = None) -> tuple:
        """Adds the case's inputs (``{prefix}x{i}``; a numpy array becomes parameter ``{prefix}p{i}``)
        and its node to ``b``; returns the node's outputs."""
        vals = [b.param(f"{prefix}p{i}", t) if isinstance(t, np.ndarray) else b.input(f"{prefix}x{i}", t)
                for i, t in enumerate(self.inputs)]
        return b.add_node(self.op, vals, self.attrs, node_name=node_name)

    def graph(self) -> Graph:
        b = GraphBuilder(f"case_{self.id}")
        return b.build(*self.add_to(b))

    def data(self, g: Graph, seed: int = 0) -> list[np.ndarray]:
        rng = np.random.default_rng(seed)
        out = []
        for v in g.inputs:
            dt = v.dtype
            if dt is DType.bool:
                out.append(rng.random(v.shape) > 0.5)
            elif dt.is_int:
                lo, hi = (0, 255) if dt is U8 else (-128, 127) if dt is I8 else (-5, 6)
                out.append(rng.integers(lo, hi, v.shape).astype(dt.numpy))
            else:
                x = rng.standard_normal(v.shape)
                if self.dist == "ties":
                    x = np.round(x)
                elif self.dist == "positive":
                    x = np.abs(x) + 0.05
                elif self.dist == "small":
                    x = x * 0.5
                else:
                    x = x * 2
                out.append(x.astype(dt.numpy))
        return out


def combined_graph(cases) -> Graph:
    """Every case's node in one graph (inputs and parameters renamed per case), so that one
    module per architecture holds every kernel and one ptxas run checks them all."""
    b = GraphBuilder("all_kernels")
    outs = []
    for c in cases:
        outs.extend(c.add_to(b, prefix=f"{c.id}_", node_name=c.id))
    return b.build(*outs)


def T(*shape, dt=F32) -> TensorType:
    return TensorType(tuple(shape), dt)


def W(*shape, dt=F32, seed=1) -> np.ndarray:
    rng = np.random.default_rng(seed + sum(shape))
    if dt is I8:
        return rng.integers(-127, 128, shape).astype(np.int8)
    if dt is I32:
        return rng.integers(-500, 500, shape).astype(np.int32)
    return rng.standard_normal(shape).astype(dt.numpy)


def _conv_attrs(n=2, s=1, p=1, d=1, g=1, **kw):
    return dict(strides=(s,) * n, pads=(p,) * (2 * n), dilations=(d,) * n, group=g, **kw)


def _req(n, *, ydt=U8, zp=0, **kw):
    """Requantize parameters for n channels, scaled so that outputs spread over the range."""
    return dict(y_zero_point=zp, y_dtype=ydt, y_min=0 if ydt is U8 else -128, y_max=255 if ydt is U8 else 127, **kw)


def _qparams(n, shift=17):
    mult = np.full((n,), 1 << 30, np.int32) + np.arange(n, dtype=np.int32) * 997
    return [W(n, dt=I32), mult, np.full((n,), shift, np.int32)]


UNARY = ["neg", "abs", "exp", "erf", "reciprocal", "floor", "ceil", "round", "sign", "sin", "cos", "tanh",
         "sigmoid", "softplus", "softsign", "relu", "elu", "selu", "hard_sigmoid", "hard_swish", "identity",
         "gelu", "gelu_tanh", "silu"]
BINARY = ["add", "sub", "mul", "div", "max", "min", "prelu", "equal", "less", "less_equal", "greater",
          "greater_equal"]

CASES: list[Case] = (
    [Case(op, op, [T(3, 5, 7)], dist="small" if op == "exp" else "normal") for op in UNARY]
    + [Case("log", "log", [T(3, 5, 7)], dist="positive"), Case("sqrt", "sqrt", [T(4, 9)], dist="positive"),
       Case("pow", "pow", [T(3, 4), T(4)], dist="positive", rtol=1e-3),
       Case("leaky_relu", "leaky_relu", [T(4, 9)], {"alpha": 0.2}),
       Case("clip", "clip", [T(4, 9)], {"min": -0.5, "max": 1.0}),
       Case("cast_f32_i32", "cast", [T(4, 9)], {"to": I32}),
       Case("cast_f32_bf16", "cast", [T(4, 9)], {"to": BF16}),
       Case("not", "not", [T(4, 9, dt=DType.bool)]),
       Case("isnan", "isnan", [T(4, 9)]), Case("isinf", "isinf", [T(4, 9)], {"detect_negative": 0}),
       Case("mod", "mod", [T(3, 4), T(4)], {"fmod": 0}, dist="positive"),
       Case("mod_i32", "mod", [T(3, 4, dt=I32), T(4, dt=I32)], {"fmod": 1})]
    + [Case(op, op, [T(2, 3, 4, 5), T(3, 1, 5)]) for op in BINARY]
    + [Case(op, op, [T(4, 5, dt=DType.bool), T(5, dt=DType.bool)]) for op in ("and", "or", "xor")]
    + [Case("add_i32", "add", [T(4, 5, dt=I32), T(4, 5, dt=I32)]),
       Case("div_i64", "div", [T(4, 5, dt=I64), T(1, 5, dt=I64)]),
       Case("where", "where", [T(3, 4, dt=DType.bool), T(3, 4), T(1, 4)]),
       Case("elementwise_chain", "elementwise_chain", [T(3, 4, 5), T(4, 1)],
            {"body": parse_graph("graph chain(%x0: f32[3,4,5], %x1: f32[4,1]) {\n  %1: f32[3,4,5] = add(%x0, %x1)\n"
                                 "  %2: f32[3,4,5] = sigmoid(%1)\n  %3: f32[3,4,5] = mul(%2, %x0)\n  return %3\n}\n")})]
    # products: thin tile, tiled, ONNX gemm with transposes, batched matmul, tensor cores
    + [Case("gemm_fused_thin", "gemm_fused", [T(3, 70), W(70, 50), W(50)], {"act": "relu"}, rtol=1e-4, atol=1e-4),
       Case("gemm_fused_tiled", "gemm_fused", [T(40, 33), W(33, 70), W(70), T(40, 70)], {"act": "hard_swish"},
            atol=1e-4),
       Case("gemm", "gemm", [T(20, 30), T(25, 20), T(1, 25)],
            {"trans_a": 1, "trans_b": 1, "alpha": 0.5, "beta": 2.0, "act": "relu"}, atol=1e-4),
       Case("matmul", "matmul", [T(3, 1, 17, 20), T(4, 20, 9)], atol=1e-4),
       Case("matmul_vec", "matmul", [T(20), T(4, 20, 9)], atol=1e-4),
       Case("gemm_fused_bf16", "gemm_fused", [T(24, 40, dt=BF16), W(40, 50, dt=BF16), W(50, dt=BF16)],
            {"act": "relu"}, rtol=2e-2, atol=0.15),
       Case("gemm_fused_f16", "gemm_fused", [T(24, 40, dt=F16), W(40, 72, dt=F16)], {}, rtol=1e-2, atol=0.05)]
    # convolutions: implicit GEMM (groups, stride, dilation, 1-D), depthwise direct, tensor cores
    + [Case("conv_fused", "conv_fused", [T(2, 5, 9, 11), W(7, 5, 3, 3), W(7)], _conv_attrs(act="relu"), atol=1e-4),
       Case("conv_fused_group_res", "conv_fused", [T(2, 6, 7, 7), W(8, 3, 3, 3), W(8), T(2, 8, 7, 7)],
            dict(strides=(1, 1), pads=(2, 1, 2, 1), dilations=(2, 1), group=2, act="none"), atol=1e-4),
       Case("conv_stride2", "conv", [T(1, 4, 10, 10), W(6, 4, 3, 3)],
            dict(strides=(2, 2), pads=(0, 1, 1, 0), dilations=(1, 1), group=1), atol=1e-4),
       Case("conv_1d", "conv", [T(2, 3, 17), W(5, 3, 4), W(5)], _conv_attrs(n=1, s=2, p=1), atol=1e-4),
       Case("conv_depthwise", "conv_fused", [T(2, 6, 7, 8), W(12, 1, 3, 3), W(12)],
            _conv_attrs(s=2, g=6, act="clip", act_alpha=0.0, act_beta=6.0), atol=1e-4),
       Case("conv_fused_bf16", "conv_fused", [T(1, 4, 5, 5, dt=BF16), W(16, 4, 3, 3, dt=BF16), W(16, dt=BF16)],
            _conv_attrs(act="relu"), rtol=2e-2, atol=0.2)]
    # pooling
    + [Case("max_pool", "max_pool", [T(2, 3, 9, 9)], {"kernel_shape": (3, 3), "strides": (2, 2), "pads": (1, 1, 1, 1)}),
       Case("max_pool_ceil_dil", "max_pool", [T(1, 2, 10, 9)],
            {"kernel_shape": (3, 2), "strides": (2, 2), "ceil_mode": 1, "dilations": (1, 2)}),
       Case("max_pool_u8", "max_pool", [T(1, 2, 5, 5, dt=U8)], {"kernel_shape": (2, 2)}),
       Case("average_pool", "average_pool", [T(2, 3, 9, 9)],
            {"kernel_shape": (3, 3), "strides": (2, 2), "pads": (1, 1, 1, 1), "count_include_pad": 1, "ceil_mode": 1}),
       Case("average_pool_1d", "average_pool", [T(1, 2, 12)], {"kernel_shape": (9,)}),
       Case("global_average_pool", "global_average_pool", [T(2, 3, 10, 10)]),
       Case("global_max_pool", "global_max_pool", [T(2, 3, 4, 4)])]
    # reductions and normalizations (long rows take the warp-per-row path)
    + [Case(f"{op}_warp", op, [T(3, 70, 5)], {"axes": (1,), "keepdims": 1}, dist="positive" if "log" in op else "normal",
            atol=1e-4)
       for op in ("reduce_sum", "reduce_mean", "reduce_max", "reduce_min", "reduce_l1", "reduce_l2",
                  "reduce_sum_square", "reduce_log_sum", "reduce_log_sum_exp")]
    + [Case("reduce_prod", "reduce_prod", [T(4, 3, 6)], {"axes": (0, 2), "keepdims": 0}, dist="small"),
       Case("reduce_sum_i32", "reduce_sum", [T(5, 100, dt=I32)], {"axes": (1,)}),
       Case("reduce_mean_i64", "reduce_mean", [T(5, 7, dt=I64)], {"axes": (1,)}),
       Case("argmax", "argmax", [T(3, 90, 4)], {"axis": 1}),
       Case("argmin_last", "argmin", [T(3, 9, 4, dt=I32)], {"axis": 2, "select_last_index": 1, "keepdims": 0}),
       Case("softmax_warp", "softmax", [T(4, 100)], {"axis": 1}),
       Case("softmax_axis", "softmax", [T(2, 5, 3)], {"axis": 1}),
       Case("log_softmax", "log_softmax", [T(2, 70, 3)], {"axis": 1}),
       Case("layer_norm", "layer_norm", [T(3, 4, 40), W(40), W(40)], {"axis": -1}, atol=1e-4),
       Case("layer_norm_2axes", "layer_norm", [T(3, 4, 5), W(4, 5)], {"axis": 1}, atol=1e-4),
       Case("instance_norm", "instance_norm", [T(2, 3, 9, 9), W(3), W(3)], atol=1e-4),
       Case("batch_norm", "batch_norm", [T(2, 3, 4, 4), W(3), W(3), W(3), np.abs(W(3)) + 0.5]),
       Case("lrn", "lrn", [T(2, 7, 3, 3)], {"size": 3})]
    # data movement
    + [Case("transpose", "transpose", [T(2, 3, 4, 5)], {"perm": (2, 0, 3, 1)}),
       Case("slice", "slice", [T(6, 7, 8)], {"starts": (1, -1, 0), "ends": (5, -8, 8), "axes": (0, 1, 2),
                                             "steps": (2, -2, 3)}),
       Case("pad_constant", "pad", [T(2, 3, 4)], {"pads": (0, 1, -1, 1, 2, 2), "value": 1.5}),
       Case("pad_reflect", "pad", [T(2, 3, 4)], {"pads": (1, 2, 3, 1, 2, 3), "mode": "reflect"}),
       Case("pad_edge", "pad", [T(2, 3, 4)], {"pads": (1, 2, 3, 1, 2, 3), "mode": "edge"}),
       Case("pad_wrap", "pad", [T(2, 3, 4)], {"pads": (1, 2, 3, 1, 2, 3), "mode": "wrap"}),
       Case("concat", "concat", [T(2, 3, 4), T(2, 1, 4), T(2, 5, 4)], {"axis": 1}),
       Case("split", "split", [T(2, 9, 4)], {"axis": 1, "sizes": (2, 3, 4)}),
       Case("expand", "expand", [T(3, 1, 5)], {"shape": (2, 3, 4, 5)}),
       Case("tile", "tile", [T(2, 3)], {"repeats": (2, 3)}),
       Case("reshape", "reshape", [T(2, 3, 4)], {"shape": (6, 4)}),
       Case("gather", "gather", [T(5, 4, 3), T(2, 3, dt=I64)], {"axis": 1}),
       Case("gather_elements", "gather_elements", [T(5, 4, 3), T(5, 2, 3, dt=I32)], {"axis": 1})]
    # int8
    + [Case("quantize_linear", "quantize_linear", [T(2, 3, 4), np.array([0.02, 0.05, 0.1], np.float32),
                                                   np.array([3, 128, 250], np.uint8)], {"axis": 1}),
       Case("dequantize_linear", "dequantize_linear", [T(2, 3, 4, dt=I8), np.array(0.05, np.float32)]),
       Case("qgemm_u8_zp", "qgemm", [T(20, 37, dt=U8), W(37, 70, dt=I8), *_qparams(70)],
            _req(70, zp=9, a_zero_point=9)),
       Case("qgemm_thin_i8", "qgemm", [T(3, 64, dt=I8), W(64, 40, dt=I8), *_qparams(40, shift=16)],
            _req(40, ydt=I8)),
       Case("qconv_u8", "qconv", [T(1, 6, 6, 6, dt=U8), W(16, 6, 5, 5, dt=I8), *_qparams(16, shift=19)],
            _req(16, zp=3, **_conv_attrs(p=1), x_zero_point=120)),
       Case("qconv_depthwise_i8", "qconv", [T(1, 4, 5, 5, dt=I8), W(4, 1, 3, 3, dt=I8), *_qparams(4, shift=12)],
            _req(4, ydt=I8, **_conv_attrs(g=4))),
       Case("qadd", "qadd", [T(3, 17, dt=U8), T(3, 17, dt=U8)],
            _req(1, zp=5, a_zero_point=10, b_zero_point=3, a_mult=16384, b_mult=9000, multiplier=1 << 30, shift=15)),
       Case("qglobal_average_pool", "qglobal_average_pool", [T(2, 3, 9, 9, dt=U8)],
            _req(1, zp=2, x_zero_point=7, multiplier=1 << 30, shift=37))]
)


def case_ops() -> set[str]:
    return {c.op for c in CASES}

CASES += [
    Case("conv_transpose", "conv_transpose", [T(2, 4, 5, 5), W(4, 3, 3, 3), W(6)],
         dict(strides=(2, 2), pads=(1, 0, 1, 1), dilations=(1, 1), group=2, output_padding=(1, 0)), atol=1e-4),
    Case("conv_transpose_1d", "conv_transpose", [T(1, 3, 7), W(3, 2, 4)],
         dict(strides=(3,), pads=(0, 2), dilations=(2,), group=1, output_padding=()), atol=1e-4),
    Case("max_pool_grad", "max_pool_grad", [T(2, 3, 9, 9), T(2, 3, 5, 5)],
         {"kernel_shape": (3, 3), "strides": (2, 2), "pads": (1, 1, 1, 1)}),
    Case("max_pool_grad_ties", "max_pool_grad", [T(1, 2, 6, 6, dt=F32), T(1, 2, 3, 3)], {"kernel_shape": (2, 2),
         "strides": (2, 2)}, dist="ties"),
]
