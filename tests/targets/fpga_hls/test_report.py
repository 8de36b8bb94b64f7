"""Synthesis reports read back (``irc fpga report``): a saved project gets csynth.xml files in the
layout and schema Vitis HLS writes (written here from the documented format, with different
numbers per kernel); parsing, the estimate/synthesis ratios, the table and the errors are checked."""

from __future__ import annotations

import json
import os
import re

import pytest

import irc
from irc.errors import InputError
from irc.targets.fpga_hls.report import format_report, parse_csynth, read_reports

from .support import mlp_graph

CSYNTH = """<?xml version="1.0" encoding="UTF-8"?>
<profile>
  <ReportVersion><Version>2022.2</Version></ReportVersion>
  <UserAssignments>
    <unit>ns</unit>
    <ProductFamily>virtexuplus</ProductFamily>
    <Part>xcu200-fsgd2104-2-e</Part>
    <TopModelName>{top}</TopModelName>
    <TargetClockPeriod>3.33</TargetClockPeriod>
    <ClockUncertainty>0.90</ClockUncertainty>
    <FlowTarget>vitis</FlowTarget>
  </UserAssignments>
  <PerformanceEstimates>
    <PipelineType>no</PipelineType>
    <SummaryOfTimingAnalysis>
      <unit>ns</unit>
      <EstimatedClockPeriod>{clock}</EstimatedClockPeriod>
    </SummaryOfTimingAnalysis>
    <SummaryOfOverallLatency>
      <unit>clock cycles</unit>
      <Best-caseLatency>{best}</Best-caseLatency>
      <Average-caseLatency>{worst}</Average-caseLatency>
      <Worst-caseLatency>{worst}</Worst-caseLatency>
      <Best-caseRealTimeLatency>1.0 us</Best-caseRealTimeLatency>
      <Average-caseRealTimeLatency>1.0 us</Average-caseRealTimeLatency>
      <Worst-caseRealTimeLatency>1.0 us</Worst-caseRealTimeLatency>
      <Interval-min>{interval}</Interval-min>
      <Interval-max>{interval}</Interval-max>
    </SummaryOfOverallLatency>
    <SummaryOfLoopLatency>
      <load_x>
        <TripCount>24</TripCount>
        <Latency>25</Latency>
        <PipelineII>1</PipelineII>
        <PipelineDepth>3</PipelineDepth>
      </load_x>
    </SummaryOfLoopLatency>
  </PerformanceEstimates>
  <AreaEstimates>
    <Resources>
      <BRAM_18K>{bram}</BRAM_18K>
      <DSP>{dsp}</DSP>
      <FF>{ff}</FF>
      <LUT>{lut}</LUT>
      <URAM>{uram}</URAM>
    </Resources>
    <AvailableResources>
      <BRAM_18K>4320</BRAM_18K>
      <DSP>6840</DSP>
      <FF>2364480</FF>
      <LUT>1182240</LUT>
      <URAM>960</URAM>
    </AvailableResources>
  </AreaEstimates>
  <InterfaceSummary>
    <RtlPorts><name>s_axi_control_AWVALID</name><Object>control</Object><Type>scalar</Type></RtlPorts>
  </InterfaceSummary>
</profile>
"""


def _numbers(i: int) -> dict:
    """Different figures for kernel i (so a mix-up between kernels shows)."""
    return dict(clock=2.4 + 0.1 * i, best=1000 * (i + 1), worst=1500 * (i + 1) + 7, interval=1500 * (i + 1) + 8,
                bram=4 + 3 * i, dsp=10 + 7 * i, ff=3000 + 1111 * i, lut=2500 + 999 * i, uram=i % 2)


def _write(project, kernel: str, name: str = "csynth.xml", solution: str = "solution", **numbers) -> None:
    d = project / "hls_prj" / kernel / solution / "syn" / "report"
    d.mkdir(parents=True, exist_ok=True)
    (d / name).write_text(CSYNTH.format(top=kernel, **numbers))


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    out = tmp_path_factory.mktemp("fpga") / "mlp_prj"
    irc.compile(mlp_graph(), target="fpga").executable.save(out)
    kernels = json.loads((out / "report.json").read_text())["kernels"]
    assert len(kernels) == 3
    return out, kernels


@pytest.fixture
def project(saved, tmp_path):
    """A fresh copy of the saved project (tests add synthesis reports to it)."""
    import shutil

    dst = tmp_path / "prj"
    shutil.copytree(saved[0], dst)
    return dst, saved[1]


def test_parse_reads_latency_interval_and_resources(tmp_path):
    _write(tmp_path, "k7", **_numbers(3))
    s = parse_csynth(tmp_path / "hls_prj/k7/solution/syn/report/csynth.xml")
    assert s.kernel == "k7" and s.part == "xcu200-fsgd2104-2-e"
    assert (s.latency, s.latency_best, s.interval) == (6007, 4000, 6008)
    assert s.clock_ns == pytest.approx(2.7) and s.target_ns == pytest.approx(3.33)
    assert s.resources == {"BRAM_18K": 13, "DSP": 31, "FF": 6333, "LUT": 5497, "URAM": 1}


def test_every_kernel_against_its_estimate(project):
    root, kernels = project
    for i, k in enumerate(kernels):
        # the two file names Vitis HLS writes for the top function
        _write(root, k["kernel"], name="csynth.xml" if i % 2 else f"{k['kernel']}_csynth.xml", **_numbers(i))
    rep = read_reports(root)
    assert [r.kernel for r in rep.rows] == [k["kernel"] for k in kernels]
    for i, (row, k) in enumerate(zip(rep.rows, kernels)):
        n = _numbers(i)
        assert row.synthesis.kernel == k["kernel"]
        assert row.ratio("latency") == pytest.approx(n["worst"] / k["cycles"])
        assert row.ratio("LUT") == pytest.approx(n["lut"] / k["LUT"])
        assert row.ratio("FF") == pytest.approx(n["ff"] / k["FF"])
        assert row.ratio("DSP") == pytest.approx(n["dsp"] / k["DSP"])
        # irc counts 36 Kb blocks, synthesis 18 Kb halves
        assert row.estimate["BRAM_18K"] == 2 * k["BRAM"]
        assert row.ratio("BRAM_18K") == pytest.approx(n["bram"] / (2 * k["BRAM"]))
        assert row.synthesis.interval == n["interval"]
    text = format_report(rep)
    assert "3 of 3 kernels synthesized (xcu200-fsgd2104-2-e)" in text
    first = kernels[0]
    lut_row = next(ln for ln in text.splitlines() if ln.startswith(first["kernel"]) and " LUT " in ln)
    assert lut_row.split()[2:] == [f"{int(first['LUT']):,}", "2,500", f"{2500 / first['LUT']:.2f}"]
    assert "clock 2.4 ns (target 3.33 ns)" in text
    # irc's layer kernels carry no interval estimate: synthesis alone
    assert re.search(rf"{first['kernel']} +interval +- +1,508 +-\n", text)
    total = next(ln for ln in text.splitlines() if ln.startswith("total") and " DSP " in ln)
    assert total.split()[-2] == f"{10 + 17 + 24:,}"


def test_partial_synthesis_and_newest_solution(project):
    root, kernels = project
    name = kernels[1]["kernel"]
    _write(root, name, solution="solution1", **_numbers(0))
    _write(root, name, solution="solution2", **_numbers(5))
    old = root / "hls_prj" / name / "solution1" / "syn" / "report" / "csynth.xml"
    os.utime(old, (1, 1))
    rep = read_reports(root)
    assert [r.synthesis is not None for r in rep.rows] == [False, True, False]
    assert rep.rows[1].synthesis.resources["DSP"] == _numbers(5)["dsp"]
    assert rep.rows[0].ratio("LUT") is None
    text = format_report(rep)
    assert "1 of 3 kernels synthesized" in text and text.count("not synthesized") == 2


def test_reports_left_by_a_vitis_build(project):
    """v++ -c --save-temps keeps each kernel's HLS run under build/ (only <top>_csynth.xml counts:
    the other *_csynth.xml files there are sub-functions)."""
    root, kernels = project
    name = kernels[2]["kernel"]
    d = root / "build" / "hw" / "tmp" / name / name / name / "solution" / "syn" / "report"
    d.mkdir(parents=True)
    (d / f"{name}_csynth.xml").write_text(CSYNTH.format(top=name, **_numbers(4)))
    (d / f"{name}_load_csynth.xml").write_text(CSYNTH.format(top=f"{name}_load", **_numbers(6)))
    rep = read_reports(root)
    assert [r.synthesis is not None for r in rep.rows] == [False, False, True]
    assert rep.rows[2].synthesis.resources["LUT"] == _numbers(4)["lut"]


def test_undef_latency(project):
    root, kernels = project
    _write(root, kernels[0]["kernel"], **{**_numbers(0), "worst": "undef", "best": "undef", "interval": "undef"})
    row = read_reports(root).rows[0]
    assert row.synthesis.latency is None and row.ratio("latency") is None and row.ratio("DSP") is not None
    text = format_report(read_reports(root))
    assert re.search(rf"{kernels[0]['kernel']} +latency +{int(kernels[0]['cycles']):,} +undef +-\n", text)
    assert " interval " not in text  # neither an estimate nor a result


def test_errors(project, tmp_path, irc_cli):
    root, kernels = project
    with pytest.raises(InputError, match=r"run `make csynth` first"):
        read_reports(root)
    status, out, err = irc_cli("fpga", "report", str(root))
    assert status == 2 and out == "" and "run `make csynth` first" in err and err.count("\n") == 1
    with pytest.raises(InputError, match="has no report.json"):
        read_reports(tmp_path)
    with pytest.raises(InputError, match="is not a folder"):
        read_reports(tmp_path / "missing")
    bad = root / "hls_prj" / kernels[0]["kernel"] / "solution" / "syn" / "report"
    bad.mkdir(parents=True)
    (bad / "csynth.xml").write_text("<profile><AreaEstimates/></profile>")
    with pytest.raises(InputError, match="no <PerformanceEstimates/SummaryOfOverallLatency>"):
        read_reports(root)
    (bad / "csynth.xml").write_text("<profile")
    with pytest.raises(InputError, match="not readable as XML"):
        read_reports(root)
    (bad / "csynth.xml").write_text(CSYNTH.format(top=kernels[0]["kernel"], **{**_numbers(0), "lut": "many"}))
    with pytest.raises(InputError, match="<Resources/LUT> holds 'many'"):
        read_reports(root)


def test_cli_prints_the_table(project, irc_cli):
    root, kernels = project
    for i, k in enumerate(kernels):
        _write(root, k["kernel"], **_numbers(i))
    status, out, err = irc_cli("fpga", "report", str(root))
    assert status == 0, err
    assert out == format_report(read_reports(root))
    assert all(k["kernel"] in out for k in kernels)


def test_dataflow_project_top_and_stages(tmp_path):
    """A dataflow project's report.json (the form dataflow/project.py writes: one top kernel, its
    stages) against the top's report and the stage functions' reports beside it."""
    stages = [{"stage": "s0_conv", "kind": "conv", "pe": 4, "simd": 2, "trips": 100, "ii": 1, "cycles": 900,
               "fill": 20, "slr": 0, "DSP": 8, "LUT": 3000, "FF": 4000, "BRAM": 3, "URAM": 0},
              {"stage": "s1_pool", "kind": "pool", "pe": 1, "simd": 1, "trips": 50, "ii": 1, "cycles": 400,
               "fill": 5, "slr": 0, "DSP": 0, "LUT": 500, "FF": 700, "BRAM": 1, "URAM": 0},
              {"stage": "s2_dense", "kind": "dense", "pe": 2, "simd": 2, "trips": 10, "ii": 1, "cycles": 300,
               "fill": 5, "slr": 0, "DSP": 4, "LUT": 1500, "FF": 2000, "BRAM": 2, "URAM": 0}]
    (tmp_path / "report.json").write_text(json.dumps({
        "architecture": "dataflow", "top": "net_top", "board": "u250", "precision": "ap_fixed<16,6>", "fraction": 0.8,
        "clock_mhz": 300.0, "interval_cycles": 900, "latency_cycles": 1700, "frames_per_s": 333333.3,
        "total": {"DSP": 12, "LUT": 7000, "FF": 9000, "BRAM": 6, "URAM": 0}, "stages": stages, "fifos": []}))
    _write(tmp_path, "net_top", **_numbers(0))
    rdir = tmp_path / "hls_prj" / "net_top" / "solution" / "syn" / "report"
    (rdir / "s0_conv_csynth.xml").write_text(CSYNTH.format(top="s0_conv", **_numbers(1)))
    (rdir / "s2_dense_csynth.xml").write_text(CSYNTH.format(top="s2_dense", **_numbers(2)))
    rep = read_reports(tmp_path)
    assert [(r.kernel, r.parent) for r in rep.rows] == [("net_top", None), ("s0_conv", "net_top"),
                                                        ("s1_pool", "net_top"), ("s2_dense", "net_top")]
    top, conv, pool, dense = rep.rows
    assert top.ratio("interval") == pytest.approx(_numbers(0)["interval"] / 900)
    assert top.ratio("latency") == pytest.approx(_numbers(0)["worst"] / 1700)
    assert top.ratio("BRAM_18K") == pytest.approx(_numbers(0)["bram"] / 12)
    assert conv.ratio("LUT") == pytest.approx(_numbers(1)["lut"] / 3000)
    assert dense.ratio("latency") == pytest.approx(_numbers(2)["worst"] / 300)
    assert pool.synthesis is None
    text = format_report(rep)
    assert "1 of 1 kernels synthesized" in text
    assert re.search(r"\n  s1_pool +no report of its own \(inlined into net_top\)\n", text)
    assert re.search(r"\n  s0_conv +DSP +8 +17 +2\.12\n", text)
    assert "total (synthesized)" not in text  # the top already holds its stages
    (tmp_path / "report.json").write_text(json.dumps({"top": "net_top", "stages": []}))
    with pytest.raises(InputError, match="a dataflow design's 'top', 'total' and 'stages'"):
        read_reports(tmp_path)
