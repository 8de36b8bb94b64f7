"""The generated fp32 GEMM kernel: C simulation with g++ against numpy on several shapes (tiles that
do and do not divide the problem), the cycle model against the loop nest in the generated code,
the modelled U200 throughput, the project it writes and the errors."""

from __future__ import annotations

import json
import math
import re
import shutil
import subprocess

import numpy as np
import pytest

from irc.errors import InputError, TargetError
from irc.targets.fpga_hls.boards import get_board
from irc.targets.fpga_hls.gemm import generate
from irc.targets.fpga_hls.gemm.config import MAC_DEPTH
from irc.targets.fpga_hls.gemm.csim import error_bound
from irc.targets.fpga_hls.gemm.model import AXI_LATENCY, STORE_DEPTH, beats_per_cycle
from irc.targets.fpga_hls.gemm.project import placement
from irc.targets.fpga_hls.resources import START_CYCLES

from .support import needs_gxx


def _positive(m, n, k, seed=0):
    """Entries in [0.5, 1.5): no cancellation, so every element of C is within rtol 1e-4 (the
    float32 sum of K <= 300 positive products is off by at most K * 2^-23 ~ 4e-5 relative)."""
    rng = np.random.default_rng(seed)
    return rng.uniform(0.5, 1.5, (m, k)).astype(np.float32), rng.uniform(0.5, 1.5, (k, n)).astype(np.float32)


@needs_gxx
def test_csim_partial_tiles():
    # 37 x 50 x 70 on 16 x 32 x 32 tiles: a partial tile in M, N and K, and rows padded to beats
    d = generate(37, 50, 70, pe=(2, 16), tile=(16, 32, 32))
    assert (d.cfg.MT, d.cfg.NT, d.cfg.KB) == (3, 2, 3)
    a, b = _positive(37, 50, 70)
    np.testing.assert_allclose(d.csim(a, b), a.astype(np.float64) @ b, rtol=1e-4, atol=0)


@needs_gxx
@pytest.mark.slow
@pytest.mark.parametrize("shape, pe, tile", [
    ((1, 1, 1), (2, 16), None),                 # smaller than one beat
    ((64, 64, 64), (8, 32), (64, 64, 64)),       # one exact tile
    ((96, 128, 256), (24, 16), (48, 128, 64)),   # tiles divide every size
    ((200, 300, 150), None, None),               # the default array, tiles chosen by the model
    ((33, 17, 129), (3, 8), (48, 16, 32)),       # PE array narrower than a beat (II 6 and 2 on the beats)
])
def test_csim_shapes(shape, pe, tile):
    m, n, k = shape
    d = generate(m, n, k, pe=pe, tile=tile)
    a, b = _positive(m, n, k, seed=m + n + k)
    np.testing.assert_allclose(d.csim(a, b), a.astype(np.float64) @ b, rtol=1e-4, atol=0)


@needs_gxx
@pytest.mark.slow
def test_csim_signed_within_the_float_bound():
    """Signed entries cancel, so the check is the float32 bound of a K-term sum in any order."""
    d = generate(70, 90, 300, pe=(8, 16), tile=(32, 64, 64))
    rng = np.random.default_rng(3)
    a = rng.standard_normal((70, 300)).astype(np.float32)
    b = rng.standard_normal((300, 90)).astype(np.float32)
    err = np.abs(d.csim(a, b) - a.astype(np.float64) @ b.astype(np.float64))
    assert (err <= error_bound(a, b)).all() and err.max() > 0


def _loops(src: str) -> dict[str, tuple[int, int]]:
    """label -> (trip count, II) of every labelled loop; II 0 where the loop itself is not pipelined."""
    out = {}
    for m in re.finditer(r"(\w+):\s*\n\s*for \(int \w+ = 0; \w+ < (\d+); \w+\+\+\) \{\n(\s*#pragma HLS PIPELINE II=(\d+))?",
                         src):
        out[m.group(1)] = (int(m.group(2)), int(m.group(4) or 0))
    return out


@pytest.mark.parametrize("shape, pe, tile", [
    ((4096, 4096, 4096), None, None),
    ((1000, 3000, 777), (24, 16), (144, 144, 64)),
    ((33, 17, 129), (3, 8), (48, 16, 32)),
])
def test_model_is_the_loop_nest(shape, pe, tile):
    d = generate(*shape, pe=pe, tile=tile)
    c, m = d.cfg, d.model
    src = d.sources["gemm.cpp"]
    lp = _loops(src)
    assert set(lp) == {"load_a", "load_a_row", "load_b", "load_b_row", "mac_k", "mac_i", "mac_j", "pe_i", "pe_j",
                       "store_c", "store_c_row", "steps"}
    # the PE array is the unrolled pe_i x pe_j nest inside the pipelined mac_j loop
    assert lp["pe_i"][0] * lp["pe_j"][0] == c.PM * c.PN and lp["mac_j"][1] == 1
    assert len(re.findall(r"pe_\w:\s*\n\s*for .*\n#pragma HLS UNROLL", src)) == 2
    # an accumulator comes back after mac_i x mac_j cycles: no sooner than its last update is written
    assert lp["mac_i"][0] * lp["mac_j"][0] >= MAC_DEPTH
    # steps walk tiles x K blocks, and they cover the problem
    kb = int(re.search(r"gemm_compute\(a0, b0, acc, step % (\d+)\);", src).group(1))
    tiles = lp["steps"][0] // kb
    assert tiles * kb == lp["steps"][0] and kb * c.TK >= c.K
    assert tiles == math.ceil(c.M / c.TM) * math.ceil(c.N / c.TN)
    # the model's loops and cycles are the code's: a loop nest's trips multiply, its inner loop's II counts
    nest = {k: (lp[k][0] * lp[f"{k}_row"][0], lp[f"{k}_row"][1]) for k in ("load_a", "load_b", "store_c")}
    mac = lp["mac_k"][0] * lp["mac_i"][0] * lp["mac_j"][0]
    assert m.loops == {"load_a": nest["load_a"], "load_b": nest["load_b"], "mac": (mac, 1), "store_c": nest["store_c"]}
    ddr = beats_per_cycle(d.clock_mhz)
    load = sum(max(t * ii, math.ceil(t / ddr)) for t, ii in (nest["load_a"], nest["load_b"])) + 2 * AXI_LATENCY
    compute = mac + MAC_DEPTH
    store = nest["store_c"][0] * nest["store_c"][1] + STORE_DEPTH
    per_tile = (kb - 1) * max(compute, load) + max(compute + store, load)
    assert m.cycles == load + tiles * per_tile + START_CYCLES
    # the IIs the loads and stores hold: a beat spreads 16 floats over PM (A) or PN (C) banks
    assert nest["load_a"][1] == math.ceil(16 / c.PM) and nest["store_c"][1] == math.ceil(16 / c.PN)
    # each step computes from one buffer pair while the next step loads into the other
    top = src[src.index("steps:"):]
    assert re.search(r"gemm_compute\(a0, b0, acc, step % \d+\);\s*gemm_load\(AT, B, a1, b1, next\);", top)
    assert re.search(r"gemm_compute\(a1, b1, acc, step % \d+\);\s*gemm_load\(AT, B, a0, b0, next\);", top)
    # every device access is unconditional (whole tiles in memory): a burst per row
    assert not re.search(r"\?[^;]*(AT|B)\[", src) and "if (m0" not in src


def test_u200_throughput_and_resources():
    """Training-size GEMMs on the U200 at 300 MHz reach the 210 GFLOP/s goal, inside one SLR."""
    board = get_board("u200")
    share = {r: v / board.slrs * 0.8 for r, v in board.totals.items()}
    for n in (2048, 4096):
        d = generate(n, n, n, board="u200")
        assert d.gflops >= 210, (n, d.gflops)
        assert d.gflops <= d.model.peak_gflops(300.0)
        c = d.cfg
        # the DSPs are the multipliers' (3 each); the adders are in fabric, as the code binds them
        assert d.model.cost["DSP"] == 3 * c.PM * c.PN
        assert "#pragma HLS BIND_OP variable=sum op=fadd impl=fabric" in d.sources["gemm.cpp"]
        assert all(d.model.cost[r] <= share[r] for r in share)
    assert abs(generate(4096, 4096, 4096).gflops - 2 * 4096 ** 3 / (generate(4096, 4096, 4096).model.cycles / 300e6)
               / 1e9) < 1e-9
    # a larger budget of PEs is faster when it fits
    assert generate(4096, 4096, 4096, pe=(32, 16)).gflops > generate(4096, 4096, 4096, pe=(16, 16)).gflops


def test_errors():
    with pytest.raises(InputError, match="K must be a positive integer"):
        generate(4, 4, 0)
    with pytest.raises(InputError, match="pe must be two positive integers"):
        generate(4, 4, 4, pe=(0, 16))
    with pytest.raises(InputError, match=r"tile \(40, 32, 32\) must be \(a multiple of 48"):
        generate(64, 64, 64, pe=(24, 16), tile=(40, 32, 32))
    with pytest.raises(InputError, match="every 8 cycles, fewer than the 15 from its read to its write"):
        generate(64, 64, 64, pe=(8, 16), tile=(16, 64, 16))
    with pytest.raises(TargetError, match=r"op 'gemm': a 64x32 PE array .* needs 6,144 DSP, more than 80% of one SLR"):
        generate(4096, 4096, 4096, pe=(64, 32))
    with pytest.raises(InputError, match="unknown board"):
        generate(4, 4, 4, board="u9000")


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    out = tmp_path_factory.mktemp("gemm") / "g"
    d = generate(300, 200, 100, pe=(8, 16), tile=(96, 64, 32), board="u250")
    d.save(out)
    return out, d


def test_project_files(project):
    root, d = project
    for rel in ("Makefile", "connectivity.cfg", "README.md", "report.txt", "report.json", "kernels/gemm.cpp",
                "kernels/gemm.h", "tests/gemm_tb.cpp", "host/host_xrt.cpp", "hls/gemm/csim.tcl", "hls/gemm/csynth.tcl"):
        text = (root / rel).read_text()
        assert not re.search(r"\{\{\w+\}\}", text), rel
    assert (root / "kernels" / "gemm.cpp").read_text() == d.sources["gemm.cpp"]
    cfg = (root / "connectivity.cfg").read_text()
    banks = dict(re.findall(r"sp=gemm_1\.(\w+):(\S+)", cfg))
    assert set(banks) == {"AT", "B", "C"} and "slr=gemm_1:SLR" in cfg
    slr = int(re.search(r"SLR(\d)", cfg).group(1))
    assert all(get_board("u250").banks[b] == slr for b in banks.values())  # one DDR bank per SLR on a U250
    # on a U200 the kernel goes to the SLR with two banks, and A^T and B are read from different ones
    slr, banks = placement(generate(64, 64, 64, board="u200"))
    assert slr == 1 and banks["AT"] != banks["B"] and {banks["AT"], banks["B"]} == {"DDR[1]", "DDR[2]"}
    rep = json.loads((root / "report.json").read_text())
    assert rep["kernels"][0]["cycles"] == d.model.cycles and rep["kernels"][0]["DSP"] == 3 * 8 * 16
    assert rep["gemm"]["tile"] == [96, 64, 32]
    host = (root / "host" / "host_xrt.cpp").read_text()
    for i, arg in enumerate(("at", "b", "c")):
        assert (f"xrt::bo bo_{arg}(device, {arg}.size() * sizeof(float), xrt::bo::flags::normal, "
                f"kernel.group_id({i}));") in host
    assert host.index("run.set_arg(2, bo_c)") < host.index(".write(") < host.index(".sync(") < host.index("run.start()")
    tcl = (root / "hls" / "gemm" / "csim.tcl").read_text()
    assert "set_top gemm" in tcl and "csim_design" in tcl and "xcu250" in tcl


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_project_makefile(project):
    root, _ = project
    r = subprocess.run(["make", "-n", "hw"], cwd=root, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "-c -k gemm -o build/hw/gemm.xo kernels/gemm.cpp" in r.stdout and "--config connectivity.cfg" in r.stdout
    assert "host/host_xrt.cpp -o build/host_xrt" in r.stdout and "-lxrt_coreutil" in r.stdout


def test_synthesis_report_of_the_project(project):
    """`irc fpga report` reads the GEMM project's estimate like a network's."""
    from irc.targets.fpga_hls.report import read_reports

    from .test_report import CSYNTH, _numbers

    root, d = project
    rdir = root / "hls_prj" / "gemm" / "solution" / "syn" / "report"
    rdir.mkdir(parents=True)
    (rdir / "csynth.xml").write_text(CSYNTH.format(top="gemm", **{**_numbers(2), "worst": 2 * d.model.cycles}))
    row = read_reports(root).rows[0]
    assert row.kernel == "gemm" and row.ratio("latency") == pytest.approx(2.0)
    assert row.ratio("DSP") == pytest.approx(_numbers(2)["dsp"] / d.model.cost["DSP"])


@needs_gxx
@pytest.mark.slow
def test_project_testbench_checks_itself(project, tmp_path):
    """What `make csim` runs: the testbench on its own seeded inputs against its double loop."""
    root, _ = project
    exe = tmp_path / "tb"
    subprocess.run(["g++", "-std=c++14", "-O1", "-Wall", "-Werror", "-Wno-unknown-pragmas", "-Ikernels", "kernels/gemm.cpp",
                    "tests/gemm_tb.cpp", "-o", str(exe)], cwd=root, check=True, capture_output=True)
    r = subprocess.run([str(exe)], cwd=root, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "gemm 300x200x100: PASS (0 of 60000 elements off)" in r.stdout, r.stdout + r.stderr


@needs_gxx
def test_cli(tmp_path, irc_cli):
    out = tmp_path / "p"
    # the kernel of test_csim_partial_tiles (compiled once: g++'s objects are cached by source)
    status, stdout, err = irc_cli("fpga", "gemm", "37", "50", "70", "--pe", "2x16", "--tile", "16x32x32", "--csim",
                                  "-o", out)
    assert status == 0, err
    assert "PE array 2 x 16" in stdout and "C simulation: PASS (37x50x70 against numpy" in stdout
    assert f"wrote {out}" in err and (out / "kernels" / "gemm.cpp").is_file()
    status, _, err = irc_cli("fpga", "gemm", "40", "24", "20", "--pe", "4")
    assert status == 2 and "--pe must be 2 positive integers as NxN, got '4'" in err
    status, _, err = irc_cli("fpga", "gemm", "4096", "4096", "4096", "--pe", "64x32")
    assert status == 2 and "more than 80% of one SLR" in err and err.count("\n") == 1
