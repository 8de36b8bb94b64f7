"""Synthesis of one block with Yosys, beside the resource model: does the RTL cost what
resources.py says, and how deep is its worst combinational path?

A whole top does not synthesize in reasonable time with Yosys (its M20K mapping fails on
memories initialised from files, and without it memories become flip-flops), so each block is
synthesized alone, with its real memory files (ROMs read from missing files would be optimised
away together with their multipliers):

1. ``read_verilog -defer`` the library, ``chparam`` the block's parameters, ``hierarchy -top``;
   ``memory -nomap`` lists the memories (depth, width, read ports): M20K blocks are counted from
   them with the model's own rounding (an M20K has one read port: one copy per port);
2. ``synth_intel_alm -family cyclone10gx -nobram`` (the Arria 10 fabric) counts ALUTs, flip-flops
   and DSP multipliers (DSP blocks: a 27x27 multiplier is one, an 18x19 half of one). The
   memories stay in the design (without them the multipliers they feed would be optimised
   away) and become MLABs or flip-flops there: ALMs are an upper bound of the block's logic;
3. the word-level netlist, flattened, memories cut out (an M20K's ports are registered), then
   ``ltp -noff``: the logic depth of the longest path between registers in word operators
   (an adder, a multiplier, a comparison, a multiplexer each count one).
"""

from __future__ import annotations

import json
import math
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from irc.errors import TargetError
from irc.targets.dneuro.render import LIBRARY, RTL_DIR, block_params, memory_files
from irc.targets.dneuro.resources import Memory
from irc.targets.dneuro.tune import Design


@dataclass(frozen=True, slots=True)
class BlockSynthesis:
    """Yosys's figures for one block next to the model's."""

    layer: str
    module: str
    aluts: int
    ffs: int
    dsp: int  # DSP blocks: one per 27x27 multiplier, one per two 18x19
    m20k: int
    memory_bits: int
    logic_depth: int  # word operators on the longest path between registers
    model_dsp: int
    model_m20k: int

    @property
    def alms(self) -> int:
        """ALMs the logic needs at least: two ALUTs or four registers per ALM."""
        return max(math.ceil(self.aluts / 2), math.ceil(self.ffs / 4))


def available() -> bool:
    return shutil.which("yosys") is not None


def _yosys(script: str, cwd: Path, timeout: float) -> str:
    (cwd / "run.ys").write_text(script)
    try:
        r = subprocess.run(["yosys", "-q", "-l", "run.log", "run.ys"], cwd=cwd, capture_output=True, text=True,
                           timeout=timeout)
    except subprocess.TimeoutExpired:
        raise TargetError(f"yosys took longer than {timeout:.0f} s") from None
    log = (cwd / "run.log").read_text() if (cwd / "run.log").exists() else ""
    if r.returncode != 0:
        raise TargetError(f"yosys failed: {' '.join((r.stderr or log).split())[-600:]}")
    return log


def _front(module: str, params: dict) -> str:
    sets = " ".join(f"-set {k} {v}" for k, v in params.items())
    return (f"read_verilog -defer {' '.join(f'rtl/{n}' for n in LIBRARY)}\n"
            f"chparam {sets} {module}\nhierarchy -top {module}\n")


def synthesize_block(design: Design, layer: str, workdir: str | Path, timeout: float = 1800) -> BlockSynthesis:
    """Synthesize the block of ``layer`` (not a concat: a stream merge, no logic to speak of) in
    ``workdir`` (written: rtl/, mem/, the scripts and logs)."""
    if not available():
        raise TargetError("yosys is not installed (apt-get install yosys)")
    lg = design.lg
    ly = lg[layer]
    lid = f"l{lg.layers.index(ly)}"
    module, params = block_params(design, ly, lid)
    work = Path(workdir)
    (work / "rtl").mkdir(parents=True, exist_ok=True)
    for name in LIBRARY:
        shutil.copy(RTL_DIR / name, work / "rtl" / name)
    for rel, text in memory_files(design).items():
        if rel.startswith(f"mem/{lid}."):
            (work / rel).parent.mkdir(exist_ok=True)
            (work / rel).write_text(text)
    front = _front(module, params)

    # 1. memories
    _yosys(front + "proc\nopt_clean\nmemory -nomap\nopt_clean\nwrite_json mems.json\n", work, timeout)
    mems = []
    for mod in json.loads((work / "mems.json").read_text())["modules"].values():
        for cell in mod["cells"].values():
            if cell["type"] in ("$mem", "$mem_v2"):
                p = cell["parameters"]
                depth, width, ports = (int(p[k], 2) if isinstance(p[k], str) else int(p[k])
                                       for k in ("SIZE", "WIDTH", "RD_PORTS"))
                mems += [Memory(cell.get("attributes", {}).get("src", "memory"), depth, width)] * ports
    m20k = sum(m.m20k for m in mems)
    bits = sum(m.bits for m in mems)

    # 2. logic and DSP blocks on the Arria 10 fabric, memories cut out
    log = _yosys(front + "synth_intel_alm -family cyclone10gx -nobram\nstat\n", work, timeout)
    stat = log[log.rfind("Number of cells"):]

    def count(pattern: str) -> int:
        return sum(int(n) for n in re.findall(rf"^\s+{pattern}\s+(\d+)\s*$", stat, re.M))

    aluts = count(r"MISTRAL_ALUT\w*") + count(r"MISTRAL_NOT") + count(r"MISTRAL_MLAB")  # a 32x1 MLAB: half an ALM
    ffs = count(r"MISTRAL_FF")
    dsp = count(r"MISTRAL_MUL27X27") + math.ceil(count(r"MISTRAL_MUL18X18") / 2) + math.ceil(
        count(r"MISTRAL_MUL9X9") / 3)

    # 3. logic depth between registers
    log = _yosys(front + "proc\nflatten\nopt -fast\nmemory -nomap\nopt -fast\nwreduce\ndelete t:$mem t:$mem_v2\n"
                 "ltp -noff\n", work, timeout)
    depth = max((int(n) for n in re.findall(r"Longest topological path in \S+ \(length=(\d+)\)", log)), default=0)

    c = design.costs[layer]
    return BlockSynthesis(layer, module, aluts, ffs, dsp, m20k, bits, depth, c.dsp, c.m20k)
