"""Compiled models in the compile cache, keyed by the model file: a warm compile that runs no pass.

compile_cache.py keys object code by the lowered graph, so a hit there still pays for the ONNX
checks, the import, every pass (batch-norm folding, weight packing) and a copy of the weights:
over a second on ResNet-18, for a result the cache already holds. This entry is keyed by the
model's bytes (``fingerprint``), the shapes and pass options the caller gave, the target
options, the CPU and the sources of the frontend and the passes; it holds the lowered graph's
text, the weights as the memory plan lays them out (packed, folded) and the object code. A hit
maps the entry: the weights are used where they lie in the file (pages shared with the page
cache and with other processes, never copied), the graph is parsed from its text, the objects
are linked. A changed weight changes the fingerprint, so such a model misses here and still
finds its object code by the lowered graph.

Not stored: quantized models (their calibration data is not keyed), graphs with parameters
inside nested graphs (their layout is not one blob), options that have no exact text form.
"""

from __future__ import annotations

import hashlib
import os
import time
from typing import Any

import numpy as np

from irc.errors import IRCError
from irc.ir.parser import parse_graph
from irc.ir.printer import all_params, print_graph
from irc.ir.types import DType
from irc.targets.cpu import compile_cache, jit_build, llvm_env, thread_pool
from irc.targets.cpu.runtime import CpuExecutable, aligned_bytes

#: sources (relative to the irc package) whose code decides the lowered graph beyond those the
#: object code key already covers (compile_cache.toolchain)
_FRONT_SOURCES = ("api.py", "frontend", "passes", "targets/base.py", "targets/cpu/lowering")
#: environment variables that change what an import accepts
_ENV = ("IRC_MAX_TENSOR_BYTES",)
#: seconds between a file's last change and the read whose digest is remembered (see model_digest):
#: more than the timestamp granularity of file systems that keep whole seconds (FAT's is 2 s), and
#: of those that keep fractions (a clock tick: milliseconds)
_SETTLED_S = 2.5
_SETTLED_FINE_S = 0.1


def exact(value) -> bool:
    """Whether ``value`` is plain data whose JSON text says all of it (so it can be keyed)."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return True
    if isinstance(value, (list, tuple)):
        return all(exact(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and exact(v) for k, v in value.items())
    return False


def usable(options: dict[str, Any]) -> bool:
    """Whether a compile with these options is kept here."""
    if not compile_cache.check_cache_option(options.get("cache", True)):
        return False
    return options.get("quantize") is None and options.get("calib") is None


def model_digest(origin, options: dict[str, Any]) -> str | None:
    """``fingerprint`` of an ONNX model (path, bytes or ModelProto); None when ``options`` do
    not use this cache. A file's digest is remembered (a small entry) under its path, device,
    inode, size and change times, so an unchanged file is not read again; only when it was read
    well after its last change (``_SETTLED_S``), as a change within the file system's timestamp
    granularity could otherwise leave all of those the same."""
    if not usable(options):
        return None
    if not isinstance(origin, (str, os.PathLike)):
        return fingerprint(origin)
    try:
        st = os.stat(origin)
        ident = {"file": os.path.realpath(origin), "dev": st.st_dev, "ino": st.st_ino, "size": st.st_size,
                 "mtime": st.st_mtime_ns, "ctime": st.st_ctime_ns}
    except OSError:
        return None  # load_model says why
    store = compile_cache.CompileCache()
    key = compile_cache.make_key({"target": "model-digest", "ident": ident})
    known = store.get(key)
    if known is not None and isinstance(known.meta.get("sha256"), str):
        return known.meta["sha256"]
    read_at = time.time()
    digest = fingerprint(origin)
    fine = st.st_mtime_ns % 1_000_000_000 or st.st_ctime_ns % 1_000_000_000
    if digest is not None and read_at - max(st.st_mtime, st.st_ctime) >= (_SETTLED_FINE_S if fine else _SETTLED_S):
        try:
            unchanged = _same_file(os.stat(origin), st)
        except OSError:
            unchanged = False
        if unchanged:
            store.put(key, compile_cache.Entry({"sha256": digest}, b""))
    return digest


def fingerprint(src) -> str | None:
    """A SHA-256 of an ONNX model's bytes (path, bytes or ModelProto), a file read in pieces so
    that no second copy of it is held; None when there is nothing to read (``load_model`` then
    says why). The ONNX reader is not imported: a warm compile needs none of it."""
    h = hashlib.sha256()
    if isinstance(src, (bytes, bytearray, memoryview)):
        h.update(b"bytes\0")
        h.update(src)
    elif isinstance(src, (str, os.PathLike)):
        h.update(b"bytes\0")
        buf = bytearray(1 << 20)
        try:
            with open(src, "rb") as f:
                while n := f.readinto(buf):
                    h.update(memoryview(buf)[:n])
        except OSError:
            return None
    elif type(src).__name__ == "ModelProto":
        h.update(b"proto\0" + src.SerializeToString(deterministic=True))
    else:
        return None
    return h.hexdigest()


def _same_file(a: os.stat_result, b: os.stat_result) -> bool:
    return (a.st_dev, a.st_ino, a.st_size, a.st_mtime_ns, a.st_ctime_ns) == \
        (b.st_dev, b.st_ino, b.st_size, b.st_mtime_ns, b.st_ctime_ns)


def key_for(source: dict[str, Any], options: dict[str, Any], spec: llvm_env.CpuSpec) -> str | None:
    """The entry key of a model (``source``: what the caller keys it by, plain data) compiled
    with ``options`` for ``spec``; None when it is not to be cached."""
    if not usable(options):
        return None
    opts = {k: v for k, v in sorted(options.items()) if k != "cache"}
    if not exact(opts) or not exact(source):
        return None
    from irc.targets.cpu import check_threads

    return compile_cache.make_key({
        "target": "cpu-model", "source": source, "options": opts, "threads": check_threads(options.get("threads")),
        "cpu": spec.name, "features": spec.features, "front": compile_cache.sources_digest(_FRONT_SOURCES),
        "env": {k: os.environ.get(k) for k in _ENV}})


def load(source: dict[str, Any], options: dict[str, Any]) -> tuple[CpuExecutable, dict] | None:
    """The executable stored for ``source`` and what ``store`` was given as ``extra``; None on a
    miss (or an entry that does not match the graph it describes: it is then rebuilt)."""
    spec = llvm_env.cpu_spec(options.get("cpu", "host"))
    key = key_for(source, options, spec)
    if key is None:
        return None
    entry = compile_cache.CompileCache().get(key, mapped=True)
    if entry is None:
        return None
    try:
        return _executable(entry, options, spec), entry.meta["extra"]
    except (KeyError, TypeError, ValueError, IRCError):
        return None  # an entry this code cannot load (another layout of it): compiled again and replaced


def _executable(entry: compile_cache.Entry, options: dict[str, Any], spec: llvm_env.CpuSpec) -> CpuExecutable:
    from irc.targets.cpu import check_threads, symbol_prefix

    m = entry.meta
    nbytes = m["weights_bytes"]
    blob = np.frombuffer(entry.obj, np.uint8, nbytes) if nbytes else aligned_bytes(1)
    blob.flags.writeable = False
    params = {}
    for name, dtype, shape, offset in m["params"]:
        dt = DType(dtype).numpy
        view = np.frombuffer(blob, dt, int(np.prod(shape, dtype=np.int64)), offset).reshape(shape)
        view.flags.writeable = False
        params[name] = view
    graph = parse_graph(m["graph"], params)
    threads = check_threads(options.get("threads"))
    cpu = options.get("cpu", "host")
    plan = jit_build.plan_for(graph, threads, spec.vector_bits)
    if (plan.weights_bytes, plan.arena_bytes) != (nbytes, m["arena_bytes"]) or any(
            plan.where(v).offset != off for v, (_, _, _, off) in zip(graph.params, m["params"])):
        raise ValueError("the memory plan differs from the stored one")
    start = _padded(nbytes)
    objects = []
    for size in m["objects"]:
        objects.append(bytes(entry.obj[start:start + size]))
        start += size
    tm = llvm_env.target_machine(spec, jit=True)
    prefix = symbol_prefix(graph.name)
    thread_pool.jit_pool_address(True)

    def source(g):
        return jit_build.generate_module(g, prefix, threads, spec, tm)[1]

    exe = CpuExecutable(graph, plan, objects, m["entry"], m["threads_symbol"], threads, source=source, tm=tm,
                        cpu=cpu, cached=True, weights=blob)
    exe.spec = spec
    return exe


def store(source: dict[str, Any], options: dict[str, Any], exe: CpuExecutable, extra: dict) -> bool:
    """Keep ``exe`` (its lowered graph, laid-out weights and object code) for ``source``;
    ``extra`` (plain data) comes back with it. False when it is not stored."""
    key = key_for(source, options, exe.spec)
    g = exe.graph
    if key is None or not exact(extra) or len(all_params(g)) != len(g.params):
        return False
    try:
        text = print_graph(g)
    except TypeError:
        return False
    plan = exe.plan
    nbytes = plan.weights_bytes
    params = [[v.name, v.dtype.value, list(v.shape), plan.where(v).offset] for v in g.params]
    weights = exe._weights[:nbytes]
    pad = bytes(_padded(nbytes) - nbytes)  # the objects after the weights, aligned as well
    meta = {"graph": text, "params": params, "weights_bytes": nbytes, "arena_bytes": plan.arena_bytes,
            "objects": [len(o) for o in exe.objects], "entry": exe.entry_symbol,
            "threads_symbol": exe.threads_symbol, "extra": extra}
    return compile_cache.CompileCache().put_parts(key, meta, [pad, *exe.objects], bulk=weights)


def _padded(nbytes: int) -> int:
    align = compile_cache.PAYLOAD_ALIGN
    return -(-nbytes // align) * align
