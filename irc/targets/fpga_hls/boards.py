"""The FPGA boards irc targets: device resources, SLRs, memory banks, Vitis platform and part.

Totals are those of the whole device as its data sheet gives them (BRAM in 36 Kb blocks, URAM in
288 Kb blocks). The platform shell takes part of them, which is one reason the automatic
parallelism only fills a fraction of the board (80% by default).
"""

from __future__ import annotations

from dataclasses import dataclass

from irc.errors import InputError

RESOURCES = ("DSP", "LUT", "FF", "BRAM", "URAM")


@dataclass(frozen=True, slots=True)
class Board:
    """One accelerator card: what its device holds and how Vitis names it."""

    name: str
    title: str
    part: str
    platform: str
    totals: dict[str, int]
    slrs: int
    #: memory bank (as v++ ``sp=`` names it) -> the SLR it is attached to
    banks: dict[str, int]

    def banks_for_slr(self, slr: int) -> list[str]:
        """The memory banks attached to ``slr`` (else the nearest ones), in the board's order."""
        dist = min(abs(s - slr) for s in self.banks.values())
        return [b for b, s in self.banks.items() if abs(s - slr) == dist]


BOARDS: dict[str, Board] = {
    "u200": Board(
        "u200", "Alveo U200 (XCU200, UltraScale+ VU9P)", "xcu200-fsgd2104-2-e",
        "xilinx_u200_gen3x16_xdma_2_202110_1",
        {"DSP": 6840, "LUT": 1182240, "FF": 2364480, "BRAM": 2160, "URAM": 960},
        3, {"DDR[0]": 0, "DDR[1]": 1, "DDR[2]": 1, "DDR[3]": 2},
    ),
    "u250": Board(
        "u250", "Alveo U250 (XCU250, UltraScale+ VU13P)", "xcu250-figd2104-2L-e",
        "xilinx_u250_gen3x16_xdma_4_1_202210_1",
        {"DSP": 12288, "LUT": 1728000, "FF": 3456000, "BRAM": 2688, "URAM": 1280},
        4, {"DDR[0]": 0, "DDR[1]": 1, "DDR[2]": 2, "DDR[3]": 3},
    ),
    "u280": Board(
        "u280", "Alveo U280 (XCU280, UltraScale+ VU37P with HBM2)", "xcu280-fsvh2892-2L-e",
        "xilinx_u280_gen3x16_xdma_1_202211_1",
        {"DSP": 9024, "LUT": 1303680, "FF": 2607360, "BRAM": 2016, "URAM": 960},
        3, {**{f"HBM[{i}]": 0 for i in range(32)}, "DDR[0]": 0, "DDR[1]": 1},
    ),
    "vck5000": Board(
        "vck5000", "VCK5000 (Versal AI Core XCVC1902)", "xcvc1902-vsvd1760-2MP-e-S",
        "xilinx_vck5000_gen4x8_qdma_2_202220_1",
        {"DSP": 1968, "LUT": 899840, "FF": 1799680, "BRAM": 967, "URAM": 463},
        1, {"MC_NOC0": 0},
    ),
}

DEFAULT_BOARD = "u200"


def get_board(name: str) -> Board:
    key = str(name).strip().lower().replace("alveo", "").replace("-", "").replace("_", "").strip()
    try:
        return BOARDS[key]
    except KeyError:
        raise InputError(f"unknown board '{name}' (known: {', '.join(BOARDS)})") from None
