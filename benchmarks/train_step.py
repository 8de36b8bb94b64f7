"""irc's compiled train step next to PyTorch's eager one, in one process run.

    python benchmarks/train_step.py                 # every network below, 1 and 2 threads
    python benchmarks/train_step.py --nets mlp,lenet,resnet3 --threads 1
    python benchmarks/train_step.py --nets mlp --rounds 5   # 5 alternating irc/PyTorch pairs
    python benchmarks/train_step.py --epochs 3      # plus accuracy after 3 epochs (MLP, LeNet)
    python benchmarks/train_step.py --mnist mnist.npz

Networks: MLP 784-1024x3-10 b100 and LeNet-5 b64 on digits; "resnet3" (a 3x3 stem and three
basic residual blocks with BatchNorm, 32-64-128 channels, 32x32 inputs) b32; ResNet-18 b16 and
MobileNetV2 b16 at 224x224 (its ReLU6 written as ReLU: nn has no clipped activation), on random
images. Step time: one SGD-with-momentum step (forward, cross-entropy, backward, update) on a
fixed batch, median of many runs after warm-up (irc.bench.measure; at one thread the calling
thread's CPU time, else wall time); irc is timed on its compiled step executable, PyTorch on
``zero_grad; loss = ce(model(x), y); loss.backward(); opt.step()`` with the same initial
weights. On a shared machine one measurement says little: ``--rounds`` alternates irc and
PyTorch (and the thread counts) that many times, each ratio is taken from one back-to-back
pair, and the table gives the median ratio with the range of the rounds.
Accuracy: both start from the same weights and see the same
batches in the same order; the test accuracy after ``--epochs`` epochs is printed for each.
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


def _conv_bn(h, filters: int, kernel: int, stride: int = 1, relu: bool = True, groups: int = 1):
    h = nn.BatchNorm()(nn.Conv2D(filters, kernel, strides=stride, padding=kernel // 2, groups=groups,
                                 use_bias=False)(h))
    return nn.ReLU()(h) if relu else h


def _basic_block(h, filters: int, stride: int):
    a = _conv_bn(_conv_bn(h, filters, 3, stride), filters, 3, relu=False)
    short = h if stride == 1 and h.shape[0] == filters else _conv_bn(h, filters, 1, stride, relu=False)
    return nn.ReLU()(nn.Add()([a, short]))


def _head(h, classes: int = 10) -> nn.Symbol:
    return nn.Dense(classes, activation="softmax")(nn.GlobalAvgPool2D()(h))


def irc_resnet3() -> nn.Model:
    """A 3x3 stem and three basic blocks (32, 64, 128 channels; the last two stride 2), 32x32."""
    x = nn.Input((3, 32, 32))
    h = _conv_bn(x, 32, 3)
    for filters, stride in ((32, 1), (64, 2), (128, 2)):
        h = _basic_block(h, filters, stride)
    return nn.Model(x, _head(h), name="resnet3")


def irc_resnet18() -> nn.Model:
    x = nn.Input((3, 224, 224))
    h = nn.MaxPool2D(3, 2, padding=(1, 1, 1, 1))(_conv_bn(x, 64, 7, 2))
    for filters, stride in ((64, 1), (64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2), (512, 1)):
        h = _basic_block(h, filters, stride)
    return nn.Model(x, _head(h), name="resnet18")


def irc_mobilenet_v2() -> nn.Model:
    x = nn.Input((3, 224, 224))
    h = _conv_bn(x, 32, 3, 2)
    c = 32
    for t, out, n, s in ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
                         (6, 160, 3, 2), (6, 320, 1, 1)):
        for i in range(n):
            stride = s if i == 0 else 1
            a = _conv_bn(h, c * t, 1) if t != 1 else h
            a = _conv_bn(a, c * t, 3, stride, groups=c * t)
            a = _conv_bn(a, out, 1, relu=False)
            h = nn.Add()([h, a]) if stride == 1 and c == out else a
            c = out
    return nn.Model(x, _head(_conv_bn(h, 1280, 1)), name="mobilenet_v2")


#: name -> (label, builder, batch, learning rate for --epochs, digit data or random images)
NETS = {
    "mlp": ("MLP 784-1024x3-10", irc_mlp, 100, 0.05, True),
    "lenet": ("LeNet-5", irc_lenet, 64, 0.05, True),
    "resnet3": ("ResNet 3 blocks 32x32", irc_resnet3, 32, 0.05, False),
    "resnet18": ("ResNet-18 224x224", irc_resnet18, 16, 0.05, False),
    "mobilenet_v2": ("MobileNetV2 224x224", irc_mobilenet_v2, 16, 0.05, False),
}


def torch_twin(model: nn.Model):
    """The same network in PyTorch with model's current weights (Dense kernels transposed),
    following the model's layer graph; the final softmax is left to the loss, as in irc's step."""
    import torch

    def module(layer):
        name = type(layer).__name__
        if name == "Flatten":
            return torch.nn.Flatten()
        if name == "Dense":
            lin = torch.nn.Linear(*layer.weights["kernel"].shape)
            lin.weight.data = torch.from_numpy(layer.weights["kernel"].T.copy())
            lin.bias.data = torch.from_numpy(layer.weights["bias"].copy())
            return torch.nn.Sequential(lin, torch.nn.ReLU()) if layer.activation == "relu" else lin
        if name == "Conv2D":
            w = layer.weights["kernel"]
            conv = torch.nn.Conv2d(w.shape[1] * layer.groups, w.shape[0], w.shape[2:], stride=layer.strides,
                                   padding=(layer.pads[0], layer.pads[1]), dilation=layer.dilation,
                                   groups=layer.groups, bias=layer.use_bias)
            conv.weight.data = torch.from_numpy(w.copy())
            if layer.use_bias:
                conv.bias.data = torch.from_numpy(layer.weights["bias"].copy())
            return torch.nn.Sequential(conv, torch.nn.ReLU()) if layer.activation == "relu" else conv
        if name == "BatchNorm":
            bn = torch.nn.BatchNorm2d(len(layer.weights["gamma"]), eps=layer.epsilon, momentum=1 - layer.momentum)
            bn.weight.data = torch.from_numpy(layer.weights["gamma"].copy())
            bn.bias.data = torch.from_numpy(layer.weights["beta"].copy())
            return bn
        if name == "MaxPool2D":
            return torch.nn.MaxPool2d(layer.pool_size, layer.strides, padding=(layer.pads[0], layer.pads[1]))
        if name == "ReLU":
            return torch.nn.ReLU()
        if name == "GlobalAvgPool2D":
            return torch.nn.Sequential(torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten())
        if name == "Add":
            return None
        raise ValueError(f"no PyTorch twin for {name}")

    class Twin(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.steps = [(s, module(s.layer)) for s in model.symbols if type(s.layer).__name__ != "InputLayer"]
            self.mods = torch.nn.ModuleList([m for _, m in self.steps if m is not None])

        def forward(self, x):
            env = {id(model.inputs[0]): x}
            for s, m in self.steps:
                ins = [env[id(i)] for i in s.inbound]
                env[id(s)] = sum(ins[1:], ins[0]) if m is None else m(*ins)
            return env[id(model.outputs[0])]

    return Twin()


def _clock(threads: int) -> str:
    """At one thread both run in the calling thread (PyTorch's autograd too): its CPU time is
    what a step costs and is far less disturbed by other processes than the wall clock."""
    return "thread" if threads == 1 else "wall"


def time_irc(model: nn.Model, x, y, threads: int, budget: float = 3.0):
    exe = model._compiled("step", len(x))
    step = model._steps[len(x)]
    exe.exe.set_threads(threads)
    onehot = np.eye(10, dtype=np.float32)[y]
    feed = {**dict(zip(model.input_names, [x])), "y": onehot, "lr": np.float32(0.01)}
    args = [feed[k] for k in step.data_names]
    return measure(lambda: exe.run(args), budget_s=budget, clock=_clock(threads))


def time_torch(net, x, y, threads: int, budget: float = 3.0):
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

    return measure(step, budget_s=budget, clock=_clock(threads))


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
    ap.add_argument("--nets", default=",".join(NETS), help=f"comma-separated, of {', '.join(NETS)}")
    ap.add_argument("--rounds", type=int, default=1, help="alternating irc/PyTorch measurements per thread count")
    ap.add_argument("--budget", type=float, default=3.0, help="seconds per measurement")
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
    rng = np.random.default_rng(0)
    rows = []
    for key in args.nets.split(","):
        name, make, batch, lr, digits = NETS[key]
        model = make()
        net = torch_twin(model) if have_torch else None
        model.compile(nn.SGD(0.01, momentum=0.9), "cross_entropy", metrics=["accuracy"], target="cpu")
        t0 = time.perf_counter()
        model.prepare(batch)
        print(f"{name}: train step compiled in {time.perf_counter() - t0:.1f} s", flush=True)
        if digits:
            xb, yb = x[:batch], y[:batch]
        else:
            xb = rng.standard_normal((batch, *model.input_shapes[0])).astype(np.float32)
            yb = rng.integers(0, 10, batch)
        pairs = {th: [] for th in threads}
        for _ in range(args.rounds):
            for th in threads:
                ti = time_irc(model, xb, yb, th, args.budget).median
                tt = time_torch(net, xb, yb, th, args.budget).median if have_torch else None
                pairs[th].append((ti, tt))
        for th in threads:
            rows.append((f"{name} b{batch}", th, pairs[th]))
        if args.epochs and digits:
            fresh = make()
            twin = torch_twin(fresh) if have_torch else None
            fresh.compile(nn.SGD(lr, momentum=0.9), "cross_entropy", metrics=["accuracy"], target="cpu")
            hist = fresh.fit(x, y, batch_size=batch, epochs=args.epochs, validation_data=(xt, yt), seed=0, verbose=0)
            acc_t = accuracy_torch(twin, x, y, xt, yt, batch, args.epochs, lr) if have_torch else None
            print(f"{name}: test accuracy after {args.epochs} epochs: irc {hist['val_accuracy'][-1]:.4f}"
                  + (f", PyTorch {acc_t:.4f}" if acc_t is not None else "")
                  + f" (irc {np.median(hist['time']):.2f} s/epoch)")
    print(f"\n{'network':30s} {'threads':>7s} {'irc ms':>9s} {'torch ms':>9s} {'irc/torch':>9s} {'rounds':>11s}")
    for net_name, th, pairs in rows:
        ti = float(np.median([p[0] for p in pairs]))
        if pairs[0][1] is None:
            print(f"{net_name:30s} {th:7d} {ti:9.2f} {float('nan'):9.2f} {'-':>9s}")
            continue
        tt = float(np.median([p[1] for p in pairs]))
        ratios = [p[0] / p[1] for p in pairs]
        spread = f"{min(ratios):.2f}-{max(ratios):.2f}" if len(ratios) > 1 else ""
        print(f"{net_name:30s} {th:7d} {ti:9.2f} {tt:9.2f} {float(np.median(ratios)):9.2f} {spread:>11s}")


if __name__ == "__main__":
    main()
