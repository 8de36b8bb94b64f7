"""A warm compile (irc/targets/cpu/model_cache.py): an ONNX model compiled before loads whole,
its packed weights mapped from the cache, without reading the ONNX file as a model, running a
pass or LLVM; its outputs equal the cold compile's; every key component misses; a damaged entry
is rebuilt; weights in external files are never cached; the compiled model holds no ONNX model
and no unpacked weights."""

from __future__ import annotations

import gc
import os
import subprocess
import sys
import time
import tracemalloc
import weakref
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import irc
import irc.api
import irc.errors
from irc.frontend.onnx import load as onnx_load
from irc.targets.cpu import compile_cache, jit_build, model_cache

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def cache_dir(tmp_path, monkeypatch) -> Path:
    d = tmp_path / "cache"
    monkeypatch.setenv("IRC_CACHE_DIR", str(d))
    monkeypatch.delenv("IRC_CACHE_MAX_BYTES", raising=False)
    return d


def convnet(seed: int = 0, batch: int | str = 2, hidden: int = 64) -> onnx.ModelProto:
    """Conv -> BatchNormalization -> Relu -> Flatten -> Gemm: batch-norm folding, weight packing
    and a transposed fully-connected weight, the passes a warm compile skips."""
    rng = np.random.default_rng(seed)

    def init(name, *shape, scale=0.3):
        return numpy_helper.from_array((rng.standard_normal(shape) * scale).astype(np.float32), name)

    inits = [init("w", 8, 3, 3, 3), init("cb", 8), init("gamma", 8), init("beta", 8), init("mean", 8),
             numpy_helper.from_array(rng.uniform(0.5, 1.5, 8).astype(np.float32), "var"),
             init("fw", hidden, 8 * 6 * 6, scale=0.05), init("fb", hidden)]
    nodes = [helper.make_node("Conv", ["x", "w", "cb"], ["c"], pads=[0, 0, 0, 0]),
             helper.make_node("BatchNormalization", ["c", "gamma", "beta", "mean", "var"], ["n"]),
             helper.make_node("Relu", ["n"], ["r"]),
             helper.make_node("Flatten", ["r"], ["f"]),
             helper.make_node("Gemm", ["f", "fw", "fb"], ["y"], transB=1)]
    graph = helper.make_graph(nodes, "convnet", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 3, 8, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, hidden])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def x_for(batch: int = 2) -> np.ndarray:
    return np.random.default_rng(1).standard_normal((batch, 3, 8, 8)).astype(np.float32)


class Count:
    """Calls of run_pipeline made by irc.compile (each is a compile that ran the passes)."""

    def __init__(self, monkeypatch):
        self.n = 0
        real = irc.api.run_pipeline

        def counted(*a, **k):
            self.n += 1
            return real(*a, **k)

        monkeypatch.setattr(irc.api, "run_pipeline", counted)


def model_entries(d: Path) -> list[Path]:
    out = []
    for p in sorted(d.glob("*.ircobj")):
        data = p.read_bytes()
        if b'"params"' in data[:4096] and b'"graph"' in data[:4096]:
            out.append(p)
    return out


def nothing_but_the_cache(monkeypatch) -> None:
    """From here on, reading an ONNX model, running a pass or generating code fails the test."""
    def fail(*a, **k):
        raise AssertionError("a warm compile did work the cache holds")

    monkeypatch.setattr(onnx_load, "load_model_info", fail)
    monkeypatch.setattr(irc.api, "run_pipeline", fail)
    monkeypatch.setattr(jit_build, "generate_module", fail)
    monkeypatch.setattr(jit_build, "compile_objects", fail)


@pytest.mark.parametrize("form", ["path", "bytes", "proto"])
def test_warm_compile_loads_whole_with_the_cold_outputs(cache_dir, model_file, ort_run, monkeypatch, form):
    model = convnet()
    path = model_file(model)
    src = {"path": lambda: path, "bytes": lambda: model.SerializeToString(), "proto": lambda: convnet()}[form]
    cold = irc.compile(src(), "cpu", threads=1)
    x = x_for()
    want = cold(x)
    np.testing.assert_allclose(want, ort_run(model, {"x": x})[0], rtol=1e-4, atol=1e-5)
    assert len(model_entries(cache_dir)) == 1
    nothing_but_the_cache(monkeypatch)
    warm = irc.compile(src(), "cpu", threads=1)
    assert warm.executable.cached
    np.testing.assert_array_equal(warm(x), want)  # the same code on the same packed weights
    assert warm.input_names == ["x"] and warm.output_names == ["y"]
    assert [v.name for v in warm.graph.params] == [v.name for v in cold.graph.params]


_WARM = """
import sys
import numpy as np
import irc
m = irc.compile(sys.argv[1], "cpu", threads=1)
assert m.executable.cached, "not a warm compile"
assert m(np.zeros((2, 3, 8, 8), np.float32)).shape == (2, 64)
print(sorted(k for k in sys.modules if k.split(".")[0] in ("onnx", "google")))
"""


@pytest.mark.slow
def test_a_warm_compile_in_a_new_process_imports_no_onnx(cache_dir, model_file):
    """The model file is hashed, not read as ONNX: the ONNX library is not even imported."""
    path = model_file(convnet())
    compile_cache.toolchain.cache_clear()  # the sources as they are now, as the new process reads them
    compile_cache.sources_digest.cache_clear()
    irc.compile(path, "cpu", threads=1)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    r = subprocess.run([sys.executable, "-c", _WARM, str(path)], capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]"


def test_warm_weights_are_the_mapped_entry_not_a_copy(cache_dir, model_file):
    path = model_file(convnet(hidden=1024))  # 1.2 MB of weights
    want = irc.compile(path, "cpu", threads=1)(x_for())
    gc.collect()
    tracemalloc.start()
    try:
        warm = irc.compile(path, "cpu", threads=1)
        held, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    weights = warm.executable.plan.weights_bytes
    assert weights > 1 << 20
    # what it allocates: the arena, the graph and the code, not the weights
    assert held < weights // 4 + warm.executable.plan.arena_bytes, f"{held} bytes allocated for {weights} of weights"
    assert all(not a.flags.writeable for a in warm.graph.params.values())
    np.testing.assert_array_equal(warm(x_for()), want)


@pytest.mark.parametrize("change", ["weights", "shapes", "pass_option", "threads", "ftz", "front_sources"])
def test_each_key_component_misses(cache_dir, model_file, monkeypatch, change):
    path = model_file(convnet(batch="N"), "dyn.onnx")
    base = {"shapes": {"x": (2, 3, 8, 8)}, "threads": 1}
    irc.compile(path, "cpu", **base)
    count = Count(monkeypatch)
    irc.compile(path, "cpu", **base)
    assert count.n == 0  # the baseline hits
    kwargs = dict(base)
    if change == "weights":
        path = model_file(convnet(seed=5, batch="N"), "dyn.onnx")  # the same file, retrained
    elif change == "shapes":
        kwargs["shapes"] = {"x": (3, 3, 8, 8)}
    elif change == "pass_option":
        kwargs["winograd"] = "off"
    elif change == "threads":
        kwargs["threads"] = 2
    elif change == "ftz":
        kwargs["ftz"] = False
    else:
        real = compile_cache.sources_digest
        monkeypatch.setattr(compile_cache, "sources_digest",
                            lambda rels: "0" * 32 if rels == model_cache._FRONT_SOURCES else real(rels))
    m = irc.compile(path, "cpu", **kwargs)
    assert count.n == 1
    batch = kwargs["shapes"]["x"][0]
    model = convnet(seed=5 if change == "weights" else 0, batch="N")
    ref = irc.compile(model, "interp", shapes=kwargs["shapes"])
    np.testing.assert_allclose(m(x_for(batch)), ref(x_for(batch)), rtol=1e-4, atol=1e-5)
    count.n = 0
    irc.compile(path, "cpu", **kwargs)
    assert count.n == 0  # stored: the next compile hits


@pytest.mark.parametrize("damage", ["weights", "meta", "truncate"])
def test_a_damaged_entry_is_rebuilt_never_loaded(cache_dir, model_file, monkeypatch, damage):
    path = model_file(convnet())
    want = irc.compile(path, "cpu", threads=1)(x_for())
    (entry,) = model_entries(cache_dir)
    data = bytearray(entry.read_bytes())
    if damage == "weights":  # the bulk part, covered by the fast checksum
        head = compile_cache._HEAD.size
        meta_bytes = int.from_bytes(data[head:head + 4], "little")
        data[head + 4 + meta_bytes + 100] ^= 0x01
    elif damage == "meta":
        data[data.index(b'"graph"') + 20] ^= 0x01
    else:
        data = data[: len(data) - 10]
    entry.write_bytes(bytes(data))
    count = Count(monkeypatch)
    m = irc.compile(path, "cpu", threads=1)
    assert count.n == 1
    np.testing.assert_array_equal(m(x_for()), want)
    irc.compile(path, "cpu", threads=1)
    assert count.n == 1  # rebuilt whole


def test_fast_checksum_sees_a_changed_moved_or_lost_word():
    rng = np.random.default_rng(0)
    data = rng.integers(0, 256, 8 * 1000 + 5, dtype=np.uint8)
    base = compile_cache.fast_checksum(data)
    flipped = data.copy()
    flipped[4321] ^= 0x10
    swapped = data.copy()
    swapped[0:8], swapped[8:16] = data[8:16], data[0:8]
    tail = data.copy()
    tail[-1] ^= 1
    sums = {compile_cache.fast_checksum(d) for d in (flipped, swapped, tail, data[:-1], data[:-8])}
    assert base not in sums and len(sums) == 5
    assert compile_cache.fast_checksum(data.copy()) == base


def test_external_weights_are_never_cached(cache_dir, tmp_path, monkeypatch):
    """The fingerprint covers the .onnx file only: a model whose weights live in another file
    is compiled from the model every time (and still finds its object code)."""
    path = tmp_path / "ext.onnx"

    def save(seed):
        onnx.save_model(convnet(seed=seed), path, save_as_external_data=True, all_tensors_to_one_file=True,
                        location="ext.bin", size_threshold=0)

    save(0)
    irc.compile(path, "cpu", threads=1)
    assert not model_entries(cache_dir)
    save(3)  # new weights in ext.bin
    count = Count(monkeypatch)
    m = irc.compile(path, "cpu", threads=1)
    assert count.n == 1 and m.executable.cached  # the object code is the same
    ref = irc.compile(convnet(seed=3), "interp")
    np.testing.assert_allclose(m(x_for()), ref(x_for()), rtol=1e-4, atol=1e-5)


def test_cache_false_neither_reads_nor_writes_whole_models(cache_dir, model_file, monkeypatch):
    path = model_file(convnet())
    irc.compile(path, "cpu", threads=1, cache=False)
    assert not list(cache_dir.glob("*.ircobj"))
    irc.compile(path, "cpu", threads=1)
    count = Count(monkeypatch)
    assert not irc.compile(path, "cpu", threads=1, cache=False).executable.cached
    assert count.n == 1


def test_a_settled_file_is_not_read_again(cache_dir, model_file, monkeypatch):
    """The digest of a file read long after its last change is remembered by its identity; a
    file changed since (a new mtime and ctime) is read again."""
    path = model_file(convnet())
    for name in ("_SETTLED_S", "_SETTLED_FINE_S"):
        monkeypatch.setattr(model_cache, name, 0.0)
    opts = {"threads": 1}
    first = model_cache.model_digest(path, opts)
    reads = []
    real = model_cache.fingerprint
    monkeypatch.setattr(model_cache, "fingerprint", lambda src: reads.append(src) or real(src))
    assert model_cache.model_digest(path, opts) == first and not reads
    time.sleep(0.05)  # past the file system's timestamp granularity (the check is off here)
    model_file(convnet(seed=9))
    assert model_cache.model_digest(path, opts) != first and reads
    for name in ("_SETTLED_S", "_SETTLED_FINE_S"):
        monkeypatch.setattr(model_cache, name, 3600.0)  # a file changed just now: never remembered
    model_file(convnet(seed=10))
    reads.clear()
    model_cache.model_digest(path, opts)
    model_cache.model_digest(path, opts)
    assert len(reads) == 2


def test_a_dynamic_model_without_shapes_is_not_stored(cache_dir, model_file):
    path = model_file(convnet(batch="N"))
    m = irc.compile(path, "cpu", threads=1)
    assert m(x_for(3)).shape == (3, 64)
    assert not model_entries(cache_dir)


def test_cold_compile_keeps_no_onnx_model_or_unpacked_weights(cache_dir, model_file, monkeypatch):
    """The imported weights and each pass's are gone once the code and its weight blob exist;
    the ONNX model is let go (read again only for another specialization)."""
    irc.compile(convnet(seed=1, hidden=1024), "cpu", threads=1, cache=False)  # every lazy import done
    path = model_file(convnet(hidden=1024))
    alive = []
    real = irc.api.run_pipeline

    def watched(g, *a, **k):
        alive.extend(weakref.ref(w) for w in g.params.values())
        out = real(g, *a, **k)
        alive.extend(weakref.ref(w) for w in out.params.values())
        return out

    monkeypatch.setattr(irc.api, "run_pipeline", watched)
    gc.collect()
    tracemalloc.start()
    try:
        m = irc.compile(path, "cpu", threads=1, cache=False)
        gc.collect()
        held, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert alive and not [r for r in alive if r() is not None], "an imported or packed weight outlived the compile"
    assert m._source._model is None
    plan = m.executable.plan
    # what stays: the blob the code reads, the arena, the graph and code (well under the weights' size)
    assert held < plan.weights_bytes + plan.arena_bytes + plan.weights_bytes // 2 + (256 << 10), held
    with pytest.raises(irc.errors.InputError, match="contradicts"):
        m(np.zeros((3, 3, 8, 8), np.float32))  # another shape reads the model again, to refuse it
