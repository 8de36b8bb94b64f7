"""Finding the MPI world: only when the process was started by an MPI launcher.

Importing irc never imports mpi4py (importing ``mpi4py.MPI`` initializes MPI). ``fit`` asks
:func:`resolve` which communicator to use: the one it was given, or, when the environment shows
that ``mpirun``/``mpiexec`` (or ``srun`` with PMI) started more than one process, MPI's world.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from irc.errors import InputError

# Variables MPI launchers set in every process they start: Open MPI, MPICH/Intel MPI (PMI),
# PMIx-based launchers.
_SIZE_VARS = ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE")


def launched_size(environ=None) -> int:
    """How many processes the MPI launcher started (1 when not started by one)."""
    env = os.environ if environ is None else environ
    for var in _SIZE_VARS:
        value = env.get(var)
        if value and value.isdigit():
            return int(value)
    return 1


def world(timeout: float = 300.0):
    """A Communicator over ``MPI.COMM_WORLD`` (needs mpi4py: ``pip install 'irc[dist]'``)."""
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        raise InputError("distributed training needs mpi4py and an MPI library: pip install 'irc[dist]' "
                         "(with Open MPI or MPICH installed)") from None
    from irc.dist.comm import Communicator

    return Communicator(None, timeout=timeout)


def resolve(comm, timeout: float = 300.0):
    """The Communicator fit should use, or None for single-process training.

    ``comm``: None (MPI's world when launched by mpirun with more than one process, else None),
    False (never distributed), a :class:`irc.dist.Communicator`, or an mpi4py communicator."""
    from irc.dist.comm import Communicator

    if comm is False:
        return None
    if comm is None:
        n = launched_size()
        return world(timeout) if n > 1 else None
    if isinstance(comm, Communicator):
        return comm
    if hasattr(comm, "Get_rank") and hasattr(comm, "Iallreduce"):
        return Communicator(comm, timeout=timeout)
    raise InputError(f"comm must be None, False, an irc.dist.Communicator or an mpi4py communicator; "
                     f"got {type(comm).__name__}")


def find_mpirun() -> str | None:
    """The MPI launcher: the one installed beside this Python (the mpich wheel's), else on PATH."""
    local = [p for p in (Path(sys.executable).parent / n for n in ("mpirun", "mpiexec")) if p.is_file()]
    return str(local[0]) if local else shutil.which("mpirun") or shutil.which("mpiexec")


def mpirun_command(ranks: int, exe: str) -> list[str]:
    """``exe -np ranks`` with what Open MPI needs to run more ranks than cores, and as root."""
    version = subprocess.run([exe, "--version"], capture_output=True, text=True).stdout
    cmd = [exe, "-np", str(ranks)]
    if "Open MPI" in version or "OpenRTE" in version:
        cmd += ["--oversubscribe", "--bind-to", "none"]
        if os.geteuid() == 0:
            cmd.append("--allow-run-as-root")
    return cmd
