"""irc's compiled train step next to PyTorch's eager one, in one process run.

    python benchmarks/train_step.py                 # MLP b100 and LeNet b64, 1 and 2 threads
    python benchmarks/train_step.py --epochs 3      # plus accuracy after 3 epochs each
    python benchmarks/train_step.py --mnist mnist.npz

Step time: one SGD-with-momentum step (forward, cross-entropy, backward, update) on a fixed
batch, median of many runs after warm-up (irc.bench.measure); irc is timed on its compiled
step executable, PyTorch on ``zero_grad; loss = ce(model(x), y); loss.backward(); opt.step()``.
Accuracy: both start from the same initial weights (irc's, copied into PyTorch) and see the
same batches in the same order; the test accuracy after ``--epochs`` epochs is printed for each.
PyTorch is optional: without it only irc's figures are printed.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))

from digit_data import load  # noqa: E402

from irc import nn  # noqa: E402
from irc.bench import measure  # noqa: E402
from irc.nn.data import epoch_order  # noqa: E402


def irc_mlp() -> nn.Model:
    return nn.Sequential([nn.Flatten(), nn.Dense(1024, activation="relu"), nn.Dense(1024, activation="relu"),
                          nn.Dense(1024, activation="relu"), nn.Dense(10, activation="softmax")],
                         input_shape=(1, 28, 28), name="mlp")


def irc_lenet() -> nn.Model:
    x = nn.Input((1, 28, 28))
    h = nn.MaxPool2D(2)(nn.Conv2D(6, 5, padding="same", activation="relu")(x))
    h = nn.MaxPool2D(2)(nn.Conv2D(16, 5, activation="relu")(h))
    h = nn.Dense(84, activation="relu")(nn.Dense(120, activation="relu")(nn.Flatten()(h)))
    return nn.Model(x, nn.Dense(10, activation="softmax")(h), name="lenet")


def torch_twin(model: nn.Model):
    """The same network in PyTorch with model's current weights (Dense kernels transposed)."""
    import torch

    mods = []
    for layer in model.layers:
        name = type(layer).__name__
        if name == "Flatten":
            mods.append(torch.nn.Flatten())
        elif name == "Dense":
            lin = torch.nn.Linear(*layer.weights["kernel"].shape)
            lin.weight.data = torch.from_numpy(layer.weights["kernel"].T.copy())
            lin.bias.data = torch.from_numpy(layer.weights["bias"].copy())
            mods.append(lin)
            if layer.activation == "relu":
                mods.append(torch.nn.ReLU())
        elif name == "Conv2D":
            w = layer.weights["kernel"]
            conv = torch.nn.Conv2d(w.shape[1], w.shape[0], w.shape[2:], stride=layer.strides,
                                   padding=(layer.pads[0], layer.pads[1]))
            conv.weight.data = torch.from_numpy(w.copy())
            conv.bias.data = torch.from_numpy(layer.weights["bias"].copy())
            mods += [conv, torch.nn.ReLU()]
        elif name == "MaxPool2D":
            mods.append(torch.nn.MaxPool2d(layer.pool_size, layer.strides))
    return torch.nn.Sequential(*mods)  # the final softmax is inside the loss, as in irc's step


def time_irc(model: nn.Model, x, y, threads: int):
    exe = model._compiled("step", len(x))
    step = model._steps[len(x)]
    exe.exe.set_threads(threads)
    onehot = np.eye(10, dtype=np.float32)[y]
    feed = {**dict(zip(model.input_names, [x])), "y": onehot, "lr": np.float32(0.01)}
    args = [feed[k] for k in step.data_names]
    return measure(lambda: exe.run(args), budget_s=3.0)


def time_torch(net, x, y, threads: int):
    import torch

    torch.set_num_threads(threads)
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    ce = torch.nn.CrossEntropyLoss()

    def step():
        opt.zero_grad()
        loss = ce(net(xt), yt)
        loss.backward()
        opt.step()

    return measure(step, budget_s=3.0)


def accuracy_torch(net, x, y, xt, yt, batch, epochs, lr, seed=0):
    import torch

    opt = torch.optim.SGD(net.parameters(), lr=lr, momentum=0.9)
    ce = torch.nn.CrossEntropyLoss()
    for e in range(epochs):
        order = epoch_order(len(x), seed, e, True)
        for lo in range(0, len(x), batch):
            idx = order[lo:lo + batch]
            opt.zero_grad()
            ce(net(torch.from_numpy(x[idx])), torch.from_numpy(y[idx])).backward()
            opt.step()
    with torch.no_grad():
        return float((net(torch.from_numpy(xt)).argmax(1).numpy() == yt).mean())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mnist", help="mnist.npz or a folder with the IDX files")
    ap.add_argument("--epochs", type=int, default=0, help="also compare accuracy after this many epochs")
    ap.add_argument("--threads", default="1,2")
    args = ap.parse_args()
    try:
        import torch  # noqa: F401

        have_torch = True
    except ImportError:
        have_torch = False
        print("PyTorch is not installed: irc's figures only")
    (x, y), (xt, yt), desc = load(args.mnist)
    print(desc)
    threads = [int(t) for t in args.threads.split(",")]
    rows = []
    for name, make, batch, lr in (("MLP 784-1024x3-10", irc_mlp, 100, 0.05), ("LeNet-5", irc_lenet, 64, 0.05)):
        model = make()
        net = torch_twin(model) if have_torch else None
        model.compile(nn.SGD(0.01, momentum=0.9), "cross_entropy", metrics=["accuracy"], target="cpu")
        t0 = time.perf_counter()
        model.prepare(batch)
        print(f"{name}: train step compiled in {time.perf_counter() - t0:.1f} s")
        xb, yb = x[:batch], y[:batch]
        for th in threads:
            ti = time_irc(model, xb, yb, th)
            tt = time_torch(net, xb, yb, th) if have_torch else None
            rows.append((f"{name} b{batch}", th, ti.median, tt.median if tt else None))
        if args.epochs:
            fresh = make()
            twin = torch_twin(fresh) if have_torch else None
            fresh.compile(nn.SGD(lr, momentum=0.9), "cross_entropy", metrics=["accuracy"], target="cpu")
            hist = fresh.fit(x, y, batch_size=batch, epochs=args.epochs, validation_data=(xt, yt), seed=0, verbose=0)
            acc_t = accuracy_torch(twin, x, y, xt, yt, batch, args.epochs, lr) if have_torch else None
            print(f"{name}: test accuracy after {args.epochs} epochs: irc {hist['val_accuracy'][-1]:.4f}"
                  + (f", PyTorch {acc_t:.4f}" if acc_t is not None else "")
                  + f" (irc {np.median(hist['time']):.2f} s/epoch)")
    print(f"\n{'network':24s} {'threads':>7s} {'irc ms':>9s} {'torch ms':>9s} {'irc/torch':>9s}")
    for net_name, th, ti, tt in rows:
        ratio = f"{ti / tt:9.2f}" if tt else f"{'-':>9s}"
        print(f"{net_name:24s} {th:7d} {ti:9.2f} {tt if tt else float('nan'):9.2f} {ratio}")


if __name__ == "__main__":
    main()
