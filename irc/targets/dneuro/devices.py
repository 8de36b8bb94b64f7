"""The devices the DNeuro flow sizes its accelerators for: Intel Arria 10 GX/SX.

The figures are the ones the flow is specified with: on-chip M20K memory in MB (binary
megabytes, 2**20 bytes: the GX 1150's 6.62 MB are its 2,713 M20K blocks of 20 Kbit), variable-
precision DSP blocks, and int8 multipliers per cycle (two 18x19 multipliers per DSP block).
The GX and SX parts of one size have the same fabric, so one entry serves both names.

External memory (layers whose weights stream from the board, see offchip.py) is an assumption
about the board, not the part: every device is taken to sit on a board like Intel's Arria 10 GX
development kit, with one DDR4-2400 interface of 64 data bits (19.2 GB/s peak) of which 80% is
reached by long sequential bursts (``DDR_EFFICIENCY``). ``ddr_gbps`` and ``ddr_interfaces`` say
it per device, so a board with more or faster interfaces is one entry away.
"""

from __future__ import annotations

from dataclasses import dataclass

from irc.errors import InputError

#: Bits in one M20K block.
M20K_BITS = 20480
#: Peak bandwidth of one DDR4-2400 x64 interface, GB/s (2400 MT/s x 8 bytes).
DDR4_2400_GBPS = 19.2
#: Share of the peak that long sequential read bursts sustain (refresh, page changes).
DDR_EFFICIENCY = 0.8


@dataclass(frozen=True, slots=True)
class Device:
    """One Arria 10 part: its memory, DSP blocks and multipliers."""

    name: str
    title: str
    m20k_mb: float
    dsp: int
    macs_per_cycle: int
    ddr_gbps: float = DDR4_2400_GBPS
    ddr_interfaces: int = 1

    def ddr_bytes_per_cycle(self, clock_mhz: float) -> float:
        """Bytes of external memory the accelerator can read per clock cycle (all interfaces,
        at ``DDR_EFFICIENCY`` of their peak)."""
        return self.ddr_gbps * 1e9 * self.ddr_interfaces * DDR_EFFICIENCY / (clock_mhz * 1e6)

    @property
    def m20k_bits(self) -> int:
        return int(round(self.m20k_mb * (1 << 20) * 8))

    @property
    def m20k_blocks(self) -> int:
        return self.m20k_bits // M20K_BITS


def _arria10(size: int, mb: float, dsp: int, macs: int, sx: bool = True) -> list[Device]:
    kinds = ("gx", "sx") if sx else ("gx",)
    title = f"Intel Arria 10 {'GX/SX' if sx else 'GX'} {size}"
    return [Device(f"arria10-{k}{size}", title, mb, dsp, macs) for k in kinds]


DEVICES: dict[str, Device] = {
    d.name: d
    for d in (
        *_arria10(160, 1.12, 156, 312),
        *_arria10(220, 1.37, 191, 382),
        *_arria10(270, 1.87, 830, 1660),
        *_arria10(320, 2.12, 985, 1970),
        *_arria10(480, 3.5, 1368, 2736),
        *_arria10(570, 4.37, 1523, 3046),
        *_arria10(660, 5.25, 1688, 3376),
        *_arria10(900, 5.87, 1518, 3036, sx=False),
        *_arria10(1150, 6.62, 1518, 3036, sx=False),
    )
}

DEFAULT_DEVICE = "arria10-gx1150"


def device_names(*, distinct: bool = False) -> list[str]:
    """Every device name; with ``distinct``, one name per size (the GX one)."""
    if not distinct:
        return list(DEVICES)
    seen: dict[str, str] = {}
    for name, d in DEVICES.items():
        seen.setdefault(d.title, name)
    return list(seen.values())


def get_device(name: str) -> Device:
    key = name.strip().lower().replace("_", "-").replace(" ", "")
    if not key.startswith("arria10-") and key.startswith("arria10"):
        key = "arria10-" + key[len("arria10"):]
    try:
        return DEVICES[key]
    except KeyError:
        raise InputError(f"unknown device '{name}' (known: {', '.join(DEVICES)})") from None
