"""The XRT native C++ host (host/host_xrt.cpp) and the batching of the pyopencl host.

No card here, so the C++ host is checked three ways:
- its source, statically: every buffer is an ``xrt::bo`` in the group of the first kernel argument
  bound to it, every kernel argument is set, all before the first transfer or start;
- compiled and linked against the real XRT headers and library where they are installed (Debian:
  libxrt-dev; Vitis: $XILINX_XRT): the calls exist with these signatures. That cannot show that a
  card runs it;
- compiled against a recording stand-in for the five XRT classes it uses (written below, not XRT's
  code) and run: the calls' order at run time (buffers in the bank that connectivity.cfg gives every
  argument bound to them, arguments set before anything moves, frames alternating between two
  buffer sets, frame i+1's input written while frame i computes, every frame's outputs read back).
  The stand-in computes nothing, so the outputs read back are zeros and the host counts exactly the
  expected outputs' non-zero elements as mismatches, once per frame.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import irc

from .support import mlp_graph, needs_gxx

FRAMES = 5


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """An MLP for the U280: its buffers spread over HBM banks, so a wrong bank would show."""
    out = tmp_path_factory.mktemp("xrt") / "mlp"
    irc.compile(mlp_graph(sizes=(12, 16, 16, 8)), target="fpga", board="u280").executable.save(out)
    return out, json.loads((out / "model.json").read_text())


def _banks(root: Path) -> dict[tuple[str, str], str]:
    """(kernel, argument name) -> memory bank, from connectivity.cfg's sp= lines."""
    out = {}
    for ln in (root / "connectivity.cfg").read_text().splitlines():
        if ln.startswith("sp="):
            cu_arg, bank = ln[3:].split(":")
            cu, arg = cu_arg.split(".")
            out[(cu[:-2], arg)] = bank
    return out


def _arg_names(root: Path, kernel: str) -> list[str]:
    """The kernel's argument names in order, from its top function's m_axi pragmas."""
    text = (root / "kernels" / f"{kernel}.cpp").read_text()
    return re.findall(r"#pragma HLS INTERFACE m_axi port=(\w+)", text)


def test_every_argument_bound_to_a_buffer_in_its_bank(project):
    root, man = project
    src = (root / "host" / "host_xrt.cpp").read_text()
    names = [k["name"] for k in man["kernels"]]
    creates = {int(i): (int(k), int(a)) for i, k, a in
               re.findall(r"bo\[s\]\[(\d+)\] = .*?xrt::bo\(device, BUFFERS\[\1\]\.bytes, xrt::bo::flags::normal, "
                          r"kernels\[(\d+)\]\.group_id\((\d+)\)\)", src)}
    assert sorted(creates) == list(range(len(man["buffers"])))
    # weights: one set shared by both
    for i, b in enumerate(man["buffers"]):
        shared = f"bo[s][{i}] = s ? bo[0][{i}] : xrt::bo(" in src
        assert shared == (b["role"] == "param"), b["name"]
    # the group is that of the first argument bound to the buffer
    for i in creates:
        first = next((ki, ai) for ki, k in enumerate(man["kernels"]) for ai, b in enumerate(k["args"]) if b == i)
        assert creates[i] == first, man["buffers"][i]["name"]
    sets = [(int(k), int(a), int(b))
            for k, a, b in re.findall(r"runs\[s\]\[(\d+)\]\.set_arg\((\d+), bo\[s\]\[(\d+)\]\);", src)]
    assert sets == [(ki, ai, b) for ki, k in enumerate(man["kernels"]) for ai, b in enumerate(k["args"])]
    # the bank of the argument that gave the group is the bank of every argument bound to the buffer
    banks = _banks(root)
    args = {n: _arg_names(root, n) for n in names}
    assert len(set(banks.values())) > 2  # HBM: the buffers really are spread
    for ki, ai, b in sets:
        gk, ga = creates[b]
        assert banks[(names[ki], args[names[ki]][ai])] == banks[(names[gk], args[names[gk]][ga])]
    # created and bound before anything moves or starts
    last_setup = max(src.rindex("xrt::bo(device"), src.rindex(".set_arg("))
    assert last_setup < src.index(".sync(") and last_setup < src.index(".start()") and last_setup < src.index(".write(")
    assert "static const int SETS = 2;" in src and "const int s = f % SETS;" in src
    assert "std::async(std::launch::async, compute, s)" in src
    assert not re.search(r"\{\{\w+\}\}", src)


def test_makefile_builds_the_xrt_host(project):
    root, man = project
    if subprocess.run(["which", "make"], capture_output=True).returncode:
        pytest.skip("make is not installed")
    r = subprocess.run(["make", "-n", "run_xrt", "TARGET=hw_emu", "FRAMES=3"], cwd=root, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "host/host_xrt.cpp -o build/host_xrt -L/opt/xilinx/xrt/lib -lxrt_coreutil -pthread" in r.stdout
    assert f"XCL_EMULATION_MODE=hw_emu ./build/host_xrt build/hw_emu/{man['model']}.xclbin 3" in r.stdout


def _xrt_include() -> Path | None:
    for base in filter(None, [os.environ.get("XILINX_XRT") and Path(os.environ["XILINX_XRT"]) / "include",
                              Path("/opt/xilinx/xrt/include"), Path("/usr/include/xrt")]):
        if (base / "xrt" / "xrt_kernel.h").is_file():
            return base
    return None


@needs_gxx
@pytest.mark.slow
def test_compiles_and_links_against_xrt(project, tmp_path):
    """The generated host against the installed XRT headers and libxrt_coreutil, -Wall -Werror."""
    inc = _xrt_include()
    if inc is None:
        pytest.skip("the XRT headers are not installed (Debian: libxrt-dev; or Vitis's $XILINX_XRT)")
    root, _ = project
    lib = [f"-L{inc.parent / 'lib'}"] if (inc.parent / "lib").is_dir() else []
    exe = tmp_path / "host_xrt"
    r = subprocess.run(["g++", "-std=c++17", "-O0", "-Wall", "-Werror", f"-I{inc}", "host/host_xrt.cpp", "-o", str(exe),
                        *lib, "-lxrt_coreutil", "-pthread"], cwd=root, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-3000:]
    r = subprocess.run([str(exe)], cwd=root, capture_output=True, text=True)
    assert r.returncode == 2 and "usage:" in r.stderr


# A recording stand-in for the XRT classes the host uses: every call is logged (one line, under a
# lock: runs wait in other threads); a run's wait takes WAIT_MS, as a kernel would, one run of a
# kernel at a time (its one compute unit).
FAKE_XRT = r"""
#pragma once
#include <chrono>
#include <cstdio>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

enum xclBOSyncDirection { XCL_BO_SYNC_BO_TO_DEVICE = 0, XCL_BO_SYNC_BO_FROM_DEVICE = 1 };

namespace fake {
inline std::mutex& lock() { static std::mutex m; return m; }
inline int next_id() { static int n = 0; return n++; }
template <class... A>
void log(const char* fmt, A... a) {
    std::lock_guard<std::mutex> g(lock());
    std::fprintf(stderr, fmt, a...);
    std::fputc('\n', stderr);
}
}  // namespace fake

namespace xrt {
struct uuid {};
struct xclbin {
    explicit xclbin(const std::string& path) { fake::log("xclbin %s", path.c_str()); }
};
struct device {
    explicit device(unsigned int) {}
    uuid load_xclbin(const xclbin&) { return uuid(); }
};
struct kernel {
    int index;
    std::string name;
    kernel(const device&, const uuid&, const std::string& n) : index(count()++), name(n) {
        fake::log("kernel %d %s", index, n.c_str());
    }
    static int& count() { static int c = 0; return c; }
    int group_id(int arg) const { return 1000 * index + arg; }
};
class bo {
   public:
    enum class flags : unsigned { normal = 0 };
    bo() = default;
    bo(const device&, size_t size, flags, int group) : d_(std::make_shared<data>()) {
        d_->id = fake::next_id();
        d_->bytes.assign(size, 0);
        fake::log("bo %d %zu %d", d_->id, size, group);
    }
    void write(const void* src) { std::memcpy(d_->bytes.data(), src, d_->bytes.size()); fake::log("write %d", d_->id); }
    void read(void* dst) { std::memcpy(dst, d_->bytes.data(), d_->bytes.size()); fake::log("read %d", d_->id); }
    void sync(xclBOSyncDirection dir) { fake::log("sync %d %d", d_->id, int(dir)); }
    int id() const { return d_->id; }

   private:
    struct data { int id; std::vector<char> bytes; };
    std::shared_ptr<data> d_;
};
class run {
   public:
    explicit run(const kernel& k) : id_(fake::next_id()), kernel_(k.index) { fake::log("run %d %d", id_, kernel_); }
    void set_arg(int i, const bo& b) { fake::log("arg %d %d %d", id_, i, b.id()); }
    void start() { fake::log("start %d", id_); }
    int wait() {  // a compute unit runs one call at a time
        static std::mutex cu[64];
        std::lock_guard<std::mutex> busy(cu[kernel_ % 64]);
        std::this_thread::sleep_for(std::chrono::milliseconds(WAIT_MS));
        fake::log("done %d", id_);
        return 0;
    }

   private:
    int id_, kernel_;
};
}  // namespace xrt
"""


@pytest.fixture(scope="module")
def fake_host(project, tmp_path_factory):
    """The project's XRT host compiled against the stand-in."""
    root, _ = project
    inc = tmp_path_factory.mktemp("fake_xrt")
    (inc / "xrt").mkdir()
    (inc / "xrt" / "xrt_kernel.h").write_text(FAKE_XRT)
    for h in ("xrt_bo.h", "xrt_device.h"):
        (inc / "xrt" / h).write_text('#pragma once\n#include "xrt/xrt_kernel.h"\n')
    exe = inc / "host_fake"
    subprocess.run(["g++", "-std=c++17", "-O1", "-Wall", "-Werror", "-DWAIT_MS=100", f"-I{inc}",
                    "host/host_xrt.cpp", "-o", str(exe), "-pthread"], cwd=root, check=True, capture_output=True)
    return exe


def _fake_run(exe: Path, root: Path, frames: int) -> tuple[subprocess.CompletedProcess, list[list[str]]]:
    r = subprocess.run([str(exe), "model.xclbin", str(frames)], cwd=root, capture_output=True, text=True, timeout=60)
    return r, [ln.split() for ln in r.stderr.splitlines()]


@needs_gxx
@pytest.mark.slow
def test_run_order_double_buffering_and_banks(project, fake_host):
    root, man = project
    r, log = _fake_run(fake_host, root, FRAMES)
    nbuf, nk = len(man["buffers"]), len(man["kernels"])
    kernel_index = {ln[2]: int(ln[1]) for ln in log if ln[0] == "kernel"}
    assert list(kernel_index) == [k["name"] for k in man["kernels"]]
    # buffers: set 0 all, set 1 all but the weights
    bos = [(int(ln[1]), int(ln[3])) for ln in log if ln[0] == "bo"]
    params = [i for i, b in enumerate(man["buffers"]) if b["role"] == "param"]
    assert len(bos) == 2 * nbuf - len(params)
    bo_of, group = {}, {}
    ids = iter(bos)
    for s in (0, 1):
        for i in range(nbuf):
            if s and i in params:
                bo_of[(1, i)] = bo_of[(0, i)]
                continue
            bid, grp = next(ids)
            bo_of[(s, i)], group[bid] = bid, grp
    # every argument of every run is its buffer of the run's set, and that buffer's group is an
    # argument connected to the same bank as this one
    runs = {int(ln[1]): int(ln[2]) for ln in log if ln[0] == "run"}
    assert len(runs) == 2 * nk
    run_set = {rid: n // nk for n, rid in enumerate(runs)}
    banks = _banks(root)
    names = [k["name"] for k in man["kernels"]]
    args = {n: _arg_names(root, n) for n in names}
    seen = set()
    for ln in log:
        if ln[0] != "arg":
            continue
        rid, ai, bid = map(int, ln[1:])
        ki, s = runs[rid], run_set[rid]
        assert bo_of[(s, man["kernels"][ki]["args"][ai])] == bid
        gk, ga = divmod(group[bid], 1000)
        assert banks[(names[ki], args[names[ki]][ai])] == banks[(names[gk], args[names[gk]][ga])]
        seen.add((rid, ai))
    assert len(seen) == 2 * sum(len(k["args"]) for k in man["kernels"])
    ops = [ln[0] for ln in log]
    setup_end = max(i for i, op in enumerate(ops) if op in ("bo", "arg", "run"))
    assert setup_end < min(i for i, op in enumerate(ops) if op in ("sync", "start", "write"))
    # frames: inputs written to set f % 2, kernels of a frame in order on that set's runs
    inputs = [i for i, b in enumerate(man["buffers"]) if b["role"] == "input"]
    writes = [int(ln[1]) for ln in log if ln[0] == "write" and int(ln[1]) not in {bo_of[(0, p)] for p in params}]
    assert writes == [bo_of[(f % 2, i)] for f in range(FRAMES) for i in inputs]
    starts = [int(ln[1]) for ln in log if ln[0] == "start"]
    assert len(starts) == FRAMES * nk
    for s in (0, 1):
        mine = [runs[rid] for rid in starts if run_set[rid] == s]
        assert mine == list(range(nk)) * len(range(s, FRAMES, 2))
    # overlap: frame f+1's input reaches the device before frame f's last kernel is done
    # (set s's buffers and runs serve frames s, s+2, ...: frame g is their (g // 2)-th use)
    def nth(kind, ident, n, extra=()):
        return [i for i, ln in enumerate(log) if ln[:2 + len(extra)] == [kind, str(ident), *extra]][n]

    last_run = [rid for rid in runs if runs[rid] == nk - 1]  # of set 0, of set 1
    for f in range(FRAMES - 1):
        g = f + 1
        sync_at = nth("sync", bo_of[(g % 2, inputs[0])], g // 2, ("0",))
        assert sync_at < nth("done", last_run[f % 2], f // 2), f"frame {g}'s input waited for frame {f} to end"
    # every frame's outputs read back, each after its frame's last kernel
    outputs = [i for i, b in enumerate(man["buffers"]) if b["role"] == "output"]
    reads = [int(ln[1]) for ln in log if ln[0] == "read"]
    assert sorted(reads) == sorted(bo_of[(f % 2, o)] for f in range(FRAMES) for o in outputs)
    nonzero = 0
    for o in outputs:
        spec = next(s for s in man["outputs"] if s["buffer"] == o)
        want = np.fromfile(root / spec["expected"], spec["expected_dtype"]).astype(np.float64)
        nonzero += int((np.abs(want) > spec["atol"] + spec["rtol"] * np.abs(want)).sum())
    assert nonzero > 0
    assert r.returncode == 1 and f"{FRAMES} frames" in r.stdout and f"FAIL ({FRAMES * nonzero} mismatches)" in r.stdout
    r, _ = _fake_run(fake_host, root, 0)
    assert r.returncode == 2 and "FRAMES must be a positive number" in r.stderr


class _TimedOpenCL:
    """Stands in for pyopencl: queues are in order and run their commands when waited on; the log
    says which set's buffers each command touched."""

    def __init__(self):
        self.log: list[tuple] = []
        cl = self

        class Buffer:
            def __init__(self, context, flags, hostbuf):
                self.host = hostbuf

        class Kernel:
            def __init__(self, name):
                self.name, self.args = name, ()

            def set_args(self, *bufs):
                self.args = bufs
                cl.log.append(("bind", self.name, tuple(id(b) for b in bufs)))

        class Program:
            def __init__(self, context, devices, binaries):
                self.kernels = {}

            def build(self):
                return self

            def __getattr__(self, name):
                return self.__dict__["kernels"].setdefault(name, Kernel(name))

        class Event:
            def __init__(self, queue):
                self.queue = queue

            def wait(self):
                cl.log.append(("wait", self.queue.index))

        class Queue:
            count = 0

            def __init__(self, *a):
                self.index = Queue.count
                Queue.count += 1

            def finish(self):
                pass

        def migrate(queue, bufs, flags=0):
            cl.log.append(("migrate", queue.index, tuple(id(b) for b in bufs), flags))
            return Event(queue)

        self.Buffer, self.Program, self.CommandQueue = Buffer, Program, Queue
        self.Context = lambda devices: object()
        self.enqueue_migrate_mem_objects = migrate
        self.enqueue_task = lambda queue, kernel: cl.log.append(("run", queue.index, kernel.name,
                                                                 tuple(id(b) for b in kernel.args)))
        self.mem_flags = type("mem_flags", (), {"READ_WRITE": 1, "USE_HOST_PTR": 8})
        self.mem_migration_flags = type("mem_migration_flags", (), {"HOST": 1})


def test_python_host_batches_over_two_buffer_sets(project, monkeypatch):
    import importlib.util

    root, man = project
    fake = _TimedOpenCL()
    monkeypatch.setitem(sys.modules, "pyopencl", fake)
    spec = importlib.util.spec_from_file_location("irc_generated_host_batch", root / "host" / "host.py")
    host = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(host)
    monkeypatch.setattr(host, "xilinx_device", lambda: object())
    (root / "build").mkdir(exist_ok=True)
    (root / "build" / "model.xclbin").write_bytes(b"\0")
    model = host.Model(root / "build" / "model.xclbin")
    frames = [[np.full(s["shape"], f, np.float32) for s in man["inputs"]] for f in range(FRAMES)]
    results = model.run_batch(frames)
    assert len(results) == FRAMES
    sets = [{id(b) for b in model.buffers[s]} for s in (0, 1)]
    params = {id(model.buffers[0][i]) for i, b in enumerate(man["buffers"]) if b["role"] == "param"}
    assert sets[0] & sets[1] == params
    # each set's buffers are bound before they first move
    bound: set[int] = set()
    for entry in fake.log:
        if entry[0] == "bind":
            bound |= set(entry[2])
        elif entry[0] == "migrate":
            assert set(entry[2]) <= bound
    # frame f runs on queue f % 2 with set f % 2's buffers; frame f+1 is queued before frame f is
    # waited for (its transfers overlap frame f's kernels)
    runs = [e for e in fake.log if e[0] == "run"]
    assert len(runs) == FRAMES * len(man["kernels"])
    for n, e in enumerate(runs):
        f = n // len(man["kernels"])
        assert e[1] == f % 2 and set(e[3]) <= sets[f % 2]
    order = [e for e in fake.log if e[0] in ("migrate", "wait")]
    in_moves = [i for i, e in enumerate(order) if e[0] == "migrate" and e[3] == 0][1:]  # [0]: the weights
    waits = [i for i, e in enumerate(order) if e[0] == "wait"][1:]
    assert len(in_moves) == FRAMES and len(waits) == FRAMES
    for f in range(FRAMES - 1):
        assert in_moves[f + 1] < waits[f], f"frame {f + 1} was queued after frame {f} was waited for"
    # results come back per frame: the input of frame f was f everywhere, read from its own set
    assert [float(model.host[f % 2][man["inputs"][0]["buffer"]].flat[0]) for f in (FRAMES - 2, FRAMES - 1)] == \
        [FRAMES - 2, FRAMES - 1]
