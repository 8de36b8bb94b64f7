"""The Vitis project on disk: its files, the pragmas of the kernels, the build files (Makefile dry
run, connectivity syntax, Tcl), the host programs, and the testbenches run from the project."""

from __future__ import annotations

import ast
import configparser
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import irc
from irc.targets.fpga_hls import toolchain

from .support import FIXED, cnn_graph, mlp_graph, needs_ap, needs_gxx


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    out = tmp_path_factory.mktemp("fpga") / "cnn_prj"
    m = irc.compile(cnn_graph(), target="fpga", board="u250")
    written = m.executable.save(out)
    assert written == [out]
    return out, m.executable


def test_layout(project):
    root, exe = project
    names = [k.name for k in exe.kernels]
    assert len(names) == 6  # conv, maxpool, conv, avgpool, global pool, gemm + sigmoid (reshape is a view)
    for rel in ("Makefile", "connectivity.cfg", "README.md", "report.txt", "report.json", "model.json", "model.ir",
                "host/host.cpp", "host/host.py", "kernels/irc_hls.h", "kernels/irc_types.h", "kernels/cnn.h"):
        assert (root / rel).is_file(), rel
    for k in names:
        for rel in (f"kernels/{k}.cpp", f"tests/{k}_tb.cpp", f"hls/{k}/csim.tcl", f"hls/{k}/csynth.tcl"):
            assert (root / rel).is_file(), rel
        assert any((root / "vectors" / k).glob("*.expected.bin"))
    assert not list(root.parent.glob(".cnn_prj*")), "temporary folders left behind"


def test_kernel_pragmas(project):
    root, exe = project
    for k in exe.kernels:
        src = (root / "kernels" / f"{k.name}.cpp").read_text()
        assert f'extern "C" void {k.name}(' in src
        for i, a in enumerate(k.args):
            assert f"#pragma HLS INTERFACE m_axi port={a.name} offset=slave bundle=gmem{i} depth={a.value.type.size}" in src
            assert f"#pragma HLS INTERFACE s_axilite port={a.name} bundle=control" in src
        assert "#pragma HLS INTERFACE s_axilite port=return bundle=control" in src
        assert f"P = {k.parallelism}" in src
    lib = (root / "kernels" / "irc_hls.h").read_text()
    assert lib.count("#pragma HLS PIPELINE II=1") >= 10
    assert "#pragma HLS UNROLL" in lib and "ARRAY_PARTITION variable=wbuf dim=2 complete" in lib
    dense = next(k for k in exe.kernels if k.kind == "dense")
    assert "act" in dense.extra and "std::exp" in (root / "kernels" / f"{dense.name}.cpp").read_text()  # sigmoid
    # float MAC lanes keep the partial sums the resource model counts (acc_split, summed in a tree)
    assert "acc_t acc[Q::P][Q::SPLIT];" in lib and "tree_sum<Q, Q::SPLIT>::of(acc[p])" in lib
    for k in exe.kernels:
        if k.kind in ("dense", "conv"):
            src = (root / "kernels" / f"{k.name}.cpp").read_text()
            assert f"ACC_SPLIT = {exe.precision.acc_split};" in src and exe.precision.acc_split == 8


def test_dataflow_in_elementwise_kernels(tmp_path):
    b = irc.GraphBuilder("ew")
    x = b.input("x", (4, 8))
    g = b.build(b.op("tanh", b.op("add", x, b.input("y", (8,)))))
    irc.compile(g, target="fpga", parallelism=4).executable.save(tmp_path / "p")
    (src,) = (tmp_path / "p" / "kernels").glob("k0_*.cpp")
    text = src.read_text()
    assert "#pragma HLS DATAFLOW" in text and "P = 4" in text and "% 8) * 1" in text  # broadcast index


def test_connectivity(project):
    root, exe = project
    cfg = configparser.ConfigParser(strict=False, allow_no_value=True)
    text = (root / "connectivity.cfg").read_text()
    cfg.read_string(text)  # INI syntax, as v++ --config reads it (repeated keys allowed)
    assert cfg.sections() == ["connectivity", "clock"]
    lines = [ln for ln in text.splitlines() if ln and not ln.startswith("#")]
    assert lines[0] == "[connectivity]"
    names = [k.name for k in exe.kernels]
    nk = [ln for ln in lines if ln.startswith("nk=")]
    assert nk == [f"nk={n}:1:{n}_1" for n in names]
    sp = [ln for ln in lines if ln.startswith("sp=")]
    assert len(sp) == sum(len(k.args) for k in exe.kernels)
    assert all(re.fullmatch(r"sp=k\d+_\w+_1\.\w+:DDR\[[0-3]\]", ln) for ln in sp)
    slr = [ln for ln in lines if ln.startswith("slr=")]
    assert all(re.fullmatch(r"slr=k\d+_\w+_1:SLR[0-3]", ln) for ln in slr) and len(slr) == len(names)
    # a buffer is in one bank for every kernel that touches it
    bank_of: dict[str, str] = {}
    args = {(k.name, a.name): exe.kernel_plan.buffer_of(a.value).name for k in exe.kernels for a in k.args}
    for ln in sp:
        cu_arg, bank = ln[3:].split(":")
        cu, arg = cu_arg.split(".")
        buf = args[(cu[:-2], arg)]
        assert bank_of.setdefault(buf, bank) == bank
    assert "defaultFreqHz=300000000" in text


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_makefile_dry_run(project):
    root, exe = project
    for target in ("sw_emu", "hw_emu", "hw"):
        r = subprocess.run(["make", "-n", target], cwd=root, capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        assert f"-t {target} --platform xilinx_u250_gen3x16_xdma_4_1_202210_1" in r.stdout
        assert "-l --config connectivity.cfg" in r.stdout and "host/host.cpp" in r.stdout
        for k in exe.kernels:
            assert f"-c -k {k.name} -o build/{target}/{k.name}.xo kernels/{k.name}.cpp" in r.stdout
    r = subprocess.run(["make", "-n", "run", "TARGET=sw_emu"], cwd=root, capture_output=True, text=True)
    assert r.returncode == 0 and "XCL_EMULATION_MODE=sw_emu ./build/host build/sw_emu/cnn.xclbin" in r.stdout
    r = subprocess.run(["make", "-n", "csim", "csynth"], cwd=root, capture_output=True, text=True)
    assert r.returncode == 0 and "vitis_hls -f hls/$k/csim.tcl" in r.stdout


def test_tcl_scripts(project):
    root, exe = project
    k = exe.kernels[0]
    csim = (root / "hls" / k.name / "csim.tcl").read_text()
    assert f"set_top {k.name}" in csim and "set_part xcu250-figd2104-2L-e" in csim
    assert f"add_files -tb tests/{k.name}_tb.cpp" in csim and "csim_design -argv $vectors" in csim
    assert "create_clock -period 3.333" in csim
    assert "csynth_design" in (root / "hls" / k.name / "csynth.tcl").read_text()
    for tcl in root.glob("hls/*/*.tcl"):
        text = tcl.read_text()
        assert text.count("{") == text.count("}") and "{{" not in text


def test_manifest_weights_and_host(project):
    root, exe = project
    man = json.loads((root / "model.json").read_text())
    assert [k["name"] for k in man["kernels"]] == [k.name for k in exe.kernels]
    for b in man["buffers"]:
        if "file" in b and b["role"] != "output":
            assert (root / b["file"]).stat().st_size == b["bytes"], b["name"]
    w1 = next(b for b in man["buffers"] if b["name"] == "w1")
    np.testing.assert_array_equal(np.fromfile(root / w1["file"], np.float32).reshape(w1["shape"]),
                                  exe.graph.param_data("w1"))
    ast.parse((root / "host" / "host.py").read_text())
    host = (root / "host" / "host.cpp").read_text()
    assert "cl::Program program(context, {device}, binaries);" in host and "enqueueTask" in host
    for k in exe.kernels:
        assert f'"{k.name}"' in host
    for text in (host, (root / "README.md").read_text(), (root / "Makefile").read_text()):
        assert not re.search(r"\{\{\w+\}\}", text)


def test_host_cpp_compiles_where_opencl_headers_are(project, tmp_path):
    root, _ = project
    have = any(Path(p).exists() for p in ("/usr/include/CL/opencl.hpp", "/usr/include/CL/cl2.hpp"))
    if toolchain.gxx() is None or not have:
        pytest.skip("needs g++ and the OpenCL C++ headers (Debian: opencl-clhpp-headers)")
    r = subprocess.run(["g++", "-std=c++17", "-Wall", "-Werror", "-Wno-deprecated-declarations", "-Wno-cpp",
                        "-fsyntax-only", "host/host.cpp"], cwd=root, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_report_files(project):
    root, exe = project
    rep = json.loads((root / "report.json").read_text())
    assert rep["board"] == "u250" and rep["device"]["DSP"] == 12288
    assert sum(k["DSP"] for k in rep["kernels"]) == sum(int(e["DSP"]) for e in exe.estimates)
    readme = (root / "README.md").read_text()
    assert "make sw_emu" in readme and "Alveo U250" in readme and exe.kernels[0].name in readme
    assert (root / "report.txt").read_text() == exe.report()


@needs_gxx
@pytest.mark.slow
@pytest.mark.parametrize("precision", ["float32", pytest.param(FIXED, marks=needs_ap)])
def test_testbenches_run_from_the_project(tmp_path, precision):
    """What `make csim` does with Vitis, done with g++ on the written files: every testbench passes."""
    out = tmp_path / "mlp"
    irc.compile(mlp_graph(), target="fpga", precision=precision).executable.save(out)
    flags = toolchain.flags_for(None if precision == "float32" else toolchain.find_ap_include())
    for tb in sorted((out / "tests").glob("*_tb.cpp")):
        name = tb.name[:-len("_tb.cpp")]
        exe = tmp_path / name
        subprocess.run(["g++", *flags, "-Ikernels", f"kernels/{name}.cpp", f"tests/{name}_tb.cpp", "-o", str(exe)],
                       cwd=out, check=True, capture_output=True)
        r = subprocess.run([str(exe)], cwd=out, capture_output=True, text=True)
        assert r.returncode == 0 and "PASS" in r.stdout, r.stdout + r.stderr


def test_save_replaces_a_previous_project(tmp_path):
    out = tmp_path / "p"
    irc.compile(mlp_graph(), target="fpga").executable.save(out)
    (out / "stale.txt").write_text("old")
    irc.compile(mlp_graph(sizes=(12, 8)), target="fpga").executable.save(out)
    assert not (out / "stale.txt").exists() and len(list((out / "kernels").glob("k*.cpp"))) == 2


class _RecordingOpenCL:
    """Stands in for pyopencl: records the order of set_args and migrations (XRT places a
    buffer in the bank of the first kernel argument it is bound to, so every buffer must be
    bound before it moves)."""

    def __init__(self):
        self.log: list[tuple[str, tuple[int, ...]]] = []
        cl = self

        class Buffer:
            def __init__(self, context, flags, hostbuf):
                self.host = hostbuf

        class Kernel:
            def __init__(self, name):
                self.name = name

            def set_args(self, *bufs):
                cl.log.append(("bind", tuple(id(b) for b in bufs)))

        class Program:
            def __init__(self, context, devices, binaries):
                pass

            def build(self):
                return self

            def __getattr__(self, name):
                return Kernel(name)

        class Event:
            def wait(self):
                pass

        def migrate(queue, bufs, flags=0):
            cl.log.append(("migrate", tuple(id(b) for b in bufs)))
            return Event()

        class Queue:
            def __init__(self, *a):
                pass

            def finish(self):
                pass

        self.Buffer, self.Program, self.CommandQueue = Buffer, Program, Queue
        self.Context = lambda devices: object()
        self.enqueue_migrate_mem_objects = migrate
        self.enqueue_task = lambda queue, kernel: cl.log.append(("run", (id(kernel),)))
        self.mem_flags = type("mem_flags", (), {"READ_WRITE": 1, "USE_HOST_PTR": 8})
        self.mem_migration_flags = type("mem_migration_flags", (), {"HOST": 1})


def test_python_host_binds_every_buffer_before_moving_it(project, monkeypatch):
    import importlib.util

    root, exe = project
    fake = _RecordingOpenCL()
    monkeypatch.setitem(sys.modules, "pyopencl", fake)
    spec = importlib.util.spec_from_file_location("irc_generated_host", root / "host" / "host.py")
    host = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(host)
    monkeypatch.setattr(host, "xilinx_device", lambda: object())
    (root / "build").mkdir(exist_ok=True)
    (root / "build" / "model.xclbin").write_bytes(b"\0")
    model = host.Model(root / "build" / "model.xclbin")
    man = json.loads((root / "model.json").read_text())
    inputs = [np.zeros(s["shape"], np.float32) for s in man["inputs"]]
    model.run(inputs)
    bound: set[int] = set()
    moved = 0
    for what, ids in fake.log:
        if what == "bind":
            bound |= set(ids)
        elif what == "migrate":
            assert set(ids) <= bound, "a buffer was migrated before it was bound to a kernel argument"
            moved += 1
    assert moved >= 2 and sum(w == "run" for w, _ in fake.log) == len(exe.kernels)


def test_cpp_host_sets_arguments_before_the_first_migration(project):
    root, _ = project
    host = (root / "host" / "host.cpp").read_text()
    assert host.index("setArg(") < host.index("enqueueMigrateMemObjects(")
