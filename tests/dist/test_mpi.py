"""Data-parallel training under a real mpirun on this machine (2 and 3 ranks, oversubscribed).

Each test starts ``mpirun -np P python mpi_worker.py SCENARIO OUT`` and checks what rank 0 wrote
and what the job printed. Skipped when mpirun or mpi4py is missing (CI installs Open MPI)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from irc.dist.launch import find_mpirun, mpirun_command
from tests.dist.dist_models import digits, mlp

WORKER = Path(__file__).with_name("mpi_worker.py")
ROOT = Path(__file__).resolve().parents[2]
MPIRUN = find_mpirun()

try:
    import mpi4py  # noqa: F401

    HAVE_MPI4PY = True
except ImportError:
    HAVE_MPI4PY = False

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(MPIRUN is None, reason="mpirun not found (pip install mpich, or an MPI library from the system)"),
    pytest.mark.skipif(not HAVE_MPI4PY, reason="mpi4py is not installed (pip install 'irc[dist]')"),
]


def _mpirun(ranks: int) -> list[str]:
    return mpirun_command(ranks, MPIRUN)


def run_job(ranks: int, scenario: str, out: Path, *args: str, limit: float = 240) -> subprocess.CompletedProcess:
    out.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    cmd = [*_mpirun(ranks), sys.executable, str(WORKER), scenario, str(out), *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=limit, cwd=ROOT, env=env)


def _ok(job: subprocess.CompletedProcess) -> None:
    assert job.returncode == 0, job.stdout[-3000:] + job.stderr[-3000:]


def _single_process(samples: int, epochs: int, optimizer: str = "momentum"):
    (x, y), _ = digits(samples)
    model = mlp(64, 32, optimizer, "interp")
    model.fit(x, y, batch_size=32, epochs=epochs, seed=3, verbose=0)
    return model


def _assert_same_weights(out: Path, model) -> None:
    got = np.load(out / "weights.npz")
    for k, w in model.get_weights().items():
        # fp32 gradients summed over ranks instead of over one batch: rounding only.
        np.testing.assert_allclose(got[k], w, rtol=1e-5, atol=1e-6 * np.abs(w).max(), err_msg=k)


@pytest.mark.parametrize("optimizer", ["momentum", "adam"])
def test_k1_on_two_ranks_is_single_process_training_on_the_global_batch(tmp_path, optimizer):
    _ok(run_job(2, "train", tmp_path, "--samples", "640", "--optimizer", optimizer))  # 20 steps of 32
    ref = _single_process(640, 1, optimizer)
    _assert_same_weights(tmp_path, ref)
    hist = json.loads((tmp_path / "history.json").read_text())
    assert hist["loss"][0] == pytest.approx(ref.history["loss"][0], rel=1e-5)
    # validation split over the ranks and aggregated = one process evaluating every sample
    _, (xt, yt) = digits()
    full = ref.evaluate(xt, yt)
    assert hist["val_loss"][0] == pytest.approx(full["loss"], rel=1e-5)
    assert hist["val_accuracy"][0] == pytest.approx(full["accuracy"], abs=1e-12)
    assert hist["ranks"] == [2]
    # 20 all-reduces of the gradients (32*64+32+10*32+10 floats, each padded to 64 bytes)
    assert hist["comm_bytes"] == [20 * 4 * (2048 + 32 + 320 + 16)]
    assert 0 < hist["comm_time"][0] < hist["time"][0]


def test_uneven_shards_on_three_ranks(tmp_path):
    # 650 = 20 x 32 + 10: shares of 11/11/10 rows, then 4/3/3 for the last batch.
    _ok(run_job(3, "train", tmp_path, "--samples", "650"))
    _assert_same_weights(tmp_path, _single_process(650, 1))


def test_k4_on_two_ranks_learns_the_digits(tmp_path):
    _ok(run_job(2, "train", tmp_path, "--samples", "1437", "--sync-every", "4", "--epochs", "20", "--hidden", "64"))
    hist = json.loads((tmp_path / "history.json").read_text())
    assert hist["val_accuracy"][-1] >= 0.97, hist["val_accuracy"]
    # weights and momentum (2 x 4810 floats, padded) averaged every 4 of 45 steps and at each epoch's end
    assert hist["comm_bytes"][0] == 12 * 4 * 2 * (4096 + 64 + 640 + 16)


def test_a_checkpoint_resumes_on_a_different_number_of_ranks(tmp_path):
    ck = tmp_path / "ck.npz"
    _ok(run_job(2, "train", tmp_path / "a", "--epochs", "2", "--checkpoint", str(ck)))
    _ok(run_job(3, "train", tmp_path / "b", "--resume", str(ck)))
    counters = json.loads((tmp_path / "b" / "counters.json").read_text())
    assert counters == {"epoch": 3, "step_count": 60}
    hist = json.loads((tmp_path / "b" / "history.json").read_text())
    assert hist["ranks"] == [2, 2, 3]
    _assert_same_weights(tmp_path / "b", _single_process(640, 3))


@pytest.mark.parametrize("scenario, timeout, message", [
    ("raise", 60, "irc.dist: rank 1 of 2 failed: ValueError: the data pipeline broke"),
    ("kill", 60, None),  # reported by the launcher
    ("hang", 15, "rank 1 did not answer (dead or stuck)"),
])
def test_a_failing_rank_ends_the_job_with_an_error_naming_it(tmp_path, scenario, timeout, message):
    job = run_job(2, scenario, tmp_path, "--timeout", str(timeout), limit=300)
    ended = time.time()
    output = job.stdout + job.stderr
    assert job.returncode != 0
    failed_at, pid = (tmp_path / "failed_at").read_text().split()  # when and where rank 1 broke
    assert ended - float(failed_at) < 60
    if message is None:
        # Open MPI's mpirun names the rank; MPICH's names the pid, which rank 0's start line maps to rank 1.
        assert "rank 1 with PID" in output or (f"PID {pid} " in output and f"rank 1 pid {pid} on" in output), output
    else:
        assert message in output
    assert not (tmp_path / "weights.npz").exists()


def test_a_rank_with_another_graph_is_refused_at_start(tmp_path):
    job = run_job(2, "mismatch", tmp_path)
    assert job.returncode != 0
    assert "the graph of rank 1 differs from rank 0's" in job.stderr


@pytest.mark.parametrize("mem", ["mid_mem", "low_mem"])
def test_several_gpus_train_one_process_each_on_the_masks_gpus(tmp_path, mem):
    """irc.CUDA(devices=[0, 1, 0, 1]) over 2 ranks: rank 0 on GPU 1, rank 1 on GPU 3 (the cuda
    kernels emulated on the host, since there is no GPU here), K=1 from the configuration, and
    the result is one process on the global batch; low_mem runs each share a sample at a time
    and sums the gradients, which changes only the order of float sums."""
    _ok(run_job(2, "gpus", tmp_path, "--samples", "128", "--mask", "0,1,0,1", "--mem", mem))
    assert [(tmp_path / f"device_{r}").read_text() for r in range(2)] == ["1", "3"]
    _assert_same_weights(tmp_path, _single_process(128, 1))


def test_more_processes_than_selected_gpus_is_refused(tmp_path):
    job = run_job(2, "gpus", tmp_path, "--samples", "64", "--mask", "0,1")
    assert job.returncode != 0
    assert "runs 2 training processes but devices selects 1 GPU(s) ([1])" in job.stdout + job.stderr
