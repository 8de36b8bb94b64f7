"""RTL simulation of an exported accelerator with Verilator or Icarus Verilog.

The export directory holds everything a simulation needs (rtl/, mem/, vectors/, tb/); the
simulator runs there, so the memory files are found by their relative paths. ``simulate``
compiles once per directory and simulator (the executable is kept in ``sim_<simulator>/``),
runs the testbench, and returns the output beats and the cycle statistics.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from irc.errors import InputError, TargetError

SIMULATORS = ("verilator", "iverilog")
_EXE = {"verilator": "verilator", "iverilog": "iverilog"}


def available(simulator: str | None = None) -> str | None:
    """The simulator to use: ``simulator`` if installed, else the first installed one (None if
    there is none)."""
    if simulator is not None and simulator not in SIMULATORS:
        raise InputError(f"unknown simulator '{simulator}' (known: {', '.join(SIMULATORS)})")
    for s in ([simulator] if simulator else SIMULATORS):
        if shutil.which(_EXE[s]) and (s != "iverilog" or shutil.which("vvp")):
            return s
    return None


@dataclass(slots=True)
class SimResult:
    """Output beats (as integers) and cycle statistics of one simulation run."""

    words: list[int]
    first_input: int | None = None
    first_output: int | None = None
    frame_done: list[int] = field(default_factory=list)
    timeout: str | None = None

    @property
    def frame_cycles(self) -> list[int]:
        """Cycles between consecutive frame ends (the steady-state frame period)."""
        return [b - a for a, b in zip(self.frame_done, self.frame_done[1:])]

    @property
    def latency(self) -> int | None:
        """Cycles from the first input beat to the end of the first output frame."""
        if self.first_input is None or not self.frame_done:
            return None
        return self.frame_done[0] - self.first_input


def sources(build: Path) -> list[str]:
    rtl = sorted(p.relative_to(build).as_posix() for p in (build / "rtl").glob("*.v"))
    models = sorted(p.relative_to(build).as_posix() for p in (build / "tb").glob("dn_*.v"))
    return rtl + models + ["tb/tb.v"]


def _run(cmd: list[str], cwd: Path, timeout: float, what: str) -> None:
    try:
        r = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise TargetError(f"{what} took longer than {timeout:.0f} s") from None
    if r.returncode != 0:
        tail = " ".join((r.stderr or r.stdout).split())[-800:]
        raise TargetError(f"{what} failed ({' '.join(cmd[:2])}...): {tail}")


def build_simulation(build: Path, simulator: str, timeout: float = 600) -> list[str]:
    """Compile the testbench and the design; returns the command that runs it."""
    build = Path(build)
    out = build / f"sim_{simulator}"
    out.mkdir(exist_ok=True)
    if simulator == "verilator":
        exe = out / "Vtb"
        if not exe.exists():
            _run(["verilator", "--binary", "-j", "2", "-Wno-fatal", "-Wno-lint", "-Wno-style", "--top-module", "tb",
                  "-Mdir", out.relative_to(build).as_posix(), "-o", "Vtb", "-CFLAGS", "-O1", *sources(build)],
                 build, timeout, "Verilator compilation")
        return [str(exe.resolve())]
    vvp = out / "tb.vvp"
    if not vvp.exists():
        _run(["iverilog", "-g2012", "-s", "tb", "-o", vvp.relative_to(build).as_posix(), *sources(build)],
             build, timeout, "Icarus Verilog compilation")
    return ["vvp", "-n", str(vvp.resolve())]


def simulate(build: str | Path, simulator: str | None = None, *, stall: bool = False,
             timeout: float = 600) -> SimResult:
    """Run the exported testbench; TargetError if no simulator is installed or it fails."""
    build = Path(build)
    sim = available(simulator)
    if sim is None:
        raise TargetError(f"no RTL simulator found (install {simulator or ' or '.join(SIMULATORS)})")
    cmd = build_simulation(build, sim, timeout)
    for f in ("sim_output.hex", "sim_stats.txt"):
        (build / f).unlink(missing_ok=True)
    _run(cmd + [f"+STALL={int(stall)}"], build, timeout, f"{sim} simulation")
    lines = (build / "sim_output.hex").read_text().split()
    unknown = [k for k, line in enumerate(lines) if any(ch in line.lower() for ch in "xz")]
    if unknown:
        raise TargetError(f"{sim} simulation gave unknown (x/z) bits in output beat {unknown[0]}")
    res = SimResult([int(line, 16) for line in lines])
    for line in (build / "sim_stats.txt").read_text().splitlines():
        key, _, rest = line.partition(" ")
        if key == "first_input":
            res.first_input = int(rest)
        elif key == "first_output":
            res.first_output = int(rest)
        elif key == "frame_done":
            res.frame_done.append(int(rest))
        elif key == "timeout":
            res.timeout = rest
    if res.timeout:
        raise TargetError(f"{sim} simulation stopped without all outputs: timeout at cycle {res.timeout}")
    return res
