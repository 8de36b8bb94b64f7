"""A generated fp32 GEMM kernel for training-size matrices (C = A·B) and its Vitis project.

``generate(M, N, K, board="u200", pe=(24, 16))`` sizes a PE array and on-chip tiles (config.py),
renders the HLS C++ (render.py, templates/), models its cycles and resources from that loop nest
(model.py) and refuses a design that does not fit one SLR. The result C-simulates with g++
(``csim(a, b)``) and saves as a Vitis project (``save(dir)``, project.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from irc.errors import InputError, IRCError
from irc.targets.fpga_hls.boards import DEFAULT_BOARD, Board, get_board
from irc.targets.fpga_hls.gemm.config import GemmConfig, make_config, tile_candidates
from irc.targets.fpga_hls.gemm.model import GemmModel, check_fits, model
from irc.targets.fpga_hls.gemm.render import sources as render_sources

__all__ = ["GemmDesign", "generate"]


@dataclass(slots=True)
class GemmDesign:
    """One generated GEMM kernel for one board."""

    name: str
    cfg: GemmConfig
    board: Board
    clock_mhz: float
    fraction: float
    model: GemmModel
    sources: dict[str, str]

    @property
    def gflops(self) -> float:
        """Modelled throughput at the clock."""
        return self.model.gflops(self.clock_mhz)

    def csim(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """A·B computed by the kernel's C++ (g++), M x N fp32."""
        from irc.targets.fpga_hls.gemm.csim import run

        return run(self.cfg, self.sources, a, b, self.name)

    def report(self) -> str:
        from irc.targets.fpga_hls.gemm.project import format_report

        return format_report(self)

    def save(self, path: str | Path) -> Path:
        from irc.targets.fpga_hls.gemm.project import write_project

        return write_project(self, Path(path))


def _best_tile(cfg: GemmConfig, m: GemmModel, board: Board, fraction: float,
               clock_mhz: float) -> tuple[GemmConfig, GemmModel]:
    """The tile with the fewest modelled cycles that fits (the default one when none does better or
    none fits): a tile that divides the problem wastes no PE cycles on padding."""
    try:
        check_fits(m, board, fraction)
        best = (m.cycles, cfg, m)
    except IRCError:
        best = (math.inf, cfg, m)
    for tile in tile_candidates(cfg.M, cfg.N, cfg.K, (cfg.PM, cfg.PN)):
        c = make_config(cfg.M, cfg.N, cfg.K, (cfg.PM, cfg.PN), tile)
        cm = model(c, board, clock_mhz)
        try:
            check_fits(cm, board, fraction)
        except IRCError:
            continue
        if cm.cycles < best[0]:
            best = (cm.cycles, c, cm)
    return best[1], best[2]


def generate(M: int, N: int, K: int, *, board: str | Board = DEFAULT_BOARD, pe: tuple[int, int] | None = None,
             tile: tuple[int, int, int] | None = None, clock_mhz: float = 300.0, fraction: float = 0.8,
             name: str = "gemm") -> GemmDesign:
    """The GEMM kernel for C (M x N) = A (M x K) · B (K x N) on ``board`` with a ``pe`` = (rows,
    columns) array of multiply-adders and ``tile`` = (TM, TN, TK) (default: the fastest modelled
    tile that fits); InputError for bad sizes, TargetError when it does not fit."""
    b = board if isinstance(board, Board) else get_board(board)
    if not (clock_mhz > 0) or not (0 < fraction <= 1):
        raise InputError(f"gemm: clock_mhz must be positive and fraction in (0, 1], got {clock_mhz} and {fraction}")
    if not name.isidentifier():
        raise InputError(f"gemm: the kernel name must be a C identifier, got '{name}'")
    cfg = make_config(M, N, K, pe, tile)
    m = model(cfg, b, clock_mhz)
    if tile is None:
        cfg, m = _best_tile(cfg, m, b, fraction, clock_mhz)
    check_fits(m, b, fraction)  # (the default tile's refusal, where no tile fits)
    return GemmDesign(name, cfg, b, float(clock_mhz), float(fraction), m, render_sources(cfg, name))
