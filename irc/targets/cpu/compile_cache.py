"""A persistent compile cache: object code of compiled graphs kept on disk between processes.

Compiling a network spends seconds in LLVM (optimisation and code generation); the same
network compiled again (a new process, a retrained model, the next run of a script) finds its
object code here and skips LLVM entirely. An entry is keyed by everything that changes the
code: the lowered graph's text (structure, static shapes, attributes; weights are data passed
to the entry function, so new weight values hit the same entry), the target and its options,
the CPU name and features, and the versions of irc (with a digest of the code generator's
sources, so an edited kernel never loads stale code), llvmlite and LLVM.

The folder is ``$IRC_CACHE_DIR``, else ``$XDG_CACHE_HOME/irc``, else ``~/.cache/irc``; its size
is bounded by ``$IRC_CACHE_MAX_BYTES`` (default 1 GiB), least recently used entries going first;
a small ledger file keeps the folder's running total, so storing an entry costs a scan of the
folder only when the bound is passed (or the ledger is an hour old), not on every compile.
Entries are written to a temporary file and renamed, never in place (a process may have one
mapped: model_cache.py), so concurrent processes see a whole entry or none; each carries a
SHA-256 of its contents (a bulk part, the weights of a whole model that model_cache.py maps in
place, is covered by a checksum computed at memory speed, itself under the SHA-256), and one
that does not match (truncated, corrupted) is deleted and rebuilt, never loaded. A cache that
cannot be written (read-only folder, full disk) only costs speed: compiling never fails
because of it.
"""

from __future__ import annotations

import functools
import hashlib
import json
import mmap
import os
import struct
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from irc.errors import InputError

DIR_ENV = "IRC_CACHE_DIR"
MAX_BYTES_ENV = "IRC_CACHE_MAX_BYTES"
DEFAULT_MAX_BYTES = 1 << 30
#: bumped whenever the entry layout or the meaning of a key changes
FORMAT = 1
_MAGIC = b"IRCOBJ1\n"
_HEAD = struct.Struct("<8sQ32s")  # magic, payload bytes, sha256(payload)
_SUFFIX = ".ircobj"
#: where an entry's object code starts in its file (a multiple of this): weights stored there are
#: used in place, at the alignment the generated code assumes
PAYLOAD_ALIGN = 64
#: the meta field that records the bulk part's size and fast_checksum
_BULK = "bulk"
#: a temporary file older than this belongs to a process that died while writing
_STALE_TMP_S = 3600.0
#: the running total of the folder's bytes, so a put need not stat every entry (see _Ledger)
_LEDGER = ".usage"
#: a ledger older than this is recounted (writers racing on it may have lost updates)
_LEDGER_MAX_AGE_S = 3600.0
#: the sources that decide what code a lowered graph becomes (relative to the irc package)
_CODEGEN_SOURCES = ("targets/cpu", "targets/llvm", "ir", "passes/memory_plan.py")


def cache_dir() -> Path:
    """The cache folder (see the module docstring for the order it is chosen in)."""
    given = os.environ.get(DIR_ENV)
    if given:
        return Path(given).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "irc"


def max_bytes() -> int:
    """The size bound from ``$IRC_CACHE_MAX_BYTES`` (an integer, optionally with K/M/G)."""
    text = os.environ.get(MAX_BYTES_ENV, "").strip()
    if not text:
        return DEFAULT_MAX_BYTES
    scale = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(text[-1].upper(), 1)
    digits = text[:-1] if scale > 1 else text
    if not digits.isdigit():
        raise InputError(f"{MAX_BYTES_ENV}={text!r} is not a size; give bytes, e.g. 1073741824 or 1G")
    return int(digits) * scale


@functools.cache
def toolchain() -> dict[str, str]:
    """Versions of everything that turns a lowered graph into code, with a digest of irc's code
    generator sources (a changed kernel must not hit code built by the old one)."""
    import llvmlite
    import llvmlite.binding as llvm

    import irc

    return {"irc": irc.__version__, "irc_sources": sources_digest(_CODEGEN_SOURCES), "llvmlite": llvmlite.__version__,
            "llvm": ".".join(map(str, llvm.llvm_version_info))}


@functools.cache
def sources_digest(rels: tuple[str, ...]) -> str:
    """A digest of irc's Python sources under ``rels`` (files or folders, relative to the package)."""
    import irc

    root = os.path.dirname(irc.__file__)
    h = hashlib.sha256()
    for rel in rels:
        top = os.path.join(root, rel)
        files = [top] if not os.path.isdir(top) else sorted(
            os.path.join(d, f) for d, _, names in os.walk(top) for f in names if f.endswith(".py"))
        for f in files:  # os.walk, not pathlib: this runs in every warm compile's process
            with open(f, "rb") as src:
                h.update(f[len(root) + 1:].encode() + b"\0" + src.read())
    return h.hexdigest()[:32]


def make_key(parts: dict[str, Any]) -> str:
    """The hex key of an entry: a SHA-256 over ``parts`` (JSON-able), the toolchain and FORMAT."""
    text = json.dumps({"format": FORMAT, "toolchain": toolchain(), **parts}, sort_keys=True, default=repr)
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class Entry:
    """What a compile leaves behind: facts the loader checks (``meta``) and the object code."""

    meta: dict[str, Any]
    obj: bytes


@dataclass(frozen=True)
class CacheInfo:
    """What ``irc cache info`` shows: the folder, its entries and their bytes, the bound."""

    path: Path
    entries: int
    bytes: int
    max_bytes: int


def _encode(key: str, entry: Entry) -> bytes:
    head, parts = _encoded_parts(key, entry.meta, [entry.obj])
    return b"".join([head, *parts])


def _encoded_parts(key: str, meta: dict[str, Any], objs: list, bulk=None) -> tuple[bytes, list]:
    """The header and the payload's pieces (not joined: a large entry is written without a
    second copy of it in memory). The meta text is padded with spaces so that the object code
    starts on a ``PAYLOAD_ALIGN`` boundary of the file, where a mapped entry can be read in place.
    ``bulk`` (a buffer, e.g. weights) goes first in the object code and is covered by
    ``fast_checksum`` (recorded in the meta) rather than the SHA-256, which covers the rest."""
    if bulk is not None:
        meta = {**meta, _BULK: [memoryview(bulk).nbytes, fast_checksum(bulk)]}
    text = json.dumps({"key": key, **meta}, sort_keys=True).encode()
    text += b" " * (-(_HEAD.size + 4 + len(text)) % PAYLOAD_ALIGN)
    hashed = [struct.pack("<I", len(text)), text, *objs]
    h = hashlib.sha256()
    for p in hashed:
        h.update(p)
    parts = hashed[:2] + ([bulk] if bulk is not None else []) + hashed[2:]
    size = sum(memoryview(p).nbytes for p in parts)
    return _HEAD.pack(_MAGIC, size, h.digest()), parts


def fast_checksum(buf) -> str:
    """A 128-bit checksum of ``buf`` at memory speed (several times SHA-256's, for the weights a
    hit reads): the sum of its 64-bit words and the sum of each word times an odd weight that
    grows with its position, both mod 2**64, so a changed, lost or moved word shows. Not a
    defence against a crafted change, as nothing in a cache the user can write is."""
    data = memoryview(buf).cast("B")
    n = len(data) // 8
    words = np.frombuffer(data, "<u8", n)
    step = 1 << 16  # words per piece: a piece and its product stay in cache
    index = np.arange(step, dtype=np.uint64)
    product = np.empty(step, np.uint64)
    s1 = s2 = 0
    for start in range(0, n, step):
        chunk = words[start:start + step]
        k = len(chunk)
        total = int(np.add.reduce(chunk))
        np.multiply(chunk, index[:k], out=product[:k])
        # sum of chunk[j] * (2 * (start + j) + 1), from the piece's sum and its index-weighted sum
        s1 += total
        s2 += 2 * (start * total + int(np.add.reduce(product[:k]))) + total
    tail = int.from_bytes(bytes(data[8 * n:]).ljust(8, b"\0"), "little")
    s1, s2 = (s1 + tail) % (1 << 64), (s2 + tail * (2 * n + 1)) % (1 << 64)
    return f"{s1:016x}{s2:016x}{len(data):x}"


def _decode(key: str, data) -> Entry | None:
    """The entry in ``data`` (bytes, or a mapped file), or None when it is not a whole,
    uncorrupted entry for ``key``. ``obj`` is a slice of ``data`` (a view when ``data`` is mapped)."""
    if len(data) < _HEAD.size + 4:
        return None
    magic, size, digest = _HEAD.unpack_from(data)
    payload = memoryview(data)[_HEAD.size:]
    if magic != _MAGIC or size != len(payload):
        return None
    (n,) = struct.unpack_from("<I", payload)
    try:
        meta = json.loads(bytes(payload[4:4 + n]))  # trusted only once the digest below matches
    except ValueError:
        return None
    if not isinstance(meta, dict):
        return None
    bulk = meta.get(_BULK)
    if bulk is None:
        ok = hashlib.sha256(payload).digest() == digest
    else:
        if not (isinstance(bulk, list) and len(bulk) == 2 and isinstance(bulk[0], int) and 0 <= bulk[0] <= size - 4 - n):
            return None
        h = hashlib.sha256(payload[:4 + n])
        h.update(payload[4 + n + bulk[0]:])
        ok = h.digest() == digest and fast_checksum(payload[4 + n:4 + n + bulk[0]]) == bulk[1]
    if not ok or meta.pop("key", None) != key:
        return None
    meta.pop(_BULK, None)
    obj = payload[4 + n:]
    return Entry(meta, obj if isinstance(data, mmap.mmap) else bytes(obj))


class CompileCache:
    """Entries of one folder: ``get``, ``put``, ``info``, ``clear``."""

    def __init__(self, root: Path | None = None, limit: int | None = None):
        self.root = Path(root) if root is not None else cache_dir()
        self.limit = limit if limit is not None else max_bytes()

    def _path(self, key: str) -> Path:
        return self.root / f"{key}{_SUFFIX}"

    def get(self, key: str, *, mapped: bool = False) -> Entry | None:
        """The entry for ``key``; None on a miss. A damaged entry is deleted (the caller
        rebuilds it) and a hit marks the entry as recently used. ``mapped``: the file is mapped
        (copy on write) rather than read, and ``obj`` is a view of it, ``PAYLOAD_ALIGN``-aligned;
        pages are shared with the page cache and other processes mapping the same entry."""
        path = self._path(key)
        try:
            if mapped:
                with open(path, "rb") as f:
                    data = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_COPY)
            else:
                data = path.read_bytes()
        except ValueError:  # an empty file cannot be mapped: a damaged entry
            path.unlink(missing_ok=True)
            return None
        except OSError:
            return None
        entry = _decode(key, data)
        if entry is None:
            path.unlink(missing_ok=True)
            return None
        try:
            os.utime(path)  # the LRU clock: modification time is the last use
        except OSError:
            pass
        return entry

    def put(self, key: str, entry: Entry) -> bool:
        """Store ``entry`` (atomically) and evict old entries past the size bound; False when it
        was not stored (larger than the bound, or the folder cannot be written)."""
        return self.put_parts(key, entry.meta, [entry.obj])

    def put_parts(self, key: str, meta: dict[str, Any], objs: list, bulk=None) -> bool:
        """``put`` of an entry whose object code is ``bulk`` (if given: see _encoded_parts)
        followed by ``objs`` (buffers), streamed to the file rather than joined in memory first."""
        head, parts = _encoded_parts(key, meta, objs, bulk)
        nbytes = len(head) + sum(memoryview(p).nbytes for p in parts)
        if nbytes > self.limit:
            return False
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{key[:16]}.", suffix=".tmp", dir=self.root)
            try:
                with os.fdopen(fd, "wb") as f:
                    for p in (head, *parts):
                        f.write(p)
                os.replace(tmp, self._path(key))
            finally:
                Path(tmp).unlink(missing_ok=True)
        except OSError:
            return False
        if self._ledger_add(nbytes) > self.limit:
            self.evict(keep=key)
        return True

    def _ledger_add(self, nbytes: int) -> int:
        """The folder's bytes after adding ``nbytes``, from the ledger (a put stats one file, not
        thousands). A missing, unreadable or old ledger means a count; the count is exact, the
        ledger only an upper bound between counts when another process overwrites an entry."""
        path = self.root / _LEDGER
        try:
            st = path.stat()
            fresh = time.time() - st.st_mtime < _LEDGER_MAX_AGE_S
            total = int(path.read_text()) + nbytes if fresh else None
        except (OSError, ValueError):
            total = None
        if total is None:
            total = sum(e[1] for e in self._entries())
        self._ledger_write(total)
        return total

    def _ledger_write(self, total: int) -> None:
        try:
            fd, tmp = tempfile.mkstemp(prefix=".usage.", suffix=".tmp", dir=self.root)
            with os.fdopen(fd, "w") as f:
                f.write(str(total))
            os.replace(tmp, self.root / _LEDGER)
        except OSError:
            pass

    def _entries(self) -> list[tuple[float, int, Path]]:
        """(last use, bytes, path) of every entry; stale temporary files are removed on the way."""
        out = []
        try:
            names = list(os.scandir(self.root))
        except OSError:
            return out
        now = time.time()
        for d in names:
            try:
                st = d.stat()
            except OSError:
                continue  # removed by another process meanwhile
            if d.name.endswith(_SUFFIX):
                out.append((st.st_mtime, st.st_size, Path(d.path)))
            elif d.name.endswith(".tmp") and now - st.st_mtime > _STALE_TMP_S:
                Path(d.path).unlink(missing_ok=True)
        return out

    def evict(self, keep: str | None = None) -> int:
        """Delete least recently used entries until the folder fits the bound (``keep`` last of
        all); returns how many were deleted."""
        kept = f"{keep}{_SUFFIX}"
        entries = sorted(self._entries(), key=lambda e: (e[2].name == kept, e[0]))
        total = sum(e[1] for e in entries)
        removed = 0
        for _, size, path in entries:
            if total <= self.limit:
                break
            path.unlink(missing_ok=True)
            total -= size
            removed += 1
        self._ledger_write(total)
        return removed

    def info(self) -> CacheInfo:
        entries = self._entries()
        return CacheInfo(self.root, len(entries), sum(e[1] for e in entries), self.limit)

    def clear(self) -> int:
        """Delete every entry; returns how many there were."""
        entries = self._entries()
        for _, _, path in entries:
            path.unlink(missing_ok=True)
        (self.root / _LEDGER).unlink(missing_ok=True)
        return len(entries)


def cached_object(parts: dict[str, Any], build: Callable[[], bytes]) -> bytes:
    """Object code keyed by ``parts`` from the cache, else ``build()`` (and stored)."""
    store = CompileCache()
    key = make_key(parts)
    entry = store.get(key)
    if entry is not None:
        return entry.obj
    obj = build()
    store.put(key, Entry({}, obj))
    return obj


def check_cache_option(value) -> bool:
    """The ``cache`` target option: True (read and write the cache) or False (bypass it)."""
    if not isinstance(value, bool):
        raise InputError(f"cache must be true or false, got {value!r}")
    return value
