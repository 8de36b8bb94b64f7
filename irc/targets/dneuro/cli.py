"""The DNeuro flow on the command line.

Flags of ``irc compile`` / ``irc run`` (target options of the same name, ``--opt`` sets them too):
``--device``, ``--max-dsp``, ``--max-m20k``, ``--clock-mhz``, ``--target-fps``, ``--frames``,
``--simulate``; with ``--target fpga --flow dneuro``. Calibration data comes with the shared
``--calib`` (and ``--calib-method``, ``--activation-scheme``) flags of irc.cli.quant_flags.

The ``irc dneuro`` group: ``devices`` (the device table), ``fit`` (which models fit which
devices) and ``curve`` (the trade-off of DSP budget against frame rate, as CSV and PNG).
"""

from __future__ import annotations

import click

from irc.errors import InputError

_KEY = "irc_dneuro_flags"


def _keep(ctx: click.Context, param: click.Parameter, value):
    if value is not None and value is not False:
        ctx.meta.setdefault(_KEY, {})[param.name] = value
    return value


def _flag(*decls: str, **kw):
    return click.option(*decls, expose_value=False, callback=_keep, **kw)


_FLAGS = [
    _flag("--device", metavar="NAME", help="fpga dneuro: the Arria 10 device (arria10-gx1150 [default], ...)."),
    _flag("--max-dsp", "max_dsp", type=float, metavar="F", help="fpga dneuro: share of the DSP blocks to use (1.0)."),
    _flag("--max-m20k", "max_m20k", type=float, metavar="F", help="fpga dneuro: share of the M20K blocks to use (1.0)."),
    _flag("--clock-mhz", "clock_mhz", type=float, metavar="MHZ", help="fpga: the clock (dneuro: 200 MHz)."),
    _flag("--target-fps", "target_fps", type=float, metavar="FPS",
          help="fpga dneuro: stop raising parallelism at this frame rate."),
    _flag("--frames", type=int, metavar="N", help="fpga dneuro: frames in the exported test vectors (1)."),
    _flag("--simulate", metavar="SIM", type=click.Choice(["verilator", "iverilog", "any"]),
          help="fpga dneuro: simulate the exported RTL on its test vectors before writing it."),
]


def dneuro_flags(f):
    """Adds the flags to a click command."""
    for opt in reversed(_FLAGS):
        f = opt(f)
    return f


def dneuro_flag_options(target: str) -> dict:
    """The flags given on the current command line, as options of ``target`` (InputError for a
    flag the target does not take)."""
    from irc.targets import get_target

    given = dict(click.get_current_context().meta.get(_KEY, {}))
    if not given:
        return {}
    known = get_target(target).options
    stray = [k for k in given if k not in known]
    if stray:
        names = ", ".join(f"--{k.replace('_', '-')}" for k in stray)
        raise InputError(f"{names} are options of the fpga target (--flow dneuro); the command compiles for '{target}'")
    if given.get("simulate") == "any":
        given["simulate"] = True
    return given


# ----------------------------------------------------------------------------------------
# irc dneuro ...


@click.group("dneuro", short_help="DNeuro flow: device table, model x device fit, trade-off curve.")
def dneuro() -> None:
    """The FPGA DNeuro flow's tools (compile with: irc compile MODEL --target fpga --flow dneuro)."""


@dneuro.command("devices")
def devices_cmd() -> None:
    """The Arria 10 devices: M20K memory, DSP blocks, multipliers."""
    from irc.targets.dneuro.devices import DEVICES

    click.echo(f"{'device':<18}{'part':<28}{'M20K MB':>9}{'M20K':>7}{'DSP':>7}{'MAC/cycle':>11}")
    for name, d in DEVICES.items():
        click.echo(f"{name:<18}{d.title:<28}{d.m20k_mb:>9}{d.m20k_blocks:>7}{d.dsp:>7}{d.macs_per_cycle:>11}")


def _devices(names: tuple[str, ...]):
    from irc.targets.dneuro.devices import device_names, get_device

    return [get_device(n) for n in (names or device_names(distinct=True))]


def _layer_graph(path: str, shapes: tuple[str, ...]):
    """The float layer graph of an ONNX model (the refusal error if a layer has no block)."""
    from irc.cli.args import bind_dynamic, parse_shapes
    from irc.frontend.onnx import input_specs, load_model
    from irc.targets.dneuro.mapping import map_onnx

    proto = load_model(path)
    bound, _ = bind_dynamic(input_specs(proto), parse_shapes(shapes))
    return map_onnx(proto, bound)


def _name(path: str) -> str:
    from pathlib import Path

    return Path(path).stem


@dneuro.command("fit")
@click.argument("models", nargs=-1, required=True)
@click.option("--device", "device_list", multiple=True, metavar="NAME", help="A device (default: every size). Repeatable.")
@click.option("--shape", "shapes", multiple=True, metavar="NAME=DIMS", help="Bind an input shape (default: batch 1).")
@click.option("--clock-mhz", "clock_mhz", type=float, default=200.0, show_default=True, help="Clock of the tuned designs.")
@click.option("--csv", "csv_path", metavar="FILE.csv", help="Also write the table as CSV.")
def fit_cmd(models: tuple[str, ...], device_list: tuple[str, ...], shapes: tuple[str, ...], clock_mhz: float,
            csv_path: str | None) -> None:
    """Which MODELS (ONNX files) fit which Arria 10 devices, and why (standard input: as the
    model declares it, a dynamic batch bound to 1)."""
    from irc.fileio import atomic_write
    from irc.targets.dneuro.fit import fit_csv, fit_table, format_fit

    devs = _devices(device_list)
    graphs = {_name(m): _layer_graph(m, shapes) for m in models}
    cells = fit_table(graphs, devs, clock_mhz)
    click.echo(format_fit(cells, devs), nl=False)
    if csv_path:
        atomic_write(csv_path, fit_csv(cells))
        click.get_current_context().find_root().obj.append(f"wrote {csv_path}")


@dneuro.command("curve")
@click.argument("model")
@click.option("--device", default="arria10-gx1150", show_default=True, metavar="NAME", help="The device.")
@click.option("--shape", "shapes", multiple=True, metavar="NAME=DIMS", help="Bind an input shape (default: batch 1).")
@click.option("--points", type=int, default=24, show_default=True, help="DSP budgets between the minimum and 100%.")
@click.option("--max-m20k", "max_m20k", type=float, default=1.0, show_default=True, help="M20K budget (share).")
@click.option("--clock-mhz", "clock_mhz", type=float, default=200.0, show_default=True, help="The clock.")
@click.option("-o", "--output", "out", required=True, metavar="PREFIX",
              help="Write PREFIX.csv and, with matplotlib installed, PREFIX.png.")
def curve_cmd(model: str, device: str, shapes: tuple[str, ...], points: int, max_m20k: float, clock_mhz: float,
              out: str) -> None:
    """Latency/resource trade-off of MODEL: DSP budget -> frames/s, DSP, M20K, latency."""
    from irc.fileio import atomic_write
    from irc.targets.dneuro.devices import get_device
    from irc.targets.dneuro.fit import curve_csv, curve_png, tradeoff

    if points < 2:
        raise InputError(f"--points must be at least 2, got {points}")
    dev = get_device(device)
    lg = _layer_graph(model, shapes)
    curve = tradeoff(lg, dev, points=points, clock_mhz=clock_mhz, max_m20k=max_m20k)
    click.echo(f"{'DSP budget':>11}{'fps':>12}{'DSP':>7}{'M20K':>7}{'latency ms':>12}")
    for p in curve:
        fps = f"{p.fps:,.1f}" if p.fits else "no fit"
        click.echo(f"{p.dsp_budget:>11}{fps:>12}{p.dsp:>7}{p.m20k:>7}{p.latency_ms:>12.3f}")
    notes = click.get_current_context().find_root().obj
    atomic_write(f"{out}.csv", curve_csv(curve))
    notes.append(f"wrote {out}.csv")
    if curve_png(curve, f"{out}.png", f"{_name(model)} on {dev.name} at {clock_mhz:g} MHz"):
        notes.append(f"wrote {out}.png")
    else:
        notes.append("matplotlib is not installed: wrote the CSV only (pip install 'irc[plot]' for the PNG)")
