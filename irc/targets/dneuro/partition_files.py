"""Reports and export of a split over several FPGAs (partition.py).

    partition.json   per device: layers, frames/s, latency, DSP and M20K; per link: the tensors
                     crossing, bits per frame, frames/s and utilisation; the end-to-end rate
    partition.txt    the same as text
    device<i>/       device i's export (export.py: RTL, .mem/.mif, vectors, testbench, Avalon
                     wrapper, Quartus project) and a README.md saying how its streams meet the links;
                     with ``simulate``, simulation.txt (its RTL on its vectors)

The whole folder is written at once or not at all, and only after the devices, emulated one
after the other, give the single-device emulator's output bit for bit on the test frames.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from irc.errors import TargetError
from irc.fileio import atomic_dir
from irc.targets.dneuro.emulator import Emulator
from irc.targets.dneuro.partition import Split, Stage, emulate
from irc.targets.dneuro.report import design_report
from irc.targets.dneuro.wrapper import stream_geometry, wrapper_name


def _stage_entry(s: Stage) -> dict:
    d, dev = s.tuning.design, s.tuning.design.device
    return {"device": s.index, "first_layer": s.lg.layers[1].name, "last_layer": s.lg.output.name,
            "blocks": len(s.lg) - 1, "input": s.lg.input.name, "input_shape": str(s.lg.input.shape),
            "fits": s.tuning.fits, "fps": s.fps, "latency_ms": d.latency_ms, "slowest_layer": d.slowest.name,
            "dsp": d.dsp, "dsp_share": d.dsp / dev.dsp, "m20k": d.m20k, "m20k_share": d.m20k / dev.m20k_blocks,
            "macs_per_frame": d.macs}


def split_json(sp: Split) -> dict:
    """The split as plain data (partition.json)."""
    single = sp.single
    return {
        "model": sp.lg.name, "device": sp.device.name, "count": len(sp.stages), "link_gbps": sp.link_gbps,
        "clock_mhz": sp.stages[0].tuning.design.clock_mhz,
        "fps": sp.fps, "latency_ms": sp.latency_ms, "bottleneck": sp.bottleneck,
        "single_device": {"fits": single.fits, "fps": single.design.fps if single.fits else None,
                          "stop": single.stop},
        "devices": [_stage_entry(s) for s in sp.stages],
        "links": [{"link": k.index, "from_device": k.index, "to_device": k.index + 1, "tensors": list(k.cut.tensors),
                   "bits_per_frame": k.cut.bits, "fps": k.fps, "utilisation": sp.fps / k.fps,
                   "transfer_ms": k.latency_ms} for k in sp.links],
        "search": sp.searched,
    }


def split_text(sp: Split) -> str:
    """The split as a short table (partition.txt, and what ``irc dneuro partition`` prints)."""
    d0 = sp.stages[0].tuning.design
    lines = [f"{sp.lg.name} over {len(sp.stages)} x {sp.device.name} at {d0.clock_mhz:g} MHz, "
             f"links of {sp.link_gbps:g} Gb/s", ""]
    head = f"{'stage':<9}{'layers':<40}{'frames/s':>13}{'DSP':>11}{'M20K':>12}{'latency ms':>12}"
    lines += [head, "-" * len(head)]
    for i, s in enumerate(sp.stages):
        d, dev = s.tuning.design, s.tuning.design.device
        span = f"{s.lg.layers[1].name} .. {s.lg.output.name}"
        span = span if len(span) <= 38 else span[:17] + ".." + span[-19:]
        lines.append(f"{'device ' + str(s.index):<9}{span:<40}{s.fps:>13,.1f}{d.dsp:>6} {100 * d.dsp / dev.dsp:>3.0f}%"
                     f"{d.m20k:>7} {100 * d.m20k / dev.m20k_blocks:>3.0f}%{s.latency_ms:>12.3f}")
        if i < len(sp.links):
            k = sp.links[i]
            what = ", ".join(k.cut.tensors)
            what = what if len(what) <= 24 else what[:22] + ".."
            lines.append(f"{'link ' + str(k.index):<9}{what + f' ({k.cut.bits / 8 / 1024:.1f} KiB/frame)':<40}"
                         f"{k.fps:>13,.1f}{'':>11}{f'{100 * sp.fps / k.fps:.0f}% busy':>12}{k.latency_ms:>12.3f}")
    lines += ["", f"end to end  {sp.fps:,.1f} frames/s (set by {sp.bottleneck}), latency {sp.latency_ms:.3f} ms"]
    single = sp.single
    lines.append(f"one device  {single.design.fps:,.1f} frames/s" if single.fits else
                 f"one device  does not fit: {single.stop}")
    s = sp.searched
    lines.append(f"search      {s['usable_cuts']} usable cuts of {s['cut_positions']} (one tensor crossing), "
                 f"{s['parts_walked']} parts tuned as far as needed, {s['parts_tuned_fully']} to the end")
    return "\n".join(lines) + "\n"


def device_readme(sp: Split, s: Stage) -> str:
    """How device ``s`` sits in the chain: which tensor its sink and source carry, and from/to where."""
    iw, ib, ow, ob = stream_geometry(s.tuning.design)
    wrap = wrapper_name(s.lg)
    first, last = s.index == 0, s.index == len(sp.stages) - 1
    src = "the host (input frames quantized by the host)" if first else (
        f"link {s.index - 1}, from device {s.index - 1}: tensor `{s.lg.input.name}` ({s.lg.input.shape})")
    dst = "the host" if last else (
        f"link {s.index}, to device {s.index + 1}: tensor `{s.lg.output.name}` ({s.lg.output.shape})")
    return f"""# Device {s.index} of {len(sp.stages)}: {s.lg.name}

Blocks `{s.lg.layers[1].name}` .. `{s.lg.output.name}` of `{sp.lg.name}` on one {sp.device.title}, tuned to
{s.fps:,.1f} frames/s ({s.tuning.design.dsp} DSP, {s.tuning.design.m20k} M20K). Whole split: see
`../partition.txt`; this folder is a complete export (rtl/, mem/, vectors/, tb/, quartus/).

## Link interface

The Avalon-ST ports of `{wrap}` are the link interface:

- sink `asi_*` ({ib} beats of {iw} bits per frame) from {src};
- source `aso_*` ({ob} beats of {ow} bits per frame) to {dst}.

Between devices the link carries the tensor's codes, one byte each, pixel by pixel in raster
order, the channels of a pixel in order, one packet per frame: the sending device's source
stream, unchanged. Connect `aso_*` of device i to the transmit side of the link IP (Interlaken,
SerialLite III or a 40G Ethernet MAC, at least {sp.link_gbps:g} Gb/s of payload) and its receive
side to `asi_*` of device i + 1, with a width adapter where the beat widths differ (packet
boundaries are kept; the sink counts beats). Backpressure crosses the link with the IP's flow
control; a device stalls, never drops, when the next one is slower.

The vectors in `vectors/` are this device's input and output in the chain: device {s.index}'s
input vectors equal the previous device's output vectors.
"""


def check_split(sp: Split, codes: np.ndarray) -> list[np.ndarray]:
    """The devices' outputs on ``codes``; TargetError unless the last equals the single-device
    emulator bit for bit."""
    outs = emulate(sp.stages, codes)
    want = Emulator(sp.lg).run_codes(codes)[sp.lg.output.name]
    if not np.array_equal(outs[-1], want):
        raise TargetError(f"internal: the split of '{sp.lg.name}' differs from the single-device emulator")
    return outs


def write_split(out: str | Path, sp: Split, codes: np.ndarray, *, simulate: bool = False,
                simulator: str | None = None) -> list[Path]:
    """Write the split's folder ``out`` (see the module docstring) with test vectors for input
    ``codes``; returns the paths written. With ``simulate``, each device's RTL is simulated on
    its vectors first (export.check_simulation) and the folder is written only if every device
    equals its emulator; ``device<i>/simulation.txt`` records each run."""
    from irc.targets.dneuro.export import check_simulation, design_files

    bad = [s.index for s in sp.stages if not s.tuning.fits]
    if bad:
        raise TargetError(f"device(s) {', '.join(map(str, bad))} of the split do not fit")
    outs = check_split(sp, codes)
    text = split_text(sp) + f"check       the devices in sequence equal the single-device emulator bit for bit on " \
                            f"{codes.shape[0]} frame(s)\n"
    files = {"partition.json": json.dumps(split_json(sp), indent=1) + "\n", "partition.txt": text}
    x = np.asarray(codes)
    for s, y in zip(sp.stages, outs):
        for rel, body in design_files(s.tuning.design, x, design_report(s.tuning)).items():
            files[f"device{s.index}/{rel}"] = body
        files[f"device{s.index}/README.md"] = device_readme(sp, s)
        x = y
    out = Path(out)
    with atomic_dir(out) as tmp:
        for rel, body in files.items():
            p = tmp / rel
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_text(body)
        if simulate:
            for s in sp.stages:
                log = check_simulation(tmp / f"device{s.index}", s.tuning.design, simulator)
                files[f"device{s.index}/simulation.txt"] = log
                (tmp / f"device{s.index}" / "simulation.txt").write_text(log)
    return [out / rel for rel in files]
