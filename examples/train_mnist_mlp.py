"""Train the 784-1024-1024-1024-10 ReLU/softmax MLP with SGD and print accuracy and time per epoch.

    python examples/train_mnist_mlp.py                       # cpu target, 5 epochs
    python examples/train_mnist_mlp.py --mnist mnist.npz     # a local MNIST copy
    python examples/train_mnist_mlp.py --target interp --epochs 2

Without a local MNIST it trains on scikit-learn's handwritten digits (see digit_data.py) and
says so. The trained model is written as ONNX (--out).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from digit_data import load

from irc import nn


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mnist", help="mnist.npz or a folder with the IDX files")
    ap.add_argument("--target", default="cpu", choices=["cpu", "interp"])
    ap.add_argument("--threads", type=int, default=None, help="cpu threads (default: all cores)")
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--batch-size", type=int, default=100)
    ap.add_argument("--lr", type=float, default=0.05)
    ap.add_argument("--out", default="mlp_trained.onnx")
    args = ap.parse_args()

    (x, y), (xt, yt), desc = load(args.mnist)
    print(desc)
    x, xt = x.reshape(len(x), 784), xt.reshape(len(xt), 784)

    model = nn.Sequential([nn.Dense(1024, activation="relu"), nn.Dense(1024, activation="relu"),
                           nn.Dense(1024, activation="relu"), nn.Dense(10, activation="softmax")],
                          input_shape=(784,), name="mlp")
    options = {"threads": args.threads} if args.target == "cpu" and args.threads else {}
    model.compile(nn.SGD(args.lr, momentum=0.9), "cross_entropy", metrics=["accuracy"], target=args.target, **options)
    t = time.perf_counter()
    model.prepare(args.batch_size, len(x), len(xt))
    print(f"compiled the train step for {args.target} in {time.perf_counter() - t:.1f} s "
          f"(one graph: forward, loss, backward, SGD update)")
    hist = model.fit(x, y, batch_size=args.batch_size, epochs=args.epochs, validation_data=(xt, yt), seed=0)
    for e in range(len(hist["epoch"])):
        print(f"epoch {hist['epoch'][e]}: train accuracy {hist['accuracy'][e]:.4f}, "
              f"test accuracy {hist['val_accuracy'][e]:.4f}, {hist['time'][e]:.2f} s/epoch")
    model.save(args.out)
    print(f"test accuracy {hist['val_accuracy'][-1]:.4f}; wrote {args.out}; "
          f"median epoch time {np.median(hist['time']):.2f} s")


if __name__ == "__main__":
    main()
