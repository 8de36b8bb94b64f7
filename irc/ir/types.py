"""Element types and tensor types: the static type of every value in a graph.

Shapes are static inside a graph (dynamic ONNX dimensions are bound before a graph is built),
so a TensorType is a plain frozen value: a tuple of non-negative ints and a DType.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass

import ml_dtypes
import numpy as np

from irc.errors import ShapeError


class DType(enum.Enum):
    """Element type of a tensor. The value is the short name used in the text form."""

    f64 = "f64"
    f32 = "f32"
    f16 = "f16"
    bf16 = "bf16"
    i64 = "i64"
    i32 = "i32"
    i16 = "i16"
    i8 = "i8"
    u64 = "u64"
    u32 = "u32"
    u16 = "u16"
    u8 = "u8"
    bool = "bool"

    @property
    def numpy(self) -> np.dtype:
        return _TO_NUMPY[self]

    @property
    def itemsize(self) -> int:
        return self.numpy.itemsize

    @property
    def is_float(self) -> bool:
        return self in (DType.f64, DType.f32, DType.f16, DType.bf16)

    @property
    def is_int(self) -> bool:
        return not self.is_float and self is not DType.bool

    @property
    def is_signed(self) -> bool:
        return self.is_float or self in (DType.i64, DType.i32, DType.i16, DType.i8)

    @staticmethod
    def from_numpy(dt) -> DType:
        dt = np.dtype(dt)
        try:
            return _FROM_NUMPY[dt]
        except KeyError:
            raise ShapeError(f"numpy dtype {dt} has no irc element type") from None

    @staticmethod
    def parse(name: str) -> DType:
        try:
            return DType(name)
        except ValueError:
            raise ShapeError(f"unknown element type '{name}'") from None

    def __str__(self) -> str:
        return self.value


_TO_NUMPY = {
    DType.f64: np.dtype(np.float64),
    DType.f32: np.dtype(np.float32),
    DType.f16: np.dtype(np.float16),
    DType.bf16: np.dtype(ml_dtypes.bfloat16),
    DType.i64: np.dtype(np.int64),
    DType.i32: np.dtype(np.int32),
    DType.i16: np.dtype(np.int16),
    DType.i8: np.dtype(np.int8),
    DType.u64: np.dtype(np.uint64),
    DType.u32: np.dtype(np.uint32),
    DType.u16: np.dtype(np.uint16),
    DType.u8: np.dtype(np.uint8),
    DType.bool: np.dtype(np.bool_),
}
_FROM_NUMPY = {v: k for k, v in _TO_NUMPY.items()}


@dataclass(frozen=True, slots=True)
class TensorType:
    """Static type of a value: shape (a tuple of ints, () for a scalar) and element type."""

    shape: tuple[int, ...]
    dtype: DType

    def __post_init__(self):
        shape = tuple(int(d) for d in self.shape)
        if any(d < 0 for d in shape):
            raise ShapeError(f"negative dimension in shape {list(shape)}")
        object.__setattr__(self, "shape", shape)
        if not isinstance(self.dtype, DType):
            raise ShapeError(f"dtype must be a DType, got {self.dtype!r}")

    @property
    def rank(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        """Number of elements."""
        return math.prod(self.shape)

    @property
    def nbytes(self) -> int:
        return self.size * self.dtype.itemsize

    def with_shape(self, shape) -> TensorType:
        return TensorType(tuple(shape), self.dtype)

    def with_dtype(self, dtype: DType) -> TensorType:
        return TensorType(self.shape, dtype)

    @staticmethod
    def of(array: np.ndarray) -> TensorType:
        """The type of a numpy array."""
        return TensorType(tuple(array.shape), DType.from_numpy(array.dtype))

    def __str__(self) -> str:
        return f"{self.dtype.value}[{','.join(str(d) for d in self.shape)}]"


f32 = DType.f32
f64 = DType.f64
i64 = DType.i64
i32 = DType.i32
i8 = DType.i8
u8 = DType.u8
