"""Atomic output (irc.fileio): what appears gets the umask's permissions, a failure leaves nothing,
and temporaries of a killed writer are removed by the next one."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from irc import fileio


@pytest.fixture
def umask():
    """Sets the process umask for one test, then restores it."""
    old = os.umask(0o022)

    def set_to(mask: int) -> None:
        os.umask(mask)

    yield set_to
    os.umask(old)


def _mode(p: Path) -> int:
    return stat.S_IMODE(p.stat().st_mode)


def _dead_pid() -> int:
    """The pid of a process that has ended (reaped, so no process has it for now)."""
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


@pytest.mark.parametrize("mask", [0o022, 0o027, 0o077])
def test_files_and_folders_get_the_umask_modes(tmp_path, umask, mask):
    umask(mask)
    f = fileio.atomic_write(tmp_path / "a.h", "x")
    assert _mode(f) == 0o666 & ~mask
    with fileio.atomic_path(tmp_path / "m.so", executable=True) as tmp:
        tmp.write_bytes(b"\x7fELF")
    assert _mode(tmp_path / "m.so") == 0o777 & ~mask
    with fileio.atomic_dir(tmp_path / "proj") as d:
        (d / "k.cpp").write_text("int k;")
    assert _mode(tmp_path / "proj") == 0o777 & ~mask
    assert fileio.umask() == mask


def test_a_failed_write_leaves_nothing(tmp_path):
    (tmp_path / "out.npz").write_text("old")
    with pytest.raises(RuntimeError), fileio.atomic_path(tmp_path / "out.npz") as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed")
    with pytest.raises(RuntimeError), fileio.atomic_dir(tmp_path / "proj") as d:
        (d / "a").write_text("half")
        raise RuntimeError("killed")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.npz"]
    assert (tmp_path / "out.npz").read_text() == "old"


def test_temporaries_of_a_gone_writer_are_removed_and_a_live_ones_kept(tmp_path):
    dead = _dead_pid()
    stale_file = tmp_path / f".model.onnx.{dead}.abcd1234.tmp"
    stale_dir = tmp_path / f".proj.{dead}.ab_cd123.tmp"
    stale_old = tmp_path / f".proj.{dead}.old"
    live = tmp_path / f".model.onnx.{os.getppid()}.zzzz9999.tmp"
    aged = tmp_path / f".model.onnx.{os.getppid()}.yyyy8888.tmp"
    other = tmp_path / f".other.onnx.{dead}.abcd1234.tmp"
    for p in (stale_file, live, aged, other):
        p.write_text("x")
    for d in (stale_dir, stale_old):
        d.mkdir()
        (d / "f").write_text("x")
    hours_ago = time.time() - fileio.STALE_AFTER_S - 60
    os.utime(aged, (hours_ago, hours_ago))
    fileio.atomic_write(tmp_path / "model.onnx", b"new")
    assert not stale_file.exists() and not aged.exists()
    assert live.exists() and other.exists()  # a running writer's, and another target's
    with fileio.atomic_dir(tmp_path / "proj"):
        pass
    assert not stale_dir.exists() and not stale_old.exists()


def test_scratch_dir_is_removed_and_clears_killed_runs(monkeypatch, tmp_path):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    killed = tmp_path / f"irc-aot-{_dead_pid()}-k1ll3d00"
    killed.mkdir()
    (killed / "model.o").write_bytes(b"\0" * 1024)
    mine = tmp_path / "irc-aotx-1-keepme00"  # another prefix: not ours to remove
    mine.mkdir()
    with fileio.scratch_dir("irc-aot") as d:
        assert d.parent == tmp_path and d.name.startswith(f"irc-aot-{os.getpid()}-")
        assert not killed.exists()
    assert not d.exists() and mine.exists()
    with pytest.raises(KeyboardInterrupt), fileio.scratch_dir("irc-aot") as d:
        raise KeyboardInterrupt
    assert not d.exists()


def test_names_with_glob_characters_are_matched_literally(tmp_path):
    dead = _dead_pid()
    neighbour = tmp_path / f".a.onnx.{dead}.abcd1234.tmp"  # what the unescaped glob .[ab].onnx.* matches
    neighbour.write_text("x")
    fileio.atomic_write(tmp_path / "[ab].onnx", "x")
    assert neighbour.exists() and (tmp_path / "[ab].onnx").read_text() == "x"
