"""The layer graph of a DNeuro accelerator: one entry per RTL block, in dataflow order.

Every tensor between blocks is one frame of ``C x H x W`` 8-bit integers (u8 or i8), streamed
pixel by pixel in raster order, the channels of a pixel in order. A layer names the layers it
reads; its output is the tensor it streams on.

Block kinds (each one RTL module of the library in ``rtl/``):

- ``input``: the frame from the host, already quantized (``scale``/``zero_point`` say how);
- ``conv``: a generic convolution, strided, padded (padding merged from the model), grouped
  or depthwise (partial connections), with the requantize epilogue; fully connected layers and
  global average pooling are convolutions too (an HxW kernel over the whole frame);
- ``maxpool``: max pooling (windows past the border ignore the missing taps);
- ``eltwise``: the element-wise sum of two tensors, requantized;
- ``concat``: channels of several tensors side by side (a stream merge, no arithmetic);
- ``lut``: an activation as a 256-entry table of codes (the logistic function);
- ``upsample``: nearest-neighbour resize by whole factors;
- ``argmax``: the top-1 class of a ``C x 1 x 1`` tensor (replaces a final softmax).

Integer parameters (weights, bias, fixed-point multipliers...) are present when the layer graph
was mapped from a quantized graph; a graph mapped from a float model has shapes only, which is
all that resource and cycle estimates need.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

KINDS = ("input", "conv", "maxpool", "eltwise", "concat", "lut", "upsample", "argmax")


@dataclass(frozen=True, slots=True)
class Shape:
    """A frame: channels, height, width."""

    c: int
    h: int
    w: int

    @property
    def size(self) -> int:
        return self.c * self.h * self.w

    def __str__(self) -> str:
        return f"{self.c}x{self.h}x{self.w}"


@dataclass(slots=True)
class Layer:
    """One block instance. ``attrs`` holds the block's scalar parameters (kernel, stride, pads,
    zero points, saturation bounds...), ``arrays`` its integer tables (weights, bias, multiplier,
    shift, lut), ``nodes`` the model nodes it implements (for reports and errors)."""

    name: str
    kind: str
    inputs: list[str]
    shape: Shape
    signed: bool = False
    attrs: dict[str, Any] = field(default_factory=dict)
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    nodes: list[str] = field(default_factory=list)

    def __post_init__(self):
        assert self.kind in KINDS, self.kind

    @property
    def quantized(self) -> bool:
        return self.kind in ("input", "maxpool", "concat", "upsample", "argmax") or bool(self.arrays) or (
            self.kind == "eltwise" and "multiplier" in self.attrs)

    def get(self, key: str, default=None):
        return self.attrs.get(key, default)


@dataclass(slots=True)
class LayerGraph:
    """The layers of one accelerator in dataflow (topological) order; the last one is the output.
    ``host`` records what the host does around it (input quantization, output dequantization)."""

    name: str
    layers: list[Layer]
    host: dict[str, Any] = field(default_factory=dict)
    _index: dict[str, Layer] = field(init=False, repr=False, default_factory=dict)

    def __post_init__(self):
        self._index = {ly.name: ly for ly in self.layers}

    def __getitem__(self, name: str) -> Layer:
        return self._index[name]

    def __iter__(self):
        return iter(self.layers)

    def __len__(self) -> int:
        return len(self.layers)

    @property
    def input(self) -> Layer:
        return self.layers[0]

    @property
    def output(self) -> Layer:
        return self.layers[-1]

    @property
    def quantized(self) -> bool:
        return all(ly.quantized for ly in self.layers)

    def consumers(self) -> dict[str, list[str]]:
        """Layer name -> the layers that read its output (one entry per read)."""
        out: dict[str, list[str]] = {ly.name: [] for ly in self.layers}
        for ly in self.layers:
            for i in ly.inputs:
                out[i].append(ly.name)
        return out

    def deepest(self, weight: Callable[[Layer], float]) -> dict[str, float]:
        """Layer name -> the largest sum of ``weight`` along a path from the input to that layer
        (both ends included)."""
        out: dict[str, float] = {}
        for ly in self.layers:
            out[ly.name] = max((out[i] for i in ly.inputs), default=0.0) + weight(ly)
        return out

    def in_shape(self, layer: Layer, i: int = 0) -> Shape:
        return self[layer.inputs[i]].shape

    def to_json(self, parallelism: dict[str, tuple[int, ...]] | None = None) -> str:
        """The layer graph as JSON: per layer its kind, inputs, shape, attributes, the shapes of
        its integer tables (stored in the .mem files next to it) and, if given, its parallelism."""
        layers = []
        for ly in self.layers:
            entry = {"name": ly.name, "kind": ly.kind, "inputs": list(ly.inputs),
                     "shape": [ly.shape.c, ly.shape.h, ly.shape.w], "signed": ly.signed,
                     "attrs": {k: _plain(v) for k, v in ly.attrs.items()},
                     "tables": {k: {"dtype": str(a.dtype), "shape": list(a.shape)} for k, a in ly.arrays.items()},
                     "nodes": list(ly.nodes)}
            if parallelism is not None and ly.name in parallelism:
                entry["parallelism"] = dict(zip(("pi", "po", "pp"), parallelism[ly.name]))
            layers.append(entry)
        return json.dumps({"name": self.name, "host": {k: _plain(v) for k, v in self.host.items()},
                           "layers": layers}, indent=1) + "\n"


def _plain(v):
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, np.ndarray):
        return v.tolist()
    if isinstance(v, tuple):
        return [_plain(x) for x in v]
    return v
