"""Markers and helpers of the cuda target's tests: ptxas checks skip without the CUDA toolkit,
GPU tests skip without a GPU and its driver (the reason says which)."""

from __future__ import annotations

import functools

import numpy as np
import pytest

from irc.ir import GraphBuilder
from irc.targets.cuda.ptx import ptxas_path

ARCHS = ("sm_70", "sm_80", "sm_90")


@functools.cache
def gpu_count() -> int:
    from irc.targets.cuda.runtime import device_count

    return device_count()


requires_ptxas = pytest.mark.skipif(ptxas_path() is None, reason="ptxas (CUDA toolkit) is not on the PATH")
requires_gpu = pytest.mark.skipif(gpu_count() == 0, reason="no CUDA GPU/driver")


def combined_graph(cases):
    """Every case's node in one graph (inputs and parameters renamed per case), so that one
    module per architecture holds every kernel and one ptxas run checks them all."""
    b = GraphBuilder("all_kernels")
    outs = []
    for c in cases:
        vals = []
        for i, t in enumerate(c.inputs):
            if isinstance(t, np.ndarray):
                vals.append(b.param(f"{c.id}_p{i}", t))
            else:
                vals.append(b.input(f"{c.id}_x{i}", t))
        outs.extend(b.add_node(c.op, vals, c.attrs, node_name=c.id))
    return b.build(*outs)
