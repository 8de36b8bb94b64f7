"""Which layers read their weights from the board's external memory instead of on-chip ROMs.

A design whose data does not fit the device's M20K blocks can move conv weights off chip: a
streamed block burst-reads its weight image over an Avalon-MM master (rtl/dn_wstream.v) into a
small FIFO, once per output pixel group, so its traffic per frame is its weight bytes times its
output pixels (over PP). The layers that cost least bandwidth for the memory they free go first:
the highest weight bytes per multiply-accumulate, i.e. the fewest output pixels (fully connected
layers: one pass per frame), then the largest weight ROM. The choice is the shortest prefix of
that order with which the minimum-parallelism design keeps to ``ON_CHIP_SHARE`` of the M20K
blocks (the fitter's margin, as in fit.py); a design that fits on chip streams nothing.

The choice depends on the model and the device only, not on the tuner's budget, so the tuner
walks one path for every budget and stays monotone (see tune.py).
"""

from __future__ import annotations

from typing import Protocol

from irc.targets.dneuro.devices import Device
from irc.targets.dneuro.layers import LayerGraph
from irc.targets.dneuro.resources import WSTREAM_FIFO, LayerCost, Memory


class Design(Protocol):
    """What the choice reads of a tune.Design (the tuner imports this module, not the reverse)."""

    lg: LayerGraph
    par: dict
    costs: dict[str, LayerCost]

    @property
    def m20k(self) -> int: ...

#: Share of the device's M20K blocks a design may use and still count as fitting.
ON_CHIP_SHARE = 0.9


def stream_order(design: Design) -> list[str]:
    """Conv layers, the first to stream first: fewest output pixel groups (most weight bytes per
    multiply-accumulate), then the largest weight ROM, then graph order."""
    convs = [(k, ly.name) for k, ly in enumerate(design.lg) if ly.kind == "conv"]
    return [n for _, n in sorted(convs, key=lambda kn: (passes(design, kn[1]),
                                                        -design.costs[kn[1]].memories[0].bits, kn[0]))]


def passes(design: Design, name: str) -> int:
    """How often a streamed layer reads its weight image per frame: once per output pixel group."""
    ly = design.lg[name]
    return ly.shape.h * (ly.shape.w // design.par[name][2])


def saving(design: Design, name: str) -> int:
    """M20K blocks freed by streaming layer ``name``'s weights (its ROM, less the burst FIFO)."""
    rom = design.costs[name].memories[0]
    assert rom.what == "weights", rom
    return rom.m20k - Memory("weight fifo", WSTREAM_FIFO, rom.width).m20k


def choose(design: Design, device: Device, share: float = ON_CHIP_SHARE) -> frozenset[str]:
    """The layers to stream for ``design`` (all on chip, normally minimum parallelism) to keep
    within ``share`` of the device's M20K blocks; every useful one when even that is not enough."""
    limit = share * device.m20k_blocks
    m20k = design.m20k
    out: list[str] = []
    for name in stream_order(design):
        if m20k <= limit:
            break
        gain = saving(design, name)
        if gain > 0:
            out.append(name)
            m20k -= gain
    return frozenset(out)

