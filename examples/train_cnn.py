"""Train a LeNet-style CNN on handwritten digits; print accuracy and time per epoch.

    python examples/train_cnn.py                       # cpu target, 5 epochs, batch 64
    python examples/train_cnn.py --mnist mnist.npz     # a local MNIST copy
    python examples/train_cnn.py --target interp

conv5x5(6, same)-ReLU-maxpool2 -> conv5x5(16)-ReLU-maxpool2 -> fc120-ReLU -> fc84-ReLU -> fc10
softmax, trained with Adam. Without a local MNIST it uses scikit-learn's handwritten digits
(see digit_data.py) and says so. The trained model is written as ONNX with --out.
"""

from __future__ import annotations

import time

from digit_data import load
from train_common import parse_args, report, target_options

from irc import nn


def lenet() -> nn.Model:
    x = nn.Input((1, 28, 28), name="input")
    h = nn.MaxPool2D(2)(nn.Conv2D(6, 5, padding="same", activation="relu")(x))
    h = nn.MaxPool2D(2)(nn.Conv2D(16, 5, activation="relu")(h))
    h = nn.Dense(120, activation="relu")(nn.Flatten()(h))
    h = nn.Dense(84, activation="relu")(h)
    return nn.Model(x, nn.Dense(10, activation="softmax")(h), name="lenet")


def main() -> None:
    args = parse_args(__doc__.splitlines()[0], batch_size=64, lr=0.002, out="lenet_trained.onnx")

    (x, y), (xt, yt), desc = load(args.mnist)
    print(desc)
    model = lenet()
    options = target_options(args)
    model.compile(nn.Adam(args.lr), "cross_entropy", metrics=["accuracy"], target=args.target, **options)
    t = time.perf_counter()
    model.prepare(args.batch_size, len(x), len(xt))
    print(f"compiled the train step for {args.target} in {time.perf_counter() - t:.1f} s")
    hist = model.fit(x, y, batch_size=args.batch_size, epochs=args.epochs, validation_data=(xt, yt), seed=0)
    if args.out:
        model.save(args.out)
    report(hist, args.out)


if __name__ == "__main__":
    main()
