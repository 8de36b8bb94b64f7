"""One rank of the distributed tests: ``mpirun -np P python mpi_worker.py SCENARIO OUT [options]``.

Scenarios (what test_mpi.py checks from the files rank 0 writes under OUT and the output):
  train      K-step data-parallel training of the digits MLP; rank 0 writes weights and history
  resume     like train, but from a checkpoint (--resume) and writing one (--checkpoint)
  raise      rank 1 raises inside the data pipeline at its third step
  kill       rank 1 kills itself (SIGKILL) at its third step
  hang       rank 1 stops answering at its third step (short --timeout)
  mismatch   rank 1 builds a wider hidden layer than the others
  gpus       like train, on irc.CUDA(devices=--mask, mem=--mem) with the cuda kernels emulated on
             the host; every rank writes the GPU index it chose to OUT/device_<rank>
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from dist_models import digits, mlp  # noqa: E402

import irc  # noqa: E402
from irc import nn  # noqa: E402
from irc.dist import Communicator  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("scenario")
    ap.add_argument("out")
    ap.add_argument("--target", default="interp")
    ap.add_argument("--samples", type=int, default=640)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--sync-every", type=int, default=1)
    ap.add_argument("--hidden", type=int, default=32)
    ap.add_argument("--optimizer", default="momentum")
    ap.add_argument("--timeout", type=float, default=60.0)
    ap.add_argument("--resume")
    ap.add_argument("--checkpoint")
    ap.add_argument("--mask", default="1,1")
    ap.add_argument("--mem", default="mid_mem")
    args = ap.parse_args()
    comm = Communicator(timeout=args.timeout)
    out = Path(args.out)

    (x, y), (xt, yt) = digits(args.samples)
    hidden = args.hidden + (8 if args.scenario == "mismatch" and comm.rank == 1 else 0)
    if args.resume:
        model = nn.load_checkpoint(args.resume)
    elif args.scenario == "gpus":
        gpus = irc.CUDA(devices=[int(d) for d in args.mask.split(",")], mem=args.mem, sync_every=args.sync_every)
        model = mlp(x.shape[1], hidden, args.optimizer, gpus, emulate=True)
    else:
        model = mlp(x.shape[1], hidden, args.optimizer, args.target)

    augment = None
    if args.scenario in ("raise", "kill", "hang") and comm.rank == 1:
        calls = []

        def augment(arrays, rng):
            calls.append(1)
            if len(calls) == 3:
                (out / "failed_at").write_text(f"{time.time()!r} {os.getpid()}")
                if args.scenario == "raise":
                    raise ValueError("the data pipeline broke")
                if args.scenario == "kill":
                    os.kill(os.getpid(), signal.SIGKILL)
                time.sleep(3600)
            return arrays

    verbose = 1 if args.scenario in ("raise", "kill", "hang") else 0  # rank 0 prints who is who
    distributed = {} if args.scenario == "gpus" else {"sync_every": args.sync_every}  # gpus: K from irc.CUDA
    hist = model.fit(x, y, batch_size=args.batch_size, epochs=args.epochs, validation_data=(xt, yt), seed=3,
                     verbose=verbose, augment=augment, comm=comm, checkpoint=args.checkpoint, **distributed)
    if args.scenario == "gpus":
        (out / f"device_{comm.rank}").write_text(str(model.target_options["device"]))
    if comm.rank == 0:
        np.savez(out / "weights.npz", **model.get_weights())
        (out / "history.json").write_text(json.dumps(hist.history))
        (out / "counters.json").write_text(json.dumps({"epoch": model.epoch, "step_count": model.step_count}))


if __name__ == "__main__":
    main()
