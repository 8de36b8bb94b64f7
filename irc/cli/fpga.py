"""``irc fpga``: the HLS flow's tools: ``report`` (irc's estimate of every kernel of a saved project
next to its Vitis HLS synthesis report) and ``gemm`` (a Vitis project of one large fp32 GEMM)."""

from __future__ import annotations

import click

from irc.errors import InputError


@click.group("fpga", short_help="FPGA HLS flow: synthesis report vs estimate, a GEMM kernel project.")
def fpga() -> None:
    """The FPGA HLS flow's tools (compile a model with: irc compile MODEL --target fpga -o DIR)."""


@fpga.command("report", short_help="Vitis HLS synthesis against irc's estimate, per kernel of a project.")
@click.argument("project", metavar="PROJECT")
def report_cmd(project: str) -> None:
    """irc's estimate against Vitis HLS synthesis for each kernel of PROJECT (a folder written by
    irc compile --target fpga -o, after `make csynth` there): latency, II, BRAM_18K, DSP, FF, LUT,
    URAM and the ratio synthesis / estimate."""
    from irc.targets.fpga_hls.report import format_report, read_reports

    click.echo(format_report(read_reports(project)), nl=False)


def _pair(text: str | None, count: int, what: str) -> tuple[int, ...] | None:
    """'24x16' -> (24, 16); InputError naming the flag otherwise."""
    if text is None:
        return None
    parts = text.lower().replace(",", "x").split("x")
    try:
        vals = tuple(int(p) for p in parts)
    except ValueError:
        vals = ()
    if len(vals) != count or min(vals) < 1:
        shape = "x".join(["N"] * count)
        raise InputError(f"{what} must be {count} positive integers as {shape}, got '{text}'")
    return vals


@fpga.command("gemm", short_help="An fp32 GEMM kernel: its model, C simulation, Vitis project.")
@click.argument("m", type=int)
@click.argument("n", type=int)
@click.argument("k", type=int)
@click.option("--board", default="u200", show_default=True, metavar="NAME", help="The board (u200, u250, u280, vck5000).")
@click.option("--pe", metavar="ROWSxCOLS", help="The PE array (default 24x16: 384 multiply-adds per cycle).")
@click.option("--tile", metavar="TMxTNxTK", help="The on-chip tile (default: the fastest modelled one that fits).")
@click.option("--clock-mhz", "clock_mhz", type=float, default=300.0, show_default=True, help="The kernel clock.")
@click.option("--fraction", type=float, default=0.8, show_default=True, help="Share of one SLR the kernel may fill.")
@click.option("--csim", is_flag=True, help="C-simulate the kernel with g++ on seeded matrices against numpy first.")
@click.option("-o", "--output", "out", metavar="DIR", help="Write the Vitis project into DIR.")
def gemm_cmd(m: int, n: int, k: int, board: str, pe: str | None, tile: str | None, clock_mhz: float, fraction: float,
             csim: bool, out: str | None) -> None:
    """An fp32 GEMM kernel C (M x N) = A (M x K) · B (K x N): its modelled cycles, throughput and
    resources; with -o, its Vitis project (kernel, testbench, HLS Tcl, Makefile, XRT host)."""
    from irc.targets.fpga_hls.gemm import generate

    design = generate(m, n, k, board=board, pe=_pair(pe, 2, "--pe"), tile=_pair(tile, 3, "--tile"),
                      clock_mhz=clock_mhz, fraction=fraction)
    click.echo(design.report(), nl=False)
    notes = click.get_current_context().find_root().obj
    if csim:
        from irc.targets.fpga_hls.gemm.csim import check

        click.echo(check(design))
    if out is not None:
        design.save(out)
        notes.append(f"wrote {out}")
