"""Fingerprints that every rank compares before training: same graph, settings, data, weights.

Ranks that silently train different networks, on different data or from different weights
would average nonsense. Each rank hashes what it is about to run; the digests are gathered and
a rank that differs from rank 0 is named. Only digests (32 bytes each) cross the network.
"""

from __future__ import annotations

import hashlib
import json

import numpy as np

from irc.dist.comm import DistributedError
from irc.ir.printer import print_graph

KINDS = ("graph", "settings", "data")


def digest(*parts) -> np.ndarray:
    """SHA-256 of the parts (str, bytes or arrays) as 32 uint8."""
    h = hashlib.sha256()
    for p in parts:
        if isinstance(p, np.ndarray):
            h.update(str((p.shape, p.dtype.str)).encode())
            h.update(np.ascontiguousarray(p).tobytes())
        else:
            h.update(p if isinstance(p, bytes) else str(p).encode())
        h.update(b"\0")
    return np.frombuffer(h.digest(), np.uint8)


def graph_digest(*graphs) -> np.ndarray:
    """The graphs' text forms (ops, shapes, attributes and constants)."""
    return digest(*(print_graph(g) for g in graphs))


def settings_digest(settings: dict) -> np.ndarray:
    return digest(json.dumps(settings, sort_keys=True, default=str))


def data_digest(arrays, samples: int = 64) -> np.ndarray:
    """Shapes and dtypes of the arrays and up to ``samples`` rows spread over them (hashing all
    of a large data set would cost seconds at every start)."""
    parts = []
    for a in arrays:
        n = len(a)
        idx = np.unique(np.linspace(0, n - 1, min(n, samples)).astype(np.int64)) if n else np.zeros(0, np.int64)
        parts += [str((a.shape, a.dtype.str)), np.take(a, idx, axis=0)]
    return digest(*parts)


def check_same(comm, digests: dict[str, np.ndarray], when: str, timeout: float | None = None) -> None:
    """Gather ``digests`` (kind -> 32 bytes) from every rank; raise on every rank, naming the
    ranks whose digests differ from rank 0's, if any do."""
    kinds = list(digests)
    table = comm.allgather(np.stack([digests[k] for k in kinds]), when, timeout)
    bad = []
    for i, kind in enumerate(kinds):
        ranks = [r for r in range(comm.size) if not np.array_equal(table[r, i], table[0, i])]
        if ranks:
            bad.append(f"the {kind} of rank{'s' if len(ranks) > 1 else ''} {', '.join(map(str, ranks))}")
    if bad:
        verb = "differs" if len(bad) == 1 else "differ"
        raise DistributedError(f"{when}: {' and '.join(bad)} {verb} from rank 0's (every rank must run the same "
                               f"model, settings and data)", collective=True)
