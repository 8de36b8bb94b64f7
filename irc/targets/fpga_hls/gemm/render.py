"""The GEMM kernel's C++ from templates/: every size and trip count written in as a number, so the
code reads (and is checked) like the loop nest the cycle model describes."""

from __future__ import annotations

import re
from pathlib import Path

from irc.targets.fpga_hls.gemm.config import MAC_DEPTH, GemmConfig, W

TEMPLATES = Path(__file__).parent / "templates"
_FIELD = re.compile(r"\{\{(\w+)\}\}")


def fill(template: str, **values) -> str:
    """Template file ``template`` with every {{field}} replaced; KeyError for a field not given."""
    return _FIELD.sub(lambda m: str(values[m.group(1)]), (TEMPLATES / template).read_text())


def fields(cfg: GemmConfig, name: str) -> dict:
    """Every number the templates use."""
    c = cfg
    return dict(
        name=name, guard=f"IRC_GEMM_{name.upper()}_H", mac_depth=MAC_DEPTH, M=c.M, N=c.N, K=c.K, MP=c.MP, NP=c.NP,
        KP=c.KP, PM=c.PM, PN=c.PN, TM=c.TM, TN=c.TN, TK=c.TK, macs=c.PM * c.PN, distance=c.distance,
        TM_beats=c.TM // W, TN_beats=c.TN // W, MP_beats=c.MP // W, NP_beats=c.NP // W, TM_steps=c.TM // c.PM,
        TN_steps=c.TN // c.PN, load_a_ii=c.load_a_ii, store_ii=c.store_ii, NT=c.NT, KB=c.KB, steps=c.MT * c.NT * c.KB,
        AT_beats=c.KP * c.MP // W, B_beats=c.KP * c.NP // W, C_beats=c.MP * c.NP // W)


def sources(cfg: GemmConfig, name: str = "gemm") -> dict[str, str]:
    """file name -> text: the header, the kernel and its testbench."""
    f = fields(cfg, name)
    return {f"{name}.h": fill("gemm.h.in", **f), f"{name}.cpp": fill("gemm.cpp.in", **f),
            f"{name}_tb.cpp": fill("gemm_tb.cpp.in", **f)}
