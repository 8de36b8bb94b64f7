"""Gradients of conv and conv_transpose, written with the two ops themselves (exact):

- data gradient of conv: conv_transpose of dy with the same weights, strides, pads, dilations and
  groups; output_padding gives back the input rows the last window did not reach;
- weight gradient of conv: a conv over the batch axis. With batch and channel axes of x swapped
  (channels grouped as the conv groups them), each tap of dW is the correlation of x with dy:
  a conv whose "weights" are dy, whose stride is the original dilation and whose dilation is the
  original stride. Its output is cropped to the kernel size;
- bias gradient: dy summed over batch and spatial axes;
- conv_transpose is conv's adjoint, so its data gradient is a conv and its weight gradient the
  same batch-axis conv with the roles of x and dy exchanged.
"""

from __future__ import annotations

from irc.frontend.trace import reshape, transpose
from irc.ir.ops.conv import dilated
from irc.passes.grads.common import grad_rule


def _weight_grad(x, dy, kernel, strides, pads, dilations, group):
    """dW[m, c, k...] = sum over n, o of dy[n, m, o] * x_padded[n, g(m)*C/g + c, o*s + k*d]."""
    nb, c = x.shape[:2]
    m = dy.shape[1]
    sp = x.ndim - 2
    cg = c // group
    # x: (N, C, S) -> (C/g, g*N, S): "batch" c, "channels" (group, n).
    xs = reshape(x, (nb, group, cg, *x.shape[2:]))
    xs = transpose(xs, (2, 1, 0, *range(3, 3 + sp)))
    xs = reshape(xs, (cg, group * nb, *x.shape[2:]))
    # dy: (N, M, O) -> (M, N, O): weights of M output channels, N inputs per group.
    ws = transpose(dy, (1, 0, *range(2, 2 + sp)))
    # The correlation only needs the input up to the last element any window reached.
    reach = [(o - 1) * s + dilated(k, d) for o, k, s, d in zip(dy.shape[2:], kernel, strides, dilations)]
    ends = [r - x.shape[2 + i] - pads[i] for i, r in enumerate(reach)]
    new_pads = (*pads[:sp], *(max(e, 0) for e in ends))
    if any(e < 0 for e in ends):
        xs = xs.tracer.op("slice", xs, starts=(0,) * sp, ends=tuple(x.shape[2 + i] + min(e, 0) for i, e in enumerate(ends)),
                          axes=tuple(range(2, 2 + sp)), steps=(1,) * sp)
    gw = xs.tracer.op("conv", xs, ws, strides=dilations, dilations=strides, pads=new_pads, group=group)
    # (C/g, M, K...) -> (M, C/g, K...)
    gw = transpose(gw, (1, 0, *range(2, 2 + sp)))
    if tuple(gw.shape[2:]) != tuple(kernel):
        gw = gw.tracer.op("slice", gw, starts=(0,) * sp, ends=tuple(kernel), axes=tuple(range(2, 2 + sp)), steps=(1,) * sp)
    assert gw.shape == (m, cg, *kernel), (gw.shape, m, cg, kernel)
    return gw


def _unpack(n, xs, dys):
    """(x, w, dy, the window attributes, spatial rank, kernel) of a conv or conv_transpose node."""
    at = n.attrs
    win = {k: at[k] for k in ("strides", "pads", "dilations", "group")}
    return xs[0], xs[1], dys[0], win, xs[0].ndim - 2, xs[1].shape[2:]


def _with_bias(xs, dy, sp: int, dx, dw) -> list:
    """[dx, dw] and, when the node has a bias, dy summed over batch and spatial axes."""
    if len(xs) > 2:
        return [dx, dw, dy.sum(axis=(0, *range(2, 2 + sp)))]
    return [dx, dw]


@grad_rule("conv")
def _conv(n, xs, ys, dys):
    x, w, dy, win, sp, kernel = _unpack(n, xs, dys)
    strides, pads, dilations = win["strides"], win["pads"], win["dilations"]
    out_pad = []
    for i in range(sp):
        full = strides[i] * (dy.shape[2 + i] - 1) + dilated(kernel[i], dilations[i]) - pads[i] - pads[sp + i]
        out_pad.append(x.shape[2 + i] - full)
    # output_padding stays below the stride: the rows it adds are ones no window reached.
    dx = x.tracer.op("conv_transpose", dy, w, **win, output_padding=tuple(out_pad))
    return _with_bias(xs, dy, sp, dx, _weight_grad(x, dy, kernel, **win))


@grad_rule("conv_transpose")
def _conv_transpose(n, xs, ys, dys):
    x, w, dy, win, sp, kernel = _unpack(n, xs, dys)
    # y = conv^T(x): dx = conv(dy, w), whose output has exactly x's spatial size.
    dx = x.tracer.op("conv", dy, w, **win)
    # dW[c, m, k] = sum x[n, c, i] dy_padded[n, m, i*s + k*d]: the conv weight gradient with the
    # roles of input (dy, M channels) and output cotangent (x, C channels) exchanged.
    return _with_bias(xs, dy, sp, dx, _weight_grad(dy, x, kernel, **win))
