"""Train the 784-1024-1024-1024-10 ReLU/softmax MLP with SGD and print accuracy and time per epoch.

    python examples/train_mnist_mlp.py                       # cpu target, 5 epochs
    python examples/train_mnist_mlp.py --mnist mnist.npz     # a local MNIST copy
    python examples/train_mnist_mlp.py --target interp --epochs 2

Without a local MNIST it trains on scikit-learn's handwritten digits (see digit_data.py) and
says so. The trained model is written as ONNX with --out.
"""

from __future__ import annotations

import time

from digit_data import load
from train_common import parse_args, report, target_options

from irc import nn


def main() -> None:
    args = parse_args(__doc__.splitlines()[0], batch_size=100, lr=0.05, out="mlp_trained.onnx")

    (x, y), (xt, yt), desc = load(args.mnist)
    print(desc)
    x, xt = x.reshape(len(x), 784), xt.reshape(len(xt), 784)

    model = nn.Sequential([nn.Dense(1024, activation="relu"), nn.Dense(1024, activation="relu"),
                           nn.Dense(1024, activation="relu"), nn.Dense(10, activation="softmax")],
                          input_shape=(784,), name="mlp")
    options = target_options(args)
    model.compile(nn.SGD(args.lr, momentum=0.9), "cross_entropy", metrics=["accuracy"], target=args.target, **options)
    t = time.perf_counter()
    model.prepare(args.batch_size, len(x), len(xt))
    print(f"compiled the train step for {args.target} in {time.perf_counter() - t:.1f} s "
          f"(one graph: forward, loss, backward, SGD update)")
    hist = model.fit(x, y, batch_size=args.batch_size, epochs=args.epochs, validation_data=(xt, yt), seed=0)
    if args.out:
        model.save(args.out)
    report(hist, args.out)


if __name__ == "__main__":
    main()
