"""Vitis HLS synthesis reports read back: irc's estimate of each kernel next to what ``csynth``
found, with their ratios, so a user sees how far the model is off on their design.

A saved project records irc's estimates in ``report.json``: a layer-per-kernel project (and a GEMM
kernel's) lists ``kernels``, each with DSP, LUT, FF, BRAM in 36 Kb blocks, URAM and cycles; a
dataflow project has one ``top`` kernel (its ``total`` resources, ``latency_cycles`` and
``interval_cycles``) made of ``stages``, functions of the top, each compared too where the tool
kept it a module of its own (its ``<stage>_csynth.xml`` sits next to the top's report).

After ``make csynth`` (or ``vitis_hls -f hls/<kernel>/csynth.tcl``) every kernel has a report under
``hls_prj/<kernel>/solution*/syn/report/`` (a ``make hw`` leaves one under build/ too):
``csynth.xml`` for the top function and ``<top>_csynth.xml`` (the same figures), next to one file
per sub-function. The XML, as Vitis HLS writes it::

    <profile>
      <UserAssignments><Part/><TopModelName/><TargetClockPeriod/></UserAssignments>
      <PerformanceEstimates>
        <SummaryOfTimingAnalysis><EstimatedClockPeriod/></SummaryOfTimingAnalysis>
        <SummaryOfOverallLatency>
          <Best-caseLatency/><Average-caseLatency/><Worst-caseLatency/>   (cycles, or "undef")
          <Interval-min/><Interval-max/>                                  (the II of the top)
        </SummaryOfOverallLatency>
      </PerformanceEstimates>
      <AreaEstimates><Resources><BRAM_18K/><DSP/><FF/><LUT/><URAM/></Resources></AreaEstimates>
    </profile>

Synthesis counts block RAM in 18 Kb halves; irc's 36 Kb blocks are doubled to compare them.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

from irc.errors import InputError

#: what is compared, in the units of the synthesis report (latency and interval in cycles)
QUANTITIES = ("latency", "interval", "BRAM_18K", "DSP", "FF", "LUT", "URAM")
RESOURCE_QUANTITIES = QUANTITIES[2:]
#: irc's estimate (report.json) of each resource, and the factor into the report's unit
_RESOURCE_KEY = {"BRAM_18K": ("BRAM", 2), "DSP": ("DSP", 1), "FF": ("FF", 1), "LUT": ("LUT", 1), "URAM": ("URAM", 1)}
_HINT = "run `make csynth` first (Vitis HLS synthesis of every kernel)"


@dataclass(frozen=True, slots=True)
class Synthesis:
    """One kernel's csynth report: latency in cycles (None where the tool says 'undef'),
    the initiation interval of the top function, and the resources it uses."""

    kernel: str
    path: Path
    latency: int | None
    latency_best: int | None
    interval: int | None
    clock_ns: float | None
    target_ns: float | None
    part: str
    resources: dict[str, int]


@dataclass(slots=True)
class Row:
    """A kernel of the project (or a stage, a function of kernel ``parent``): irc's estimate in the
    report's units and its synthesis, either may be absent."""

    kernel: str
    op: str
    estimate: dict[str, float] | None
    synthesis: Synthesis | None
    parent: str | None = None

    def value(self, quantity: str) -> int | None:
        s = self.synthesis
        if s is None:
            return None
        if quantity in ("latency", "interval"):
            return getattr(s, quantity)
        return s.resources.get(quantity)

    def ratio(self, quantity: str) -> float | None:
        """synthesis / estimate; None where either is missing or the estimate is 0 with a non-zero result."""
        got = self.value(quantity)
        want = None if self.estimate is None else self.estimate.get(quantity)
        if got is None or want is None:
            return None
        if want == 0:
            return 1.0 if got == 0 else None
        return got / want


@dataclass(slots=True)
class Report:
    project: Path
    rows: list[Row] = field(default_factory=list)

    @property
    def synthesized(self) -> list[Row]:
        return [r for r in self.rows if r.synthesis is not None]


def _int(text: str | None, path: Path, tag: str) -> int | None:
    if text is None:
        raise InputError(f"{path}: not a Vitis HLS csynth report (no <{tag}> element)")
    text = text.strip()
    if text in ("", "undef", "-"):
        return None
    try:
        return int(float(text))
    except ValueError:
        raise InputError(f"{path}: <{tag}> holds '{text}', expected a number of cycles or resources") from None


def _float(text: str | None) -> float | None:
    try:
        return float(text) if text is not None else None
    except ValueError:
        return None


def parse_csynth(path: str | Path) -> Synthesis:
    """The latency, II and resources of one csynth.xml (InputError naming what is missing)."""
    path = Path(path)
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as e:
        raise InputError(f"{path}: not readable as XML ({e})") from None
    lat = root.find("PerformanceEstimates/SummaryOfOverallLatency")
    res = root.find("AreaEstimates/Resources")
    if lat is None or res is None:
        missing = "PerformanceEstimates/SummaryOfOverallLatency" if lat is None else "AreaEstimates/Resources"
        raise InputError(f"{path}: not a Vitis HLS csynth report (no <{missing}>)")
    top = (root.findtext("UserAssignments/TopModelName") or "").strip()
    if not top:
        name = path.name
        top = path.parent.parent.parent.parent.name if name == "csynth.xml" else name[:-len("_csynth.xml")]
    resources = {}
    for q in RESOURCE_QUANTITIES:
        text = res.findtext(q)
        # URAM is absent on parts without it
        resources[q] = 0 if text is None and q == "URAM" else _int(text, path, f"Resources/{q}") or 0
    return Synthesis(
        kernel=top, path=path,
        latency=_int(lat.findtext("Worst-caseLatency"), path, "Worst-caseLatency"),
        latency_best=_int(lat.findtext("Best-caseLatency"), path, "Best-caseLatency"),
        interval=_int(lat.findtext("Interval-max"), path, "Interval-max"),
        clock_ns=_float(root.findtext("PerformanceEstimates/SummaryOfTimingAnalysis/EstimatedClockPeriod")),
        target_ns=_float(root.findtext("UserAssignments/TargetClockPeriod")),
        part=(root.findtext("UserAssignments/Part") or "").strip(), resources=resources)


def find_reports(project: Path, kernels: list[str]) -> dict[str, Path]:
    """kernel -> its csynth report: ``<kernel>/solution*/syn/report/{csynth,<kernel>_csynth}.xml``
    under the project's hls_prj/ (where hls/<kernel>/csynth.tcl puts it) or the project itself,
    else ``<kernel>_csynth.xml`` in a ``syn/report`` folder under build/ (where ``v++ -c
    --save-temps`` leaves it); the newest where several have one."""
    found: dict[str, Path] = {}
    built = [p for p in (project / "build").rglob("*_csynth.xml")
             if p.parent.name == "report" and p.parent.parent.name == "syn"] if (project / "build").is_dir() else []
    for k in kernels:
        for base in (project / "hls_prj", project):
            cands = [p for sol in sorted((base / k).glob("solution*")) for p in
                     (sol / "syn" / "report" / f"{k}_csynth.xml", sol / "syn" / "report" / "csynth.xml")
                     if p.is_file()]
            if cands:
                break
        else:
            cands = [p for p in built if p.name == f"{k}_csynth.xml"]
        if cands:
            found[k] = max(cands, key=lambda p: p.stat().st_mtime)
    return found


def _entry(name: str, op: str, d: dict, cycles: str, interval: str | None = None, parent: str | None = None) -> dict:
    est = {q: float(d[key]) * f for q, (key, f) in _RESOURCE_KEY.items() if key in d}
    if cycles in d:
        est["latency"] = float(d[cycles])
    if interval is not None and interval in d:
        est["interval"] = float(d[interval])
    return {"kernel": str(name), "op": str(op), "estimate": est, "parent": parent}


def _estimates(project: Path) -> list[dict]:
    """One entry per kernel (and dataflow stage): name, op, estimate in the report's units, parent."""
    path = project / "report.json"
    if not project.is_dir():
        raise InputError(f"'{project}' is not a folder: expected an irc HLS project (irc compile --target fpga -o DIR)")
    try:
        data = json.loads(path.read_text())
        if isinstance(data.get("kernels"), list):
            return [_entry(k["kernel"], k.get("op", ""), k, "cycles") for k in data["kernels"]]
        top = str(data["top"])
        return [_entry(top, "dataflow", {**data["total"], **data}, "latency_cycles", "interval_cycles")] + \
            [_entry(st["stage"], st.get("kind", ""), st, "cycles", parent=top) for st in data["stages"]]
    except FileNotFoundError:
        raise InputError(f"'{project}' has no report.json: expected an irc HLS project "
                         "(irc compile --target fpga -o DIR)") from None
    except (ValueError, KeyError, TypeError, AttributeError):
        raise InputError(f"{path}: expected irc's estimates (a JSON object with a 'kernels' list, or a dataflow "
                         "design's 'top', 'total' and 'stages')") from None


def read_reports(project_dir: str | Path) -> Report:
    """irc's estimate and the synthesis result of every kernel (and dataflow stage) of a saved project.

    InputError when the folder is no irc project or when no kernel has been synthesized."""
    project = Path(project_dir)
    entries = _estimates(project)
    names = [e["kernel"] for e in entries if e["parent"] is None]
    paths = find_reports(project, names)
    if not paths:
        raise InputError(f"no Vitis HLS synthesis report in '{project}' (looked for "
                         f"hls_prj/<kernel>/solution*/syn/report/csynth.xml for {len(names)} kernel(s)): {_HINT}")
    report = Report(project)
    for e in entries:
        if e["parent"] is None:
            where = paths.get(e["kernel"])
        else:  # a stage: its own report next to its top's, where the tool kept it a module
            top = paths.get(e["parent"])
            where = top.parent / f"{e['kernel']}_csynth.xml" if top is not None else None
            where = where if where is not None and where.is_file() else None
        syn = parse_csynth(where) if where is not None else None
        report.rows.append(Row(e["kernel"], e["op"], e["estimate"], syn, e["parent"]))
    return report


def _fmt(v: float | None) -> str:
    return "-" if v is None else f"{int(round(v)):,}"


def format_report(report: Report) -> str:
    """The table: per kernel (stages indented under their top) and quantity, irc's estimate, the
    synthesis result and their ratio; then the totals over the synthesized kernels."""
    syn = report.synthesized
    kernels = [r for r in report.rows if r.parent is None]
    done = [r for r in kernels if r.synthesis is not None]
    parts = sorted({r.synthesis.part for r in syn if r.synthesis.part})
    head = f"{'kernel':<24}{'quantity':<10}{'irc':>14}{'synthesis':>14}{'synth/irc':>11}"
    lines = [f"synthesis vs irc's estimate: {len(done)} of {len(kernels)} kernels synthesized"
             + (f" ({', '.join(parts)})" if parts else ""), head, "-" * len(head)]
    for r in report.rows:
        name = (f"  {r.kernel}" if r.parent else r.kernel)[:23]
        if r.synthesis is None:
            why = f"no report of its own (inlined into {r.parent})" if r.parent else f"not synthesized ({_HINT})"
            lines.append(f"{name:<24}{why}")
            continue
        for q in QUANTITIES:
            ratio = r.ratio(q)
            est = None if r.estimate is None else r.estimate.get(q)
            if est is None and r.value(q) is None:
                continue
            got = "undef" if r.value(q) is None else _fmt(r.value(q))  # (a loop bound the tool cannot see)
            lines.append(f"{name:<24}{q:<10}{_fmt(est):>14}{got:>14}"
                         + (f"{ratio:>11.2f}" if ratio is not None else f"{'-':>11}"))
        s = r.synthesis
        if s.clock_ns is not None:
            lines.append(f"{'':<24}clock {s.clock_ns:g} ns" + (f" (target {s.target_ns:g} ns)" if s.target_ns else ""))
    if len(done) > 1:
        lines.append("-" * len(head))
        for q in ("latency",) + RESOURCE_QUANTITIES:
            got = [r.value(q) for r in done]
            est = [r.estimate.get(q) if r.estimate else None for r in done]
            if any(v is None for v in got + est):
                continue
            tot_e, tot_s = sum(est), sum(got)
            ratio = f"{tot_s / tot_e:>11.2f}" if tot_e else f"{'-':>11}"
            lines.append(f"{'total (synthesized)':<24}{q:<10}{_fmt(tot_e):>14}{_fmt(tot_s):>14}{ratio}")
    return "\n".join(lines) + "\n"
