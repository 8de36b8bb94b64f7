"""The compile cache (irc/targets/cpu/compile_cache.py): a second compile of the same code loads
object code without running LLVM; anything that changes the code misses; new weights hit and
compute with the new values; a damaged entry is rebuilt; concurrent writers leave one whole
entry; the size bound holds; ``irc cache info|clear`` and ``--no-cache`` on the command line."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import irc
from irc.errors import InputError
from irc.ir.builder import GraphBuilder
from irc.ir.interp import interpret
from irc.targets.cpu import compile_cache, jit_build
from irc.targets.cpu.compile_cache import CompileCache, Entry
from tests.support.cli import assert_user_error

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def cache_dir(tmp_path, monkeypatch) -> Path:
    d = tmp_path / "cache"
    monkeypatch.setenv("IRC_CACHE_DIR", str(d))
    monkeypatch.delenv("IRC_CACHE_MAX_BYTES", raising=False)
    return d


def entries(d: Path) -> list[Path]:
    return sorted(d.glob("*.ircobj"))


def dense(batch: int = 4, act: str = "relu", seed: int = 0, name: str = "dense"):
    """x @ w + b through ``act``, with w scaled by a constant (folded at compile time: the folded
    weight is still data, not code)."""
    rng = np.random.default_rng(seed)
    b = GraphBuilder(name)
    x = b.input("x", (batch, 16))
    w = b.op("mul", b.param("w", rng.standard_normal((16, 8)).astype(np.float32)),
             b.const(np.float32(0.5)))
    y = b.op("add", b.op("matmul", x, w), b.param("b", rng.standard_normal(8).astype(np.float32)))
    return b.build(b.op(act, y))


def x_for(g, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(g.inputs[0].shape).astype(np.float32)


def check_outputs(m, g) -> None:
    x = x_for(g)
    np.testing.assert_allclose(m(x), interpret(g, [x])[0], rtol=1e-5, atol=1e-6)


def no_llvm(monkeypatch) -> None:
    """Any code generation from here on fails the test."""
    def fail(*a, **k):
        raise AssertionError("LLVM ran on a cache hit")
    monkeypatch.setattr(jit_build, "generate_module", fail)


def test_second_compile_hits_and_skips_llvm(cache_dir, monkeypatch):
    g = dense()
    first = irc.compile(g, "cpu", threads=1)
    assert not first.executable.cached
    n = len(entries(cache_dir))
    assert n >= 1
    no_llvm(monkeypatch)
    second = irc.compile(dense(), "cpu", threads=1)
    assert second.executable.cached
    assert len(entries(cache_dir)) == n
    check_outputs(second, g)


@pytest.mark.parametrize("change", [
    pytest.param(lambda: (dense(act="sigmoid"), {}), id="graph-structure"),
    pytest.param(lambda: (dense(batch=5), {}), id="static-shape"),
    pytest.param(lambda: (dense(), {"threads": 2}), id="option-threads"),
    pytest.param(lambda: (dense(), {"ftz": False}), id="option-ftz"),
    pytest.param(lambda: (dense(), {"cpu": "generic"}), id="cpu"),
])
def test_each_key_component_misses(cache_dir, change):
    irc.compile(dense(), "cpu", threads=1)
    g, opts = change()
    m = irc.compile(g, "cpu", **{"threads": 1, **opts})
    assert not m.executable.cached
    check_outputs(m, g)
    assert irc.compile(g, "cpu", **{"threads": 1, **opts}).executable.cached


def test_another_irc_version_or_source_misses(cache_dir, monkeypatch):
    irc.compile(dense(), "cpu", threads=1)
    tools = dict(compile_cache.toolchain())
    for field, value in (("irc", "999.0"), ("irc_sources", "0" * 32), ("llvm", "1.0.0")):
        monkeypatch.setattr(compile_cache, "toolchain", lambda t={**tools, field: value}: t)
        assert not irc.compile(dense(), "cpu", threads=1).executable.cached, field
    monkeypatch.setattr(compile_cache, "toolchain", lambda: tools)
    assert irc.compile(dense(), "cpu", threads=1).executable.cached


def test_new_weights_hit_and_compute_with_the_new_values(cache_dir, monkeypatch):
    irc.compile(dense(seed=0), "cpu", threads=1)
    no_llvm(monkeypatch)
    g = dense(seed=7)
    m = irc.compile(g, "cpu", threads=1)
    assert m.executable.cached
    check_outputs(m, g)


@pytest.mark.parametrize("damage", ["truncate", "flip", "empty", "foreign"])
def test_a_damaged_entry_is_rebuilt_never_loaded(cache_dir, damage):
    g = dense()
    irc.compile(g, "cpu", threads=1)
    (path,) = [p for p in entries(cache_dir) if p.stat().st_size > 0 and _is_model_entry(p, g)]
    data = bytearray(path.read_bytes())
    if damage == "truncate":
        data = data[: len(data) // 2]
    elif damage == "flip":
        data[len(data) * 3 // 4] ^= 0xFF
    elif damage == "empty":
        data = bytearray()
    else:  # a whole entry, but written for another key
        other = CompileCache(cache_dir / "other")
        other.put("f" * 64, CompileCache().get(path.name.removesuffix(".ircobj")))
        data = bytearray((cache_dir / "other" / f"{'f' * 64}.ircobj").read_bytes())
    path.write_bytes(bytes(data))
    m = irc.compile(g, "cpu", threads=1)
    assert not m.executable.cached
    check_outputs(m, g)
    assert irc.compile(g, "cpu", threads=1).executable.cached  # rebuilt whole


def _is_model_entry(path: Path, g) -> bool:
    key = path.name.removesuffix(".ircobj")
    entry = CompileCache().get(key)
    return entry is not None and "entry" in entry.meta and entry.meta["entry"].startswith(g.name)


_WRITER = """
import os, sys, time
from pathlib import Path
import numpy as np
import irc
from irc.targets import get_target
sys.path.insert(0, sys.argv[1])
from tests.targets.cpu.test_compile_cache import dense, x_for
from irc.ir.interp import interpret
get_target("cpu")
barrier = Path(sys.argv[2])
(barrier / str(os.getpid())).touch()
deadline = time.time() + 60
while len(list(barrier.iterdir())) < int(sys.argv[3]) and time.time() < deadline:
    time.sleep(0.002)  # every writer imported: they now compile at the same moment
g = dense(batch=3, name="race")
m = irc.compile(g, "cpu", threads=1)
x = x_for(g)
np.testing.assert_allclose(m(x), interpret(g, [x])[0], rtol=1e-5, atol=1e-6)
print("ok", m.executable.cached)
"""


@pytest.mark.slow
def test_concurrent_writers_leave_one_whole_entry(cache_dir, tmp_path):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    barrier = tmp_path / "barrier"
    barrier.mkdir()
    n = 3
    procs = [subprocess.Popen([sys.executable, "-c", _WRITER, str(ROOT), str(barrier), str(n)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env) for _ in range(n)]
    for p in procs:
        out, err = p.communicate(timeout=180)
        assert p.returncode == 0, err
        assert out.startswith("ok"), out
    assert not list(cache_dir.glob("*.tmp")), "a temporary file was left behind"
    g = dense(batch=3, name="race")
    m = irc.compile(g, "cpu", threads=1)
    assert m.executable.cached  # what the other processes wrote loads here
    check_outputs(m, g)


def test_lru_eviction_keeps_the_bound_and_the_recently_used(tmp_path):
    store = CompileCache(tmp_path, limit=3000)
    blob = Entry({}, b"\x90" * 900)
    for key in ("a" * 64, "b" * 64):
        assert store.put(key, blob)
    now = time.time()
    os.utime(tmp_path / f"{'a' * 64}.ircobj", (now - 100, now - 100))
    os.utime(tmp_path / f"{'b' * 64}.ircobj", (now - 50, now - 50))
    assert store.get("a" * 64) is not None  # a is used again: b is now the oldest
    assert store.put("c" * 64, blob)
    assert store.put("d" * 64, blob) and store.info().bytes <= 3000
    names = {p.name[0] for p in entries(tmp_path)}
    assert "b" not in names and {"c", "d"} <= names
    assert store.info().bytes <= store.limit
    assert not store.put("e" * 64, Entry({}, b"\0" * 4000))  # larger than the bound: not stored


def test_a_put_below_the_bound_reads_the_ledger_not_the_folder(tmp_path, monkeypatch):
    """Storing an entry stats one ledger file, not every entry (a folder of thousands made each
    compile pay a scan); the folder is counted again only when the ledger says the bound is
    passed, and eviction leaves the ledger equal to the real total."""
    store = CompileCache(tmp_path, limit=10_000)
    blob = Entry({}, b"\x90" * 900)
    assert store.put("a" * 64, blob)  # no ledger yet: one count
    scans = []
    real = CompileCache._entries
    monkeypatch.setattr(CompileCache, "_entries", lambda self: scans.append(1) or real(self))
    for key in "bcdefgh":
        assert store.put(key * 64, blob)
    assert not scans  # 8 entries of ~1 kB: below the bound, no scan
    for key in "ijkl":
        assert store.put(key * 64, blob)
    assert scans  # past the bound: counted and evicted
    monkeypatch.setattr(CompileCache, "_entries", real)
    assert int((tmp_path / ".usage").read_text()) == store.info().bytes <= store.limit


def test_size_bound_from_the_environment(cache_dir, monkeypatch):
    irc.compile(dense(), "cpu", threads=1)
    one = max(p.stat().st_size for p in entries(cache_dir))
    monkeypatch.setenv("IRC_CACHE_MAX_BYTES", str(one * 2 + one // 2))
    for batch in (2, 3, 5, 6):
        irc.compile(dense(batch=batch), "cpu", threads=1)
        assert sum(p.stat().st_size for p in entries(cache_dir)) <= one * 2 + one // 2
    assert irc.compile(dense(batch=6), "cpu", threads=1).executable.cached  # the newest stays
    monkeypatch.setenv("IRC_CACHE_MAX_BYTES", "lots")
    with pytest.raises(InputError, match="IRC_CACHE_MAX_BYTES"):
        irc.compile(dense(batch=7), "cpu", threads=1)
    monkeypatch.setenv("IRC_CACHE_MAX_BYTES", "2M")
    assert compile_cache.max_bytes() == 2 << 20


def test_cache_false_neither_reads_nor_writes(cache_dir):
    m = irc.compile(dense(), "cpu", threads=1, cache=False)
    assert not m.executable.cached and not entries(cache_dir)
    irc.compile(dense(), "cpu", threads=1)
    assert not irc.compile(dense(), "cpu", threads=1, cache=False).executable.cached
    with pytest.raises(InputError, match="cache must be true or false"):
        irc.compile(dense(), "cpu", cache="yes")


def test_an_unwritable_cache_only_costs_speed(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("IRC_CACHE_DIR", str(blocker / "cache"))
    for _ in range(2):
        m = irc.compile(dense(), "cpu", threads=1)
        assert not m.executable.cached
        check_outputs(m, dense())


def test_llvm_ir_of_a_cache_hit_is_generated_again(cache_dir):
    irc.compile(dense(), "cpu", threads=1)
    m = irc.compile(dense(), "cpu", threads=1)
    assert m.executable.cached and "define" in m.executable.llvm_ir()


@pytest.mark.slow
def test_the_train_step_hits_the_cache(cache_dir):
    from irc import nn

    def model(seed):
        net = nn.Sequential([nn.Flatten(), nn.Dense(12, activation="relu"), nn.Dense(3, activation="softmax")],
                            input_shape=(1, 4, 4), name="tiny", seed=seed)
        return net.compile(nn.SGD(0.1), "cross_entropy", target="cpu", threads=1)

    x = np.random.default_rng(0).standard_normal((8, 1, 4, 4)).astype(np.float32)
    y = np.arange(8) % 3
    first, second = model(0), model(1)
    first.prepare(8)
    assert not first._compiled("step", 8).exe.cached
    second.prepare(8)
    assert second._compiled("step", 8).exe.cached
    # the cached step trains with its own weights: the same loss as the interpreter's step
    ref = model(1).compile(nn.SGD(0.1), "cross_entropy", target="interp")
    got, want = second.train_on_batch(x, y), ref.train_on_batch(x, y)
    assert got.keys() == want.keys()
    for k in want:
        np.testing.assert_allclose(got[k], want[k], rtol=1e-4, err_msg=k)


def test_cli_cache_info_clear_and_no_cache(cache_dir, irc, model_file):
    from irc.frontend.onnx import export_onnx

    path = model_file(export_onnx(dense()))
    status, out, _ = irc("compile", path, "--no-cache")
    assert status == 0 and not entries(cache_dir)
    status, out, _ = irc("compile", path)
    assert status == 0 and entries(cache_dir)
    status, out, _ = irc("cache", "info")
    assert status == 0 and str(cache_dir) in out
    n = len(entries(cache_dir))
    assert f"entries: {n}," in out
    status, out, _ = irc("cache", "clear")
    assert status == 0 and f"removed {n} entr" in out and not entries(cache_dir)
    assert_user_error(irc("compile", path, "-t", "interp", "--no-cache"), "--no-cache", "cpu target")


@pytest.mark.parametrize("warm", [False, True])
def test_the_executable_holds_each_weight_once(cache_dir, warm):
    """The weights are copied into the blob the code reads; neither the executable nor the code
    it could regenerate keeps the originals alive, and no LLVM module is kept."""
    import gc
    import weakref

    from irc.passes.pipeline import run_pipeline
    from irc.targets import get_target

    target = get_target("cpu")
    opts = {**target.options, "threads": 1}

    def lowered():
        g = dense()
        return run_pipeline(g, target.pipeline(opts), options={**opts, **target.pass_options(opts)})

    if warm:
        target.build(lowered(), opts)
    g = lowered()
    alive = [weakref.ref(a) for a in g.params.values()]
    exe = target.build(g, opts)
    assert exe.cached == warm and exe._module is None
    del g
    gc.collect()
    assert not [r for r in alive if r() is not None], "an original weight outlived the build"
    x = x_for(exe.graph)
    np.testing.assert_allclose(exe.run([x])[0], interpret(lowered(), [x])[0], rtol=1e-5, atol=1e-6)
