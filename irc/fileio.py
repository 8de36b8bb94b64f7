"""Atomic output: nothing irc writes is ever left half-written, or left behind.

Files are written to a temporary name in the destination folder and renamed into place;
directories (FPGA projects) are built in a temporary sibling folder and swapped in at the end.
What appears gets the permissions any tool's output gets (0666, or 0777 for a shared library or
a folder, less the umask), not the private 0600/0700 of a temporary file.

Temporary names carry the writer's process id (``.NAME.<pid>.XXXX.tmp`` beside the target,
``irc-aot-<pid>-XXXX`` build folders in the temporary directory). A failure removes them; a kill
cannot, so later writers remove the ones whose process is gone or that are over an hour old.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

#: a temporary file or folder older than this is stale even if its pid is alive (reused pid)
STALE_AFTER_S = 3600.0

#: the writer's pid in a temporary name: NAME.<pid>.XXXX.tmp, NAME.<pid>.old, irc-aot-<pid>-XXXX
_PID = re.compile(r"[.-](\d+)(?:[.-][A-Za-z0-9_]+)?(?:\.tmp|\.old)?\Z")


def umask() -> int:
    """The process's umask (read without changing it where Linux allows)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:  # pragma: no cover - not Linux
        pass
    mask = os.umask(0o022)  # pragma: no cover
    os.umask(mask)  # pragma: no cover
    return mask  # pragma: no cover


def _publish_mode(path: Path, executable: bool) -> None:
    os.chmod(path, (0o777 if executable else 0o666) & ~umask())


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def is_stale(path: Path, now: float | None = None) -> bool:
    """A temporary file or folder left by a process that is gone, or over STALE_AFTER_S old."""
    try:
        age = (time.time() if now is None else now) - path.lstat().st_mtime
    except OSError:
        return False
    m = _PID.search(path.name)
    return age > STALE_AFTER_S or (m is not None and not _pid_alive(int(m.group(1))))


def remove_stale(folder: Path, pattern: str) -> None:
    """Remove the stale temporaries matching ``pattern`` in ``folder`` (best effort)."""
    try:
        found = list(folder.glob(pattern))
    except OSError:
        return
    for p in found:
        if is_stale(p):
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p, ignore_errors=True)
            else:
                with contextlib.suppress(OSError):
                    p.unlink()


def atomic_write(path: str | os.PathLike, data: bytes | str) -> Path:
    """Write ``data`` to ``path`` so that readers see the old file or the whole new one."""
    with atomic_path(path) as tmp:
        mode = "wb" if isinstance(data, (bytes, bytearray, memoryview)) else "w"
        with open(tmp, mode) as f:
            f.write(data)
    return Path(path)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, *, executable: bool = False) -> Iterator[Path]:
    """A temporary path next to ``path``; renamed onto ``path`` if the block succeeds (with mode
    0666, or 0777 when ``executable``, less the umask), deleted if it raises."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale(path.parent, f".{glob_escape(path.name)}.*.tmp")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        _publish_mode(tmp, executable)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """A temporary directory that replaces ``path`` (and whatever was there) on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    name = glob_escape(path.name)
    remove_stale(path.parent, f".{name}.*.tmp")
    remove_stale(path.parent, f".{name}.*.old")
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp", dir=path.parent))
    try:
        yield tmp
        _publish_mode(tmp, executable=True)
        if path.exists():
            old = path.with_name(f".{path.name}.{os.getpid()}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@contextlib.contextmanager
def scratch_dir(prefix: str) -> Iterator[Path]:
    """A private working folder ``<prefix>-<pid>-XXXX`` in the temporary directory, removed when
    the block ends however it ends; stale ones of earlier, killed runs are removed first."""
    root = Path(tempfile.gettempdir())
    remove_stale(root, f"{glob_escape(prefix)}-*")
    tmp = Path(tempfile.mkdtemp(prefix=f"{prefix}-{os.getpid()}-", dir=root))
    try:
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def glob_escape(name: str) -> str:
    """``name`` with glob metacharacters matched literally."""
    return re.sub(r"([*?\[])", r"[\1]", name)
