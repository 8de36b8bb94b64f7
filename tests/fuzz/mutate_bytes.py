"""Mutations of a serialized model: bit flips, truncation, insertion, deletion, duplicated spans
and corrupted varints (protobuf's lengths, tags and integers). Half of them aim inside the
bytes of one node, value info or opset, so that they hit structure rather than weights."""

from __future__ import annotations

import numpy as np
import onnx


def _span(data: bytes, model: onnx.ModelProto | None, rng: np.random.Generator) -> tuple[int, int]:
    """A (start, end) region of ``data``: the whole, or the bytes of one structural message."""
    if model is not None and rng.random() < 0.5:
        g = model.graph
        parts = list(g.node) + list(g.input) + list(g.output) + list(g.value_info) + list(model.opset_import)
        if parts:
            raw = parts[int(rng.integers(len(parts)))].SerializeToString()
            at = data.find(raw) if raw else -1
            if at >= 0:
                return at, at + len(raw)
    return 0, len(data)


def flip(data: bytes, model, rng) -> tuple[bytes, str]:
    lo, hi = _span(data, model, rng)
    buf = bytearray(data)
    for _ in range(int(rng.integers(1, 4))):
        at = int(rng.integers(lo, hi))
        if rng.random() < 0.5:
            buf[at] ^= 1 << int(rng.integers(8))
        else:
            buf[at] = int(rng.integers(256))
    return bytes(buf), f"flip in [{lo},{hi})"


def truncate(data: bytes, model, rng) -> tuple[bytes, str]:
    at = int(rng.integers(0, len(data)))
    return data[:at], f"truncate at {at}"


def insert(data: bytes, model, rng) -> tuple[bytes, str]:
    lo, hi = _span(data, model, rng)
    at = int(rng.integers(lo, hi + 1))
    junk = rng.integers(0, 256, int(rng.integers(1, 17)), dtype=np.uint8).tobytes()
    return data[:at] + junk + data[at:], f"insert {len(junk)} at {at}"


def delete(data: bytes, model, rng) -> tuple[bytes, str]:
    lo, hi = _span(data, model, rng)
    at = int(rng.integers(lo, hi))
    n = int(rng.integers(1, 17))
    return data[:at] + data[at + n:], f"delete {n} at {at}"


def duplicate(data: bytes, model, rng) -> tuple[bytes, str]:
    lo, hi = _span(data, model, rng)
    a = int(rng.integers(lo, hi))
    b = min(hi, a + int(rng.integers(1, 64)))
    return data[:b] + data[a:b] + data[b:], f"duplicate [{a},{b})"


def varint(data: bytes, model, rng) -> tuple[bytes, str]:
    """Corrupt a varint: one with its continuation bit set is grown, cut or made huge."""
    lo, hi = _span(data, model, rng)
    region = np.frombuffer(data[lo:hi], np.uint8)
    cont = np.flatnonzero(region & 0x80)
    at = lo + (int(cont[int(rng.integers(len(cont)))]) if len(cont) else int(rng.integers(0, hi - lo)))
    how = int(rng.integers(4))
    if how == 0:  # a 10-byte varint: 2^63 and beyond
        new = b"\xff" * 9 + b"\x01"
        return data[:at] + new + data[at + 1:], f"varint huge at {at}"
    if how == 1:  # continuation bit cleared: the varint ends early
        return data[:at] + bytes([data[at] & 0x7F]) + data[at + 1:], f"varint cut at {at}"
    if how == 2:  # continuation bit set: the varint swallows the next byte
        return data[:at] + bytes([data[at] | 0x80]) + data[at + 1:], f"varint grown at {at}"
    return data[:at] + bytes([int(rng.integers(256)) | 0x80]) + data[at + 1:], f"varint changed at {at}"


BYTE_MUTATIONS = {f.__name__: f for f in (flip, truncate, insert, delete, duplicate, varint)}
