"""Finding the MPI world, fit's hook, and the start-up fingerprints, without MPI."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from irc.dist.comm import DistributedError
from irc.dist.consistency import check_same, data_digest, graph_digest
from irc.dist.launch import launched_size, resolve
from irc.dist.step import gradient_graph
from irc.errors import InputError
from tests.dist.dist_models import digits, mlp

ROOT = Path(__file__).resolve().parents[2]


def test_launched_size_reads_the_launchers_variables():
    assert launched_size({}) == 1
    assert launched_size({"OMPI_COMM_WORLD_SIZE": "4"}) == 4
    assert launched_size({"PMI_SIZE": "3"}) == 3
    assert resolve(False) is None
    with pytest.raises(InputError, match="comm must be"):
        resolve(object())


def test_importing_irc_and_irc_dist_never_imports_mpi4py():
    code = "import sys, irc, irc.nn, irc.dist; print('mpi4py' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


def test_fit_alone_refuses_distributed_only_options():
    (x, y), _ = digits(32)
    model = mlp(64, 8, "sgd", "interp")
    with pytest.raises(InputError, match="checkpoint: options of distributed training"):
        model.fit(x, y, batch_size=16, verbose=0, checkpoint="ck.npz")
    model.fit(x, y, batch_size=16, verbose=0, sync_every=4)  # one replica: nothing to average
    assert model.step_count == 2


class _Table:
    """Stands in for the communicator's allgather: the rows every rank would contribute."""

    def __init__(self, rows):
        self.rows, self.size = rows, len(rows)

    def allgather(self, row, what, timeout=None):
        return np.stack([row if r is None else r for r in self.rows])


def test_fingerprints_name_the_rank_that_differs():
    (x, y), _ = digits(32)
    a, b = mlp(64, 8, "sgd", "interp"), mlp(64, 9, "sgd", "interp")
    ga, gb = graph_digest(gradient_graph(a, 1).graph), graph_digest(gradient_graph(b, 1).graph)
    assert np.array_equal(ga, graph_digest(gradient_graph(mlp(64, 8, "sgd", "interp"), 1).graph))
    assert not np.array_equal(ga, gb)
    d = data_digest([x, y])
    x2 = x.copy()
    x2[-1, 0] += 1  # the last row is always among the sampled ones
    mine = np.stack([ga, d])
    check_same(_Table([mine, None, None]), {"graph": ga, "data": d}, "start")
    with pytest.raises(DistributedError, match=r"the graph of rank 2 differs from rank 0's") as e:
        check_same(_Table([mine, None, np.stack([gb, d])]), {"graph": ga, "data": d}, "start")
    assert e.value.collective
    with pytest.raises(DistributedError, match=r"the data of ranks 1, 2 differ"):
        bad = np.stack([ga, data_digest([x2, y])])
        check_same(_Table([mine, bad, bad]), {"graph": ga, "data": d}, "start")
