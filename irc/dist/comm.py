"""The communicator: MPI (through mpi4py) with bounded waits and failures that name a rank.

Every collective irc issues is non-blocking (``Iallreduce``, ``Ibcast``, ``Iallgather``) and
waited for with a deadline, so a job never hangs forever on a peer that died or is stuck:

- while it waits, a rank answers "are you there?" pings from its peers on a private duplicate of
  the communicator;
- when the deadline passes it pings every peer, waits a short grace period for the answers, and
  raises :class:`DistributedError` naming the ranks that did not answer (dead, or stuck outside
  any collective);
- the trainer then reports the error on stderr and calls ``Abort`` (see :meth:`Communicator.fail`),
  which ends every rank of the job.

A rank killed outright is also caught by the launcher: ``mpirun`` (Open MPI and MPICH alike) ends
the job and names the rank when one of its processes dies.

The communicator counts the bytes it all-reduces and the seconds spent waiting in
communication, which the trainer reports per epoch.
"""

from __future__ import annotations

import os
import socket
import sys
import time

import numpy as np

from irc.errors import TargetError

_PING, _PONG = 71, 72


class DistributedError(TargetError):
    """Distributed training cannot go on: a peer failed, hangs, or disagrees with the others.
    ``collective`` is True when every rank raises the same error (no abort needed)."""

    def __init__(self, message: str, *, collective: bool = False):
        super().__init__(message)
        self.collective = collective


class Communicator:
    """An mpi4py communicator (``MPI.COMM_WORLD`` by default) with timeout-aware collectives.

    ``timeout`` (seconds) bounds every wait for the peers, including the time a faster rank waits
    for a slower one at a synchronization, so it must exceed the largest imbalance expected
    between ranks. Setting up (and the trainer's first check, which waits for every rank's
    compilation) waits at least 600 s, as ranks start unevenly."""

    def __init__(self, comm=None, timeout: float = 300.0):
        from mpi4py import MPI

        self.MPI = MPI
        self.comm = MPI.COMM_WORLD if comm is None else comm
        self.rank = self.comm.Get_rank()
        self.size = self.comm.Get_size()
        self.timeout = float(timeout)
        self.grace = min(5.0, max(0.5, self.timeout / 4))
        self._ctl = None
        self._sends: list = []
        ctl, req = self.comm.Idup()  # pings travel apart from the training's collectives
        self._wait([req], "setting up the communicator", max(self.timeout, 600.0))
        self._ctl = ctl
        # Who is who: a launcher that reports a dead process by its PID can be read back to a rank.
        me = np.zeros(72, np.uint8)
        me[:8] = np.frombuffer(np.int64(os.getpid()).tobytes(), np.uint8)
        host = socket.gethostname().encode()[:64]
        me[8:8 + len(host)] = np.frombuffer(host, np.uint8)
        table = self.allgather(me, "setting up the communicator", max(self.timeout, 600.0))
        self.pids = [int(np.frombuffer(row[:8].tobytes(), np.int64)[0]) for row in table]
        self.hosts = [row[8:].tobytes().rstrip(b"\0").decode(errors="replace") for row in table]
        self.bytes = 0  # payload bytes all-reduced by this rank
        self.seconds = 0.0  # time spent in collectives (posting to completion)

    # -- collectives --------------------------------------------------------------------
    def allreduce_sum(self, buffers, what: str) -> None:
        """Sum each float32 buffer over the ranks, in place (all posted at once, then waited)."""
        t0 = time.perf_counter()
        reqs = [self.comm.Iallreduce(self.MPI.IN_PLACE, b, op=self.MPI.SUM) for b in buffers]
        self._wait(reqs, what)
        self.seconds += time.perf_counter() - t0
        self.bytes += sum(b.nbytes for b in buffers)

    def allreduce_small(self, values, what: str) -> np.ndarray:
        """The sum over ranks of a few float64 numbers (not counted as training traffic)."""
        out = np.array(values, np.float64)
        self._wait([self.comm.Iallreduce(self.MPI.IN_PLACE, out, op=self.MPI.SUM)], what)
        return out

    def bcast(self, buffers, what: str, root: int = 0) -> None:
        """Root's contents into every rank's buffers, in place."""
        reqs = [self.comm.Ibcast(b, root=root) for b in buffers]
        self._wait(reqs, what)

    def allgather(self, row: np.ndarray, what: str, timeout: float | None = None) -> np.ndarray:
        """Every rank's ``row`` (same shape and dtype everywhere), stacked by rank."""
        row = np.ascontiguousarray(row)
        out = np.empty((self.size, *row.shape), row.dtype)
        self._wait([self.comm.Iallgather(row, out)], what, timeout)
        return out

    # -- waiting and failing ------------------------------------------------------------
    def _wait(self, reqs, what: str, timeout: float | None = None) -> None:
        timeout = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        spins = 0
        while not self.MPI.Request.Testall(reqs):
            self._answer_pings()
            spins += 1
            if spins > 1000:  # past the first few milliseconds, stop burning a core
                time.sleep(0.0005)
                if time.monotonic() > deadline:
                    self._timed_out(what, timeout)

    def _answer_pings(self) -> None:
        if self._ctl is None:
            return
        if self._sends and self.MPI.Request.Testall(self._sends):
            self._sends.clear()
        status = self.MPI.Status()
        while self._ctl.Iprobe(source=self.MPI.ANY_SOURCE, tag=_PING, status=status):
            src = status.Get_source()
            self._ctl.recv(source=src, tag=_PING)
            self._sends.append(self._ctl.isend(self.rank, dest=src, tag=_PONG))

    def _timed_out(self, what: str, timeout: float) -> None:
        if self._ctl is None:
            raise DistributedError(f"rank {self.rank}: {what} did not complete within {timeout:g} s")
        peers = [r for r in range(self.size) if r != self.rank]
        for r in peers:
            self._sends.append(self._ctl.isend(self.rank, dest=r, tag=_PING))
        heard: set[int] = set()
        end = time.monotonic() + self.grace
        status = self.MPI.Status()
        while time.monotonic() < end and len(heard) < len(peers):
            self._answer_pings()
            while self._ctl.Iprobe(source=self.MPI.ANY_SOURCE, tag=_PONG, status=status):
                heard.add(self._ctl.recv(source=status.Get_source(), tag=_PONG))
            time.sleep(0.01)
        silent = [r for r in peers if r not in heard]
        if silent:
            who = f"rank{'s' if len(silent) > 1 else ''} {', '.join(map(str, silent))} did not answer (dead or stuck)"
        else:
            who = "every rank answered, so they wait in different collectives (a rank left the training loop early)"
        raise DistributedError(f"rank {self.rank}: {what} did not complete within {timeout:g} s; {who}")

    def describe(self, limit: int = 16) -> str:
        """One line: every rank's process id and host (the first ``limit``)."""
        ranks = [f"rank {r} pid {p} on {h}" for r, (p, h) in enumerate(zip(self.pids, self.hosts))]
        more = f", ... ({self.size} ranks)" if self.size > limit else ""
        return f"irc.dist: {', '.join(ranks[:limit])}{more}"

    def fail(self, error: BaseException) -> None:
        """Report ``error`` as this rank's and end the whole job (``MPI_Abort``)."""
        kind = type(error).__name__
        print(f"irc.dist: rank {self.rank} of {self.size} failed: {kind}: {error}", file=sys.stderr, flush=True)
        sys.stdout.flush()
        self.comm.Abort(1)

    def barrier(self, what: str) -> None:
        self._wait([self.comm.Ibarrier()], what)
