"""The Quartus project and the Avalon wrapper of an export: the project files name every RTL and
memory file of the export, the chosen device's part and the design's clock; the wrapper lints
clean with ``verilator --lint-only -Wall`` and, simulated with Icarus Verilog, streams the
exported input vectors through its Avalon-ST sink with random stalls into exactly the expected
output beats, framed per frame, with CSR counters that agree with the traffic."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from irc.errors import InputError
from irc.targets.dneuro.devices import DEVICES, Device, get_device
from irc.targets.dneuro.emulator import Emulator
from irc.targets.dneuro.export import write_design
from irc.targets.dneuro.mapping import map_graph
from irc.targets.dneuro.quartus import PARTS, part_number
from irc.targets.dneuro.render import top_name
from irc.targets.dneuro.sim import available
from irc.targets.dneuro.tune import evaluate, minimum, tune
from irc.targets.dneuro.wrapper import CSR_ID, stream_geometry, wrapper_name
from tests.support.marks import params

from .qgraphs import QBuilder, lenet


def tiny(batch: int = 1):
    """Two convs, a max pool and a classifier on 6x6 frames: every stream kind, a short simulation."""
    q = QBuilder("qtiny", 3)
    x = q.input((batch, 2, 6, 6))
    x = q.maxpool(q.conv(x, 4, 3), 2)
    x = q.fc(q.conv(x, 4, 1), 5, relu=False, signed=True)
    return q.output(x)


GRAPHS = {"tiny": tiny, "lenet": lambda: lenet(1, image=16)}


def export(tmp: Path, name: str, device: str = "arria10-gx1150", clock_mhz: float = 200.0, frames: int = 3,
           tuned: bool = True, streamed: frozenset[str] | None = None):
    g = GRAPHS[name]()
    lg = map_graph(g)
    dev = get_device(device)
    d = tune(lg, dev, clock_mhz=clock_mhz, streamed=streamed).design if tuned else evaluate(lg, dev, minimum(lg), clock_mhz)
    x = np.random.default_rng(5).standard_normal((frames, *g.inputs[0].shape[1:])).astype(np.float32) * 2
    out = tmp / name
    write_design(out, d, Emulator(lg).quantize_input(x))
    return d, out


def _assignments(qsf: str, name: str) -> list[str]:
    return re.findall(rf"^set_global_assignment -name {name} (.+)$", qsf, re.M)


@pytest.mark.parametrize("device, clock_mhz", [("arria10-gx1150", 200.0), ("arria10-sx660", 287.5)])
def test_project_files_are_consistent(tmp_path, device, clock_mhz):
    d, out = export(tmp_path, "tiny", device, clock_mhz, frames=1, tuned=False)
    top = top_name(d.lg)
    q = out / "quartus"
    qsf = (q / f"{top}.qsf").read_text()
    assert f'PROJECT_REVISION = "{top}"' in (q / f"{top}.qpf").read_text()
    assert _assignments(qsf, "FAMILY") == ['"Arria 10"']
    assert _assignments(qsf, "DEVICE") == [PARTS[device]]
    assert _assignments(qsf, "TOP_LEVEL_ENTITY") == [wrapper_name(d.lg)]
    verilog = _assignments(qsf, "VERILOG_FILE")
    assert all((q / p).is_file() for p in verilog), verilog
    assert sorted((q / p).resolve() for p in verilog) == sorted(p.resolve() for p in (out / "rtl").glob("*.v"))
    mifs = _assignments(qsf, "MIF_FILE")
    assert mifs and all((q / p).is_file() for p in mifs)
    assert sorted((q / p).resolve() for p in mifs) == sorted(p.resolve() for p in (out / "mem").glob("*.mif"))
    sources = "".join((q / p).read_text() for p in verilog)
    assert re.search(rf"^module {wrapper_name(d.lg)} \(", sources, re.M)
    assert _assignments(qsf, "SDC_FILE") == [f"{top}.sdc"]
    sdc = (q / f"{top}.sdc").read_text()
    period = float(re.search(r"create_clock -name clk -period ([0-9.]+) \[get_ports \{clk\}\]", sdc).group(1))
    assert period == pytest.approx(1000.0 / clock_mhz, abs=5e-4)
    readme = (q / "README.md").read_text()
    assert f"quartus_sh --flow compile {top}" in readme and PARTS[device] in readme


def test_every_device_has_a_part_of_its_size_and_kind():
    assert set(PARTS) == set(DEVICES)
    for name, dev in DEVICES.items():
        kind, size = re.fullmatch(r"arria10-(gx|sx)(\d+)", name).groups()
        part = part_number(dev)
        assert re.fullmatch(r"10A[XS]\d{3}[A-Z]\d[A-Z]\d{2}[IE]\dSG", part), part
        assert part[:4] == ("10AX" if kind == "gx" else "10AS") and int(part[4:7]) == int(size) // 10, (name, part)


def test_unknown_device_has_no_part():
    with pytest.raises(InputError, match="arria10-gx999"):
        part_number(Device("arria10-gx999", "unknown", 1.0, 1, 2))


@pytest.mark.skipif(shutil.which("verilator") is None, reason="verilator is not installed")
@pytest.mark.parametrize("name", params(["tiny", "lenet"], fast={"tiny"}))
def test_wrapper_lints_clean(tmp_path, name):
    d, out = export(tmp_path, name, frames=1)
    rtl = sorted(p.name for p in (out / "rtl").glob("*.v"))
    r = subprocess.run(["verilator", "--lint-only", "-Wall", "--top-module", wrapper_name(d.lg), *rtl],
                       cwd=out / "rtl", capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and "%Warning" not in r.stderr, r.stderr[-3000:]


def _simulate(out: Path, stall: bool, bad_sop: bool = False) -> tuple[list[str], dict[str, str], list[str]]:
    """Icarus Verilog run of tb_avalon: (output beats, {csr line key: value}, framing errors)."""
    r = subprocess.run(["iverilog", "-g2012", "-s", "tb_avalon", "-o", "tb_avalon.vvp",
                        *sorted(p.relative_to(out).as_posix() for p in (out / "rtl").glob("*.v")),
                        *sorted(p.relative_to(out).as_posix() for p in (out / "tb").glob("dn_*.v")), "tb/tb_avalon.v"],
                       cwd=out, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    r = subprocess.run(["vvp", "-n", "tb_avalon.vvp", f"+STALL={int(stall)}", f"+BADSOP={int(bad_sop)}"], cwd=out,
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    csr, framing = {}, []
    for line in (out / "sim_avalon_csr.txt").read_text().splitlines():
        key, _, rest = line.partition(" ")
        assert key != "timeout", line
        if key == "framing":
            framing.append(rest)
        elif key == "reg":
            address, value = rest.split()
            csr[f"reg {address}"] = value
        else:
            csr[key] = rest
    return (out / "sim_avalon_output.hex").read_text().lower().split(), csr, framing


@pytest.mark.skipif(available("iverilog") is None, reason="Icarus Verilog (iverilog, vvp) is not installed")
@pytest.mark.parametrize("name, stall", params([("tiny", True), ("tiny", False), ("lenet", True)], fast={"tiny-True"}))
def test_wrapper_streams_frames_and_counts_them(tmp_path, name, stall):
    frames = 3
    d, out = export(tmp_path, name, frames=frames)
    words, csr, framing = _simulate(out, stall)
    assert words == (out / "vectors" / "output.hex").read_text().split()
    assert framing == []
    _, ib, _, ob = stream_geometry(d)
    reg = {k: int(csr[f"reg {k}"], 16) for k in range(8)}
    assert reg[0] == CSR_ID
    assert reg[1] == 0b0010  # idle, no framing error, no partial input frame
    assert reg[2] == frames and reg[5] == frames
    assert reg[3] == int(csr["expect_last_cycles"]) and reg[3] >= d.cycles
    assert (reg[6], reg[7]) == (ib, ob)
    assert int(csr["status_after_clear"], 16) == 0b0010
    assert int(csr["after_soft_reset"], 16) == 0
    # A soft reset in the middle of a frame drops it; the next frame comes out whole and right.
    assert (out / "sim_avalon_restart.hex").read_text().lower().split() == words[:ob]
    assert [int(v, 16) for v in csr["after_restart"].split()] == [1, 1]


@pytest.mark.skipif(available("iverilog") is None, reason="Icarus Verilog (iverilog, vvp) is not installed")
def test_missing_startofpacket_sets_the_sticky_framing_error(tmp_path):
    d, out = export(tmp_path, "tiny", frames=2)
    words, csr, framing = _simulate(out, stall=False, bad_sop=True)
    assert words == (out / "vectors" / "output.hex").read_text().split()  # the beat count still frames
    assert framing == []
    assert int(csr["reg 1"], 16) == 0b0110  # idle, framing error
    assert int(csr["reg 2"], 16) == 2
    assert int(csr["status_after_clear"], 16) == 0b0010
