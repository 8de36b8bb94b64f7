"""Modelled throughput of irc's generated fp32 GEMM kernel (irc.targets.fpga_hls.gemm) on training-size
matrices: one row per board and shape with the PE array, the tile the model chose, cycles, time,
GFLOP/s against the PE array's peak, and the share of one SLR the kernel takes.

    python benchmarks/hls_gemm.py [--board u200] [--pe 24x16] [--clock-mhz 300] [--sizes 1024,2048,4096]
                                  [--csim 96]

Figures are the model's (model.py: the loop nest's trip counts and IIs, the DDR bank's rate), not
measurements; the issue's goal is >= 210 GFLOP/s fp32 on a U200, which Xilinx's GEMX reached there.
``--csim N`` first C-simulates an N x N x N kernel with g++ against numpy (the same code, smaller).
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def main() -> None:
    from irc.targets.fpga_hls.boards import RESOURCES
    from irc.targets.fpga_hls.gemm import generate
    from irc.targets.fpga_hls.slr import slr_share

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--board", default="u200", help="u200, u250, u280 or vck5000 (comma-separated for several)")
    ap.add_argument("--pe", default="24x16", help="PE array, ROWSxCOLS")
    ap.add_argument("--clock-mhz", type=float, default=300.0)
    ap.add_argument("--sizes", default="1024,2048,4096,8192", help="square sizes, and MxNxK shapes")
    ap.add_argument("--csim", type=int, default=0, metavar="N", help="C-simulate an N x N x N kernel first")
    args = ap.parse_args()
    pe = tuple(int(v) for v in args.pe.lower().split("x"))
    if args.csim:
        n = args.csim
        d = generate(n, n, n, pe=pe)
        rng = np.random.default_rng(0)
        a, b = rng.uniform(0.5, 1.5, (n, n)).astype(np.float32), rng.uniform(0.5, 1.5, (n, n)).astype(np.float32)
        t = time.perf_counter()
        got = d.csim(a, b)
        err = float(np.max(np.abs(got - a.astype(np.float64) @ b) / (a.astype(np.float64) @ b)))
        print(f"csim {n}x{n}x{n}: largest relative error {err:.2e} (g++ build and run {time.perf_counter() - t:.1f} s)")
    shapes = [tuple(int(v) for v in s.split("x")) if "x" in s else (int(s),) * 3 for s in args.sizes.split(",")]
    head = (f"{'board':<8}{'M x N x K':>18}{'PE':>8}{'tile':>14}{'cycles':>14}{'ms':>10}{'GFLOP/s':>9}{'peak':>7}"
            f"{'busy':>7}" + "".join(f"{r:>7}" for r in RESOURCES))
    print(head + "   (resources: share of one SLR)")
    for board in args.board.split(","):
        for m, n, k in shapes:
            d = generate(m, n, k, board=board, pe=pe, clock_mhz=args.clock_mhz)
            c, mod = d.cfg, d.model
            room = slr_share(d.board)
            print(f"{board:<8}{f'{m}x{n}x{k}':>18}{f'{c.PM}x{c.PN}':>8}{f'{c.TM}x{c.TN}x{c.TK}':>14}{mod.cycles:>14,}"
                  f"{mod.seconds(d.clock_mhz) * 1e3:>10.2f}{d.gflops:>9.1f}{mod.peak_gflops(d.clock_mhz):>7.0f}"
                  f"{mod.efficiency:>7.1%}" + "".join(f"{mod.cost[r] / room[r]:>7.0%}" for r in RESOURCES))


if __name__ == "__main__":
    main()
