"""Data-parallel training of the digits MLP over MPI: every rank trains on its share of each batch.

    mpirun -np 4 python examples/train_distributed.py                   # gradients all-reduced every step
    mpirun -np 4 python examples/train_distributed.py --sync-every 4    # weights averaged every 4 steps
    mpirun -np 2 python examples/train_distributed.py --checkpoint ck.npz --epochs 2
    mpirun -np 3 python examples/train_distributed.py --resume ck.npz --epochs 1   # any number of ranks
    python examples/train_distributed.py                                # one process, same code

(Open MPI as root also needs ``--allow-run-as-root``, and more ranks than cores ``--oversubscribe``.)
Needs mpi4py and an MPI library (docs/distributed.md). Rank 0 prints the progress and writes the
checkpoint (after every epoch) and the trained model as ONNX (--out).
"""

from __future__ import annotations

import argparse

from digit_data import load

from irc import dist, nn


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mnist", help="mnist.npz or a folder with the IDX files")
    ap.add_argument("--target", default="cpu", choices=["cpu", "interp"])
    ap.add_argument("--threads", type=int, default=1, help="cpu threads per rank (default 1: one core per rank)")
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--batch-size", type=int, default=100, help="the global batch, split over the ranks")
    ap.add_argument("--lr", type=float, default=0.05)
    ap.add_argument("--sync-every", type=int, default=1)
    ap.add_argument("--checkpoint", help="checkpoint file rank 0 writes after every epoch")
    ap.add_argument("--resume", help="checkpoint to go on from (written with any number of ranks)")
    ap.add_argument("--out", default="mlp_distributed.onnx")
    args = ap.parse_args()

    comm = dist.world()  # MPI's world; one rank when started without mpirun
    (x, y), (xt, yt), desc = load(args.mnist)
    x, xt = x.reshape(len(x), 784), xt.reshape(len(xt), 784)
    if comm.rank == 0:
        print(f"{desc}\n{comm.size} rank(s), global batch {args.batch_size}, sync every {args.sync_every} step(s)")

    if args.resume:
        model = nn.load_checkpoint(args.resume)
    else:
        model = nn.Sequential([nn.Dense(1024, activation="relu"), nn.Dense(1024, activation="relu"),
                               nn.Dense(10, activation="softmax")], input_shape=(784,), name="mlp")
        options = {"threads": args.threads} if args.target == "cpu" else {}
        model.compile(nn.SGD(args.lr, momentum=0.9), "cross_entropy", metrics=["accuracy"], target=args.target,
                      **options)
    hist = model.fit(x, y, batch_size=args.batch_size, epochs=args.epochs, validation_data=(xt, yt), seed=0,
                     comm=comm, sync_every=args.sync_every, checkpoint=args.checkpoint)
    if comm.rank == 0:
        model.save(args.out)
        h = hist.history
        print(f"test accuracy {h['val_accuracy'][-1]:.4f}; {sum(h['comm_time']) / sum(h['time']):.1%} of the time "
              f"in communication; wrote {args.out}")


if __name__ == "__main__":
    main()
