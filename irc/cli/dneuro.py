"""``irc dneuro``: the DNeuro flow's tools: ``devices`` (the device table), ``fit`` (which models fit
which devices), ``curve`` (the trade-off of DSP budget against frame rate, as CSV and PNG) and
``partition`` (one model split over several devices joined by links)."""

from __future__ import annotations

import click

from irc.errors import InputError


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


@dneuro.command("partition")
@click.argument("model")
@click.option("--device", default="arria10-gx1150", show_default=True, metavar="NAME", help="The device (every one alike).")
@click.option("--count", type=int, default=2, show_default=True, help="Devices in the chain.")
@click.option("--link-gbps", "link_gbps", type=float, required=True, help="Payload bandwidth of each link, Gb/s.")
@click.option("--shape", "shapes", multiple=True, metavar="NAME=DIMS", help="Bind an input shape (default: batch 1).")
@click.option("--clock-mhz", "clock_mhz", type=float, default=200.0, show_default=True, help="The clock.")
@click.option("--max-dsp", "max_dsp", type=float, default=1.0, show_default=True, help="DSP budget per device (share).")
@click.option("--max-m20k", "max_m20k", type=float, default=1.0, show_default=True, help="M20K budget per device (share).")
@click.option("--calib", metavar="DATA.npz", help="Calibration inputs (needed with -o: the projects hold int8 weights).")
@click.option("--frames", type=int, default=1, show_default=True, help="Test frames in each device's vectors.")
@click.option("--json", "json_path", metavar="FILE.json", help="Also write the report as JSON.")
@click.option("--simulate", is_flag=True, help="With -o: simulate each device's RTL on its vectors before writing.")
@click.option("-o", "--output", "out", metavar="DIR", help="Write one project per device and the report into DIR.")
def partition_cmd(model: str, device: str, count: int, link_gbps: float, shapes: tuple[str, ...], clock_mhz: float,
                  max_dsp: float, max_m20k: float, calib: str | None, frames: int, json_path: str | None,
                  simulate: bool, out: str | None) -> None:
    """Split MODEL over COUNT devices joined by links of LINK-GBPS: the pipeline of device stages
    with the highest frame rate (then the lowest latency); with -o, one project per device, the
    devices emulated in sequence and checked against one device bit for bit."""
    import json

    from irc.fileio import atomic_write
    from irc.targets.dneuro.devices import get_device
    from irc.targets.dneuro.partition import split
    from irc.targets.dneuro.partition_files import split_json, split_text, write_split

    dev = get_device(device)
    if out is not None and calib is None:
        raise InputError("-o writes int8 projects and needs calibration inputs: give --calib DATA.npz")
    if frames < 1:
        raise InputError(f"--frames must be at least 1, got {frames}")
    if simulate and out is None:
        raise InputError("--simulate checks the projects -o writes: give -o DIR")
    notes = click.get_current_context().find_root().obj
    if calib is None:
        lg, codes = _layer_graph(model, shapes), None
    else:
        lg, codes = _quantized_layers(model, shapes, dev.name, calib, frames)
    sp = split(lg, dev, count, link_gbps, clock_mhz=clock_mhz, max_dsp=max_dsp, max_m20k=max_m20k)
    click.echo(split_text(sp), nl=False)
    if json_path:
        atomic_write(json_path, json.dumps(split_json(sp), indent=1) + "\n")
        notes.append(f"wrote {json_path}")
    if out is not None:
        write_split(out, sp, codes, simulate=simulate)
        notes.append(f"wrote {out}: {count} device project(s); the devices in sequence equal one device bit for bit")


def _quantized_layers(path: str, shapes: tuple[str, ...], device: str, calib: str, frames: int):
    """The int8 layer graph of an ONNX model (the dneuro flow's quantization and its emulator check)
    and test frames: the first calibration inputs as codes."""
    from irc.api import compile as irc_compile
    from irc.cli.args import bind_dynamic, parse_shapes
    from irc.frontend.onnx import input_specs, load_model

    proto = load_model(path)
    bound, _ = bind_dynamic(input_specs(proto), parse_shapes(shapes))
    exe = irc_compile(proto, "fpga", shapes=bound, flow="dneuro", device=device, calib=calib, frames=frames).executable
    return exe.layers, exe.test_frames()
