"""g++ as the HLS C simulator: where the compiler and the ap_types headers are, and cached
compilation of kernels into objects, testbench executables and shared libraries.

The ap_types headers (ap_fixed.h, ap_int.h) come from, in order: the ``ap_include`` option, a
Vitis HLS installation (``$XILINX_HLS/include``), or the copy inside an installed ``hls4ml``
package (``pip install --no-deps hls4ml``). float32 kernels need none of them.

Compiled files are cached under ``~/.cache/irc/hls`` by a hash of the sources, the flags and the
compiler, so the same kernel is compiled once however often it is simulated.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from pathlib import Path

from irc.errors import TargetError

#: flags of every C simulation build: the generated code compiles warning-free under -Wall
#: -Werror; HLS pragmas are unknown to g++, and the ap_types headers' own code trips g++'s
#: uninitialized-value analysis, so those two warnings are off.
BASE_FLAGS = ("-std=c++17", "-O1", "-Wall", "-Werror", "-Wno-unknown-pragmas")
AP_FLAGS = ("-Wno-uninitialized", "-Wno-maybe-uninitialized")


def gxx() -> str | None:
    return shutil.which("g++")


def require_gxx() -> str:
    cc = gxx()
    if cc is None:
        raise TargetError("C simulation and emulation of the HLS kernels need g++ on the PATH (not found)")
    return cc


def find_ap_include(explicit: str | os.PathLike | None = None) -> Path | None:
    """The folder holding ap_fixed.h, or None."""
    candidates = []
    if explicit:
        candidates.append(Path(explicit))
    if os.environ.get("XILINX_HLS"):
        candidates.append(Path(os.environ["XILINX_HLS"]) / "include")
    spec = importlib.util.find_spec("hls4ml")
    if spec is not None and spec.submodule_search_locations:
        for loc in spec.submodule_search_locations:
            candidates.append(Path(loc) / "templates" / "vivado" / "ap_types")
    for c in candidates:
        if (c / "ap_fixed.h").is_file():
            return c
    return None


def require_ap_include(explicit=None) -> Path:
    inc = find_ap_include(explicit)
    if inc is None:
        raise TargetError("fixed-point kernels need the ap_types headers (ap_fixed.h): set the ap_include "
                          "option, install Vitis HLS ($XILINX_HLS), or pip install --no-deps hls4ml")
    return inc


def flags_for(ap_include: Path | None) -> list[str]:
    flags = list(BASE_FLAGS)
    if ap_include is not None:
        flags += [*AP_FLAGS, "-isystem", str(ap_include)]
    return flags


def cache_root() -> Path:
    root = Path.home() / ".cache" / "irc" / "hls"
    try:
        root.mkdir(parents=True, exist_ok=True)
        return root
    except OSError:
        root = Path(tempfile.gettempdir()) / f"irc-hls-{os.getuid()}"
        root.mkdir(parents=True, exist_ok=True)
        return root


@lru_cache(maxsize=1)
def _compiler_id() -> str:
    try:
        return subprocess.run([require_gxx(), "--version"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return "g++"


def _key(*parts: str) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(p.encode())
        h.update(b"\0")
    return h.hexdigest()[:24]


class Unit:
    """One translation unit: its file name, its text, and the headers it may include."""

    def __init__(self, name: str, text: str, headers: dict[str, str], what: str):
        self.name = name
        self.text = text
        self.headers = headers
        self.what = what


def _run(cmd: list[str], cwd: Path, what: str) -> None:
    r = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    if r.returncode != 0:
        lines = [ln for ln in (r.stderr or r.stdout).splitlines() if ln.strip()]
        errors = [ln for ln in lines if "error" in ln] or lines
        raise TargetError(f"g++ failed on {what}: {' | '.join(errors[:4])}")


def compile_object(unit: Unit, flags: list[str]) -> Path:
    """``unit`` compiled to an object file (cached)."""
    headers = sorted(unit.headers.items())
    key = _key(unit.text, *[h for kv in headers for h in kv], *flags, _compiler_id())
    obj = cache_root() / "obj" / f"{key}.o"
    if obj.is_file():
        return obj
    obj.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache_root()) as tmp:
        src = Path(tmp)
        for name, text in headers:
            (src / name).write_text(text)
        (src / unit.name).write_text(unit.text)
        out = src / "out.o"
        _run([require_gxx(), *flags, "-fPIC", "-c", unit.name, "-o", str(out)], src, unit.what)
        os.replace(out, obj)
    return obj


def compile_objects(units: list[Unit], flags: list[str]) -> list[Path]:
    """Every unit compiled, in parallel over the cores."""
    workers = max(1, min(len(units), os.cpu_count() or 1))
    if workers == 1:
        return [compile_object(u, flags) for u in units]
    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(lambda u: compile_object(u, flags), units))


def link(objects: list[Path], *, shared: bool, what: str) -> Path:
    """Objects linked into a shared library or an executable (cached)."""
    key = _key(*(o.name for o in objects), str(shared), _compiler_id())
    out = cache_root() / ("lib" if shared else "bin") / (f"{key}.so" if shared else key)
    if out.is_file():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    cmd = [require_gxx(), *(["-shared"] if shared else []), *map(str, objects), "-o", str(tmp)]
    try:
        _run(cmd, out.parent, what)
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return out
