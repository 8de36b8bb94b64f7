"""Finding the MPI world: only when the process was started by an MPI launcher.

Importing irc never imports mpi4py (importing ``mpi4py.MPI`` initializes MPI). ``fit`` asks
:func:`resolve` which communicator to use: the one it was given, or, when the environment shows
that ``mpirun``/``mpiexec`` (or ``srun`` with PMI) started more than one process, MPI's world.
"""

from __future__ import annotations

import os

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
