"""Cycles, resources and throughput of a generated GEMM kernel, from the loop nest it is.

Cycles (every loop pipelined, trip count x II plus its pipeline depth per entry):
  load     = load_a + load_b         TK·TM/16 beats at II load_a_ii, then TK·TN/16 at II 1, each
                                     starting with one AXI read latency; no faster than the DDR4
                                     bank gives beats (70% of 19.2 GB/s in long bursts: 0.7 beat per
                                     cycle at 300 MHz)
  compute  = TK·(TM/PM)·(TN/PN) + MAC_DEPTH
  store    = TM·TN/16 · store_ii + STORE_DEPTH
  per tile = (KB - 1) · max(compute, load) + max(compute + store, load)
             (each step's compute overlaps the next step's load; a tile's last step also stores)
  total    = load + MT·NT · per tile + START_CYCLES    (the first panels load before any compute)

Resources: each PE one float multiply (3 DSP, full-DSP core) and one float add in fabric
(``BIND_OP impl=fabric``: no DSP, about 390 LUT and 560 FF, the single-precision adder of the
Floating-Point Operator in its fabric, speed-optimised form); the five on-chip arrays (two A and two
B panels, the accumulator tile) in the banks their partitioning makes, costed as the network
kernels' buffers are; three 512-bit AXI masters, each with a 256-beat burst buffer (burst 64 x 4
outstanding), and the control slave. A kernel cannot span SLRs, so the design must fit one SLR's
share of the board (times the budget fraction).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from irc.errors import TargetError
from irc.targets.fpga_hls.boards import RESOURCES, Board
from irc.targets.fpga_hls.gemm.config import MAC_DEPTH, GemmConfig, W
from irc.targets.fpga_hls.resources import AXI_LITE, AXI_MASTER, CONTROL, F_MUL, START_CYCLES, memory_cost
from irc.targets.fpga_hls.slr import slr_share

#: cycles from a read burst's request to its first beat (DDR4 behind the shell, about 200 ns at 300 MHz)
AXI_LATENCY = 64
STORE_DEPTH = 8
#: one DDR4-2400 bank (64-bit) and the share of it that long read bursts reach
DDR_GBPS = 19.2
DDR_EFFICIENCY = 0.7
F_ADD_FABRIC = {"DSP": 0.0, "LUT": 390.0, "FF": 560.0, "BRAM": 0.0, "URAM": 0.0}
#: a 512-bit AXI master: the adapter, its data registers, a 256 x 512 burst buffer
BURST_BEATS = 256


def _sum(*costs: dict) -> dict:
    return {r: sum(c.get(r, 0.0) for c in costs) for r in RESOURCES}


def _times(c: dict, n: float) -> dict:
    return {r: c.get(r, 0.0) * n for r in RESOURCES}


@dataclass(frozen=True, slots=True)
class GemmModel:
    """The modelled kernel: its loops (label -> trip count, II), cycle terms and resources."""

    cfg: GemmConfig
    loops: dict[str, tuple[int, int]]
    load: int
    compute: int
    store: int
    tile: int
    cycles: int
    cost: dict[str, float]

    @property
    def flops(self) -> int:
        return 2 * self.cfg.M * self.cfg.N * self.cfg.K

    def seconds(self, clock_mhz: float) -> float:
        return self.cycles / (clock_mhz * 1e6)

    def gflops(self, clock_mhz: float) -> float:
        return self.flops / self.seconds(clock_mhz) / 1e9

    def peak_gflops(self, clock_mhz: float) -> float:
        """The PE array's bound: 2 flops per PE per cycle."""
        return 2 * self.cfg.PM * self.cfg.PN * clock_mhz * 1e-3

    @property
    def efficiency(self) -> float:
        """Share of the cycles the PEs do useful multiply-adds."""
        c = self.cfg
        return c.M * c.N * c.K / (c.PM * c.PN) / self.cycles


def loops(cfg: GemmConfig) -> dict[str, tuple[int, int]]:
    """The pipelined loops of the generated code (their labels): trip count and II."""
    c = cfg
    return {"load_a": (c.TK * c.TM // W, c.load_a_ii), "load_b": (c.TK * c.TN // W, 1),
            "mac": (c.TK * (c.TM // c.PM) * (c.TN // c.PN), 1), "store_c": (c.TM * c.TN // W, c.store_ii)}


def resources(cfg: GemmConfig, board: Board | None) -> dict[str, float]:
    c = cfg
    pes = _times(_sum(F_MUL, F_ADD_FABRIC), c.PM * c.PN)
    panels = _sum(_times(memory_cost(c.TK * c.TM, 32, c.PM, board), 2), _times(memory_cost(c.TK * c.TN, 32, c.PN, board), 2))
    acc = memory_cost(c.TM * c.TN, 32, c.PM * c.PN, board)
    master = _sum(AXI_MASTER, {"FF": 2 * 512}, memory_cost(BURST_BEATS, 512, 1, board))
    # a beat spreads over (or gathers from) 16 banks: a 32-bit 16-way multiplexer per path
    beats = {"LUT": 3 * W * 32, "FF": 3 * W * 32}
    total = _sum(pes, panels, acc, _times(master, 3), beats, AXI_LITE, CONTROL)
    return {r: float(int(-(-total[r] // 1))) for r in RESOURCES}


def beats_per_cycle(clock_mhz: float) -> float:
    """Read beats (64 B) one DDR bank delivers per kernel cycle, at most one."""
    return min(1.0, DDR_EFFICIENCY * DDR_GBPS * 1e9 / (64 * clock_mhz * 1e6))


def model(cfg: GemmConfig, board: Board | None = None, clock_mhz: float = 300.0) -> GemmModel:
    lp = loops(cfg)
    ddr = beats_per_cycle(clock_mhz)
    load = sum(max(trips * ii, math.ceil(trips / ddr)) for trips, ii in (lp["load_a"], lp["load_b"])) + 2 * AXI_LATENCY
    compute = lp["mac"][0] * lp["mac"][1] + MAC_DEPTH
    store = lp["store_c"][0] * lp["store_c"][1] + STORE_DEPTH
    tile = (cfg.KB - 1) * max(compute, load) + max(compute + store, load)
    cycles = load + cfg.MT * cfg.NT * tile + START_CYCLES
    return GemmModel(cfg, lp, load, compute, store, tile, cycles, resources(cfg, board))


def check_fits(m: GemmModel, board: Board, fraction: float) -> None:
    """TargetError naming the first resource the kernel needs beyond one SLR's share."""
    room = slr_share(board, fraction)
    for r in RESOURCES:
        if m.cost[r] > room[r]:
            raise TargetError(f"a {m.cfg.PM}x{m.cfg.PN} PE array with {m.cfg.TM}x{m.cfg.TN}x{m.cfg.TK} tiles "
                              f"needs {int(m.cost[r]):,} {r}, more than {fraction:.0%} of one SLR of the "
                              f"{board.title} ({int(room[r]):,}): use a smaller pe or tile", op="gemm")
