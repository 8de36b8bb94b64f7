"""Ops that read or write elements at positions given by index tensors: gather_nd, scatter_nd,
scatter_elements.

Indices are data, read at run time, so irc defines what ONNX leaves undefined the same way on
every target: an index outside [-n, n) reads 0 (gather_nd) and writes nothing (the scatters);
negative indices count from the end. Scatters apply their updates one after another in the
row-major order of the indices, so with ``reduction="none"`` the last of repeated indices wins,
and the other reductions (add, mul, max, min) fold every repeated update in.
"""

from __future__ import annotations

import math

import numpy as np

from irc.errors import ShapeError
from irc.ir.ops import costs
from irc.ir.ops.registry import Attr, defop, norm_axis
from irc.ir.types import DType, TensorType

INDEX_DTYPES = (DType.i32, DType.i64)
REDUCTIONS = ("none", "add", "mul", "max", "min")

_COMBINE = {"add": np.add, "mul": np.multiply, "max": np.maximum, "min": np.minimum}


def _expect_indices(t: TensorType) -> None:
    if t.dtype not in INDEX_DTYPES:
        raise ShapeError(f"indices must be i32 or i64, got {t}")


def _check_reduction(data: TensorType, reduction: str) -> None:
    if reduction != "none" and data.dtype is DType.bool:
        raise ShapeError(f"reduction '{reduction}' needs numeric data, got {data}")


def _wrap(idx: np.ndarray, dims) -> tuple[np.ndarray, np.ndarray]:
    """(in range, wrapped) for index rows ``idx[..., k]`` into ``dims[k]``."""
    dims = np.asarray(dims, np.int64)
    idx = idx.astype(np.int64)
    ok = np.all((idx >= -dims) & (idx < dims), axis=-1)
    return ok, np.where(idx < 0, idx + dims, idx)


@defop("gather_nd", ("data", "indices"), {"batch_dims": Attr("int", 0)})
class GatherND:
    """Slices of ``data`` addressed by the last axis of ``indices``: with b = batch_dims and
    q = indices.shape[-1], out[i] = data[i[:b] + indices[i]] for i over indices.shape[:-1], each a
    slice of shape data.shape[b + q:]. An out-of-range index row gives a slice of zeros."""

    def infer(data, indices, *, batch_dims):
        _expect_indices(indices)
        b = batch_dims
        if indices.rank < 1 or not 0 <= b < min(data.rank, indices.rank):
            raise ShapeError(f"batch_dims {b} must be below the ranks of data {data} and indices {indices}")
        if data.shape[:b] != indices.shape[:b]:
            raise ShapeError(f"the first {b} dimensions of data {data} and indices {indices} must agree")
        q = indices.shape[-1]
        if not 1 <= q <= data.rank - b:
            raise ShapeError(f"indices {indices} address {q} axes; data {data} has {data.rank - b} after the batch axes")
        return data.with_shape(indices.shape[:-1] + data.shape[b + q:])

    def reference(data, indices, *, batch_dims):
        b, q = batch_dims, indices.shape[-1]
        nb = math.prod(data.shape[:b])
        flat_data = data.reshape((nb,) + data.shape[b:])
        flat_idx = indices.reshape(nb, -1, q)
        ok, idx = _wrap(flat_idx, data.shape[b:b + q])
        idx = np.where(ok[..., None], idx, 0)
        batch = np.arange(nb).reshape(nb, 1)
        out = flat_data[(batch,) + tuple(idx[..., k] for k in range(q))]
        mask = ok.reshape(ok.shape + (1,) * (out.ndim - ok.ndim))
        out = np.where(mask, out, np.zeros((), data.dtype)).astype(data.dtype)
        return out.reshape(indices.shape[:-1] + data.shape[b + q:])

    cost = costs.free  # data movement


def _scatter_cost(n) -> costs.Cost:
    """A reduction combines each update with one element; a plain scatter only moves data."""
    return costs.Cost(0, 0 if n.attrs["reduction"] == "none" else n.inputs[2].type.size)


@defop("scatter_nd", ("data", "indices", "updates"), {"reduction": Attr("str", "none", REDUCTIONS)})
class ScatterND:
    """A copy of ``data`` with the slices addressed by the last axis of ``indices`` replaced by
    (or, with a reduction, combined with) ``updates``, whose shape is
    indices.shape[:-1] + data.shape[indices.shape[-1]:]."""

    def infer(data, indices, updates, *, reduction):
        _expect_indices(indices)
        _check_reduction(data, reduction)
        if updates.dtype is not data.dtype:
            raise ShapeError(f"updates {updates} must have the element type of data {data}")
        q = indices.shape[-1] if indices.rank else 0
        if not 1 <= q <= data.rank:
            raise ShapeError(f"indices {indices} must address 1 to {data.rank} axes of data {data}")
        want = indices.shape[:-1] + data.shape[q:]
        if updates.shape != want:
            raise ShapeError(f"updates {updates} must have shape {list(want)}")
        return data

    def reference(data, indices, updates, *, reduction):
        q = indices.shape[-1]
        out = data.copy()
        rows = indices.reshape(-1, q)
        ok, idx = _wrap(rows, data.shape[:q])
        ups = updates.reshape((len(rows),) + data.shape[q:])
        for r in range(len(rows)):
            if ok[r]:
                at = tuple(idx[r])
                out[at] = ups[r] if reduction == "none" else _COMBINE[reduction](out[at], ups[r])
        return out

    cost = _scatter_cost


@defop("scatter_elements", ("data", "indices", "updates"),
       {"axis": Attr("int", 0), "reduction": Attr("str", "none", REDUCTIONS)})
class ScatterElements:
    """A copy of ``data`` where, for every position i of ``indices`` (same shape as ``updates``,
    the rank of data), the element at i with i[axis] replaced by indices[i] is replaced by (or
    combined with) updates[i]. The inverse of gather_elements."""

    def resolve(data, indices, updates, *, axis, reduction):
        return {"axis": norm_axis(axis, data.rank), "reduction": reduction}

    def infer(data, indices, updates, *, axis, reduction):
        _expect_indices(indices)
        _check_reduction(data, reduction)
        if updates.dtype is not data.dtype:
            raise ShapeError(f"updates {updates} must have the element type of data {data}")
        if indices.shape != updates.shape or indices.rank != data.rank:
            raise ShapeError(f"indices {indices} and updates {updates} must have one shape, of the rank of {data}")
        if any(i > d for k, (i, d) in enumerate(zip(indices.shape, data.shape)) if k != axis):
            raise ShapeError(f"indices {indices} must fit inside data {data} off axis {axis}")
        return data

    def reference(data, indices, updates, *, axis, reduction):
        out = data.copy()
        n = data.shape[axis]
        for pos in np.ndindex(*indices.shape):
            i = int(indices[pos])
            if not -n <= i < n:
                continue
            at = pos[:axis] + (i % n,) + pos[axis + 1:]
            u = updates[pos]
            out[at] = u if reduction == "none" else _COMBINE[reduction](out[at], u)
        return out

    cost = _scatter_cost
