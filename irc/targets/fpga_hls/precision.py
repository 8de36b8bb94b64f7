"""Number formats of the HLS kernels: float32, fixed point ``ap_fixed<W,I>``, int8.

int8 designs are graphs the ``quantize`` pass has rewritten: their integer layers take and give
u8/i8 tensors (exactly as irc/ir/quant_arith.py defines), the float tensors around them stay
float32.

A precision says three things: the C++ type a kernel computes in (``data_t``), the type a tensor
has in device memory (``store_t``: the host and the kernels exchange raw bits), and how the host
converts float tensors to and from that storage.

Fixed point is ``ap_fixed<W, I, AP_RND_CONV, AP_SAT>``: W bits, I of them integer (sign
included), F = W - I fraction bits; conversion rounds to nearest, ties to even (numpy's
``rint`` does the same), and saturates. In device memory a value is its W raw bits in the
smallest signed integer that holds them. Products are accumulated exactly (2F fraction bits,
enough integer bits for the number of terms), so a dense or conv kernel rounds once, at its
output: each fixed-point kernel output is within one unit in the last place, ``2**-F``, of the
exact result on the same (already quantized) inputs, as long as nothing saturates.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np

from irc.errors import InputError


#: cycles of a pipelined float32 adder (Vitis HLS fadd, full-DSP core, at 300 MHz)
FADD_LATENCY = 8


@dataclass(frozen=True, slots=True)
class Precision:
    """One number format: ``kind`` is "float32", "fixed" or "int8"."""

    kind: str
    width: int = 32
    integer: int = 0

    @property
    def frac(self) -> int:
        return self.width - self.integer

    @property
    def name(self) -> str:
        if self.kind == "fixed":
            return f"ap_fixed<{self.width},{self.integer}>"
        return self.kind

    @property
    def bits(self) -> int:
        """Width of one value in device memory and in the datapath."""
        return {"float32": 32, "int8": 8}.get(self.kind, self.width)

    @property
    def is_float(self) -> bool:
        """Float tensors are float32 on the device (float32 designs, and int8 designs outside
        their quantized layers, whose integer tensors keep their own types)."""
        return self.kind in ("float32", "int8")

    @property
    def storage(self) -> np.dtype:
        """numpy type of a tensor in a device buffer."""
        if self.kind in ("float32", "int8"):
            return np.dtype(np.float32)
        return np.dtype(np.int16 if self.width <= 16 else np.int32)

    @property
    def c_storage(self) -> str:
        return {np.dtype(np.float32): "float", np.dtype(np.int8): "int8_t",
                np.dtype(np.int16): "int16_t", np.dtype(np.int32): "int32_t"}[self.storage]

    @property
    def c_data(self) -> str:
        if self.kind == "fixed":
            return f"ap_fixed<{self.width}, {self.integer}, AP_RND_CONV, AP_SAT>"
        return "float"

    def c_acc(self, terms: int) -> str:
        """Accumulator type for sums of ``terms`` products: exact for fixed point (every product's
        fraction bits, and integer bits that grow with log2(terms)), so neither rounding nor
        overflow can happen in it. It is therefore declared with ap_fixed's plain truncate/wrap
        modes: AP_RND_CONV/AP_SAT there would add rounding and saturation logic to every add
        for nothing. The value saturates once, where it becomes data_t at the output."""
        if self.kind != "fixed":  # float kernels (int8 layers have their own int32 accumulators)
            return "float"
        grow = max(1, math.ceil(math.log2(max(terms, 1) + 1)))
        integer = 2 * self.integer + grow + 1
        return f"ap_fixed<{2 * self.frac + integer}, {integer}>"

    @property
    def acc_split(self) -> int:
        """Partial sums per MAC lane (irc_hls.h's partial sums): a float adder's latency, so the
        MAC loop reaches II=1 (FADD_LATENCY cycles at the 300 MHz default clock); fixed point
        and int8 add in one cycle and keep one accumulator."""
        return FADD_LATENCY if self.kind == "float32" else 1

    def acc_bits(self, terms: int) -> int:
        if self.kind == "float32":
            return 32
        if self.kind == "int8":
            return 32
        return 2 * self.frac + 2 * self.integer + max(1, math.ceil(math.log2(max(terms, 1) + 1))) + 1

    @property
    def ulp(self) -> float:
        """Spacing of representable values (0 for float32: errors are relative there)."""
        return 2.0 ** -self.frac if self.kind == "fixed" else 0.0

    @property
    def range(self) -> tuple[float, float]:
        """Smallest and largest representable value of a fixed-point format."""
        if self.kind != "fixed":
            return (-math.inf, math.inf)
        return (-(2.0 ** (self.integer - 1)), 2.0 ** (self.integer - 1) - self.ulp)

    # -- host-side conversion (the host code and the emulator do the same)
    def to_device(self, x: np.ndarray) -> np.ndarray:
        """A float tensor in device format (fixed point: rounded to nearest even, saturated)."""
        x = np.asarray(x)
        if self.kind != "fixed" or x.dtype.kind != "f":
            return np.ascontiguousarray(x.astype(self.storage if x.dtype.kind == "f" else x.dtype, copy=False))
        scaled = np.rint(np.nan_to_num(x.astype(np.float64)) * 2.0 ** self.frac)
        lo, hi = -(2 ** (self.width - 1)), 2 ** (self.width - 1) - 1
        return np.ascontiguousarray(np.clip(scaled, lo, hi).astype(self.storage))

    def from_device(self, raw: np.ndarray) -> np.ndarray:
        """A device tensor as float32."""
        if self.kind != "fixed" or raw.dtype != self.storage:
            return raw
        return (raw.astype(np.float64) * 2.0 ** -self.frac).astype(np.float32)

    def round_trip(self, x: np.ndarray) -> np.ndarray:
        """x as the device sees it, back in float32 (the quantized value)."""
        x = np.asarray(x)
        if x.dtype.kind != "f":
            return x
        return self.from_device(self.to_device(x)) if self.kind == "fixed" else x.astype(np.float32, copy=False)


FLOAT32 = Precision("float32")
_FIXED = re.compile(r"(?:ap_)?fixed\s*[<(_]?\s*(\d+)\s*[,_]\s*(-?\d+)\s*[>)]?\Z")


def parse_precision(text: str | Precision) -> Precision:
    """'float32' (or 'fp32', 'float'), 'ap_fixed<W,I>' (or 'fixed<W,I>', 'fixed16_6'), or 'int8'."""
    if isinstance(text, Precision):
        return text
    s = str(text).strip().lower().replace(" ", "")
    if s in ("float32", "fp32", "float", "f32"):
        return FLOAT32
    if s in ("int8", "i8"):
        return Precision("int8", 8, 8)
    m = _FIXED.match(s)
    if m:
        w, i = int(m.group(1)), int(m.group(2))
        if not 2 <= w <= 32 or not 1 <= i <= w:
            raise InputError(f"precision {text}: ap_fixed<W,I> needs 2 <= W <= 32 and 1 <= I <= W")
        return Precision("fixed", w, i)
    raise InputError(f"unknown precision '{text}' (expected float32, ap_fixed<W,I> such as ap_fixed<16,6>, or int8)")
