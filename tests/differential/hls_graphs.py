"""Random graphs the FPGA target's HLS flow maps, so that a long run compares graphs rather than
counts refusals.

The flow (irc/targets/fpga_hls/kernels.py) builds one kernel per fused group: ``gemm_fused`` and
``conv_fused`` (from ``fuse``), pooling, global pooling, softmax, arg-max, chains of the
element-wise ops in ``ELEMENTWISE_OPS``, and reshape as a view; every tensor is f32. So this
generator draws from the general one's ops that map as they are, and replaces three whose
general form does not:

- ``matmul`` only of rank-2 operands (the fuse pass turns only that into ``gemm_fused``);
- ``gemm`` with no activation attribute and C absent or a row vector (a bias): the forms the fuse
  pass folds; an activation reaches the kernel's epilogue as a separate op instead;
- ``batch_norm`` only right after a convolution (fold_batchnorm merges it there; a free-standing
  one has no kernel).

Left out, with the reason the flow gives: erf, softsign, selu, floor, sin (no C++ expression),
where (a bool tensor), reductions, log_softmax, layer_norm, transpose, concat, slice and pad (no
kernel kind).
"""

from __future__ import annotations

import functools
import math

from hypothesis import strategies as st

from irc.targets.fpga_hls.kernels import ELEMENTWISE_OPS, VIEW_OPS
from tests.differential.graphs import OPS, Case, Growing, Node, _conv, _matmul, graphs

#: general ops the flow maps unchanged
_AS_IS = sorted(set(ELEMENTWISE_OPS) | {"conv", "max_pool", "average_pool", "global_average_pool",
                                        "global_max_pool", "softmax", "reshape"})


def _gemm_bias(gr: Growing) -> Node | None:
    x = gr.pick(lambda n: n.value.type.rank == 2)
    if x is None:
        return None
    k, n = x.shape[1], gr.draw(st.integers(1, 9))
    trans_b = gr.draw(st.booleans())
    w = gr.param((n, k) if trans_b else (k, n))
    c = gr.param(gr.draw(st.sampled_from([(n,), (1, n)]))) if gr.draw(st.booleans()) else None
    alpha, beta = gr.draw(st.sampled_from([1.0, 0.5])), gr.draw(st.sampled_from([1.0, -2.0]))
    bound = abs(alpha) * x.bound * w.bound * k + (abs(beta) * c.bound if c is not None else 0.0)
    return gr.op("gemm", [x, w] + ([c] if c is not None else []), bound, trans_b=int(trans_b), alpha=alpha,
                 beta=beta)


def _conv_bn(gr: Growing) -> Node | None:
    y = _conv(gr)
    if y is None:
        return None
    c = y.shape[1]
    scale, bias, mean = gr.param((c,)), gr.param((c,)), gr.param((c,))
    var = gr.param((c,), 1.0, positive=True)
    return gr.op("batch_norm", [y, scale, bias, mean, var], (y.bound + 1.0) / math.sqrt(0.5) + 1.0)


#: the op table of this generator (general ops by name, plus the three mapped forms)
HLS_OPS = {**{name: OPS[name] for name in _AS_IS if name in OPS},
           "matmul": functools.partial(_matmul, max_rank=2), "gemm": _gemm_bias, "conv_batch_norm": _conv_bn}


def _computes(case: Case) -> bool:
    """Some output is computed by an op, not a view of an input (the flow refuses a graph with
    nothing for the FPGA to compute)."""
    producers = case.graph.producers()
    for v in case.graph.outputs:
        while v in producers and producers[v].op in VIEW_OPS:
            v = producers[v].inputs[0]
        if v in producers:
            return True
    return False


def hls_graphs(max_ops: int = 6):
    """A random well-formed graph (see graphs.graphs) of the ops the HLS flow maps that computes
    something."""
    return graphs(max_ops=max_ops, ops=HLS_OPS).filter(_computes)

