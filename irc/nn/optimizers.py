"""Optimizers: the update rules appended to the train step graph.

An optimizer says which state it keeps per weight (``slots``: a momentum buffer, Adam's two
moments) and across weights (``globals``: Adam's step count), and writes, with traced tensors,
the next value of each weight and of its state from the weight, its gradient and the learning
rate. That state is graph state like the weights (irc.targets.state), so it lives in the
compiled step and is updated in place.

The learning rate is a scalar input of every step, so a schedule changes it without recompiling:
``schedule(epoch, step, lr) -> lr`` is called before each step (``step`` counts all steps so far);
:class:`StepDecay` and :class:`ExponentialDecay` are schedules that checkpoints can store.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from irc.errors import InputError
from irc.frontend.trace import Tensor


class StepDecay:
    """lr * factor ** (epoch // every)."""

    def __init__(self, factor: float = 0.1, every: int = 10):
        self.factor, self.every = float(factor), int(every)

    def __call__(self, epoch: int, step: int, lr: float) -> float:
        return lr * self.factor ** (epoch // self.every)

    def config(self):
        return {"class": "StepDecay", "factor": self.factor, "every": self.every}


class ExponentialDecay:
    """lr * rate ** (step / steps): smooth decay by ``rate`` every ``steps`` steps."""

    def __init__(self, rate: float = 0.96, steps: int = 1000):
        self.rate, self.steps = float(rate), int(steps)

    def __call__(self, epoch: int, step: int, lr: float) -> float:
        return lr * self.rate ** (step / self.steps)

    def config(self):
        return {"class": "ExponentialDecay", "rate": self.rate, "steps": self.steps}


_SCHEDULES = {"StepDecay": StepDecay, "ExponentialDecay": ExponentialDecay}

#: keep(new, old) -> the value stored (see Optimizer.update).
Keep = Callable[[Tensor, Tensor], Tensor]


def _take_new(new: Tensor, old: Tensor) -> Tensor:
    return new


class Optimizer:
    """Base class: ``learning_rate`` and an optional ``schedule``."""

    def __init__(self, learning_rate: float, schedule: Callable | None = None):
        if not learning_rate > 0:
            raise InputError(f"learning_rate must be positive, got {learning_rate}")
        self.learning_rate = float(learning_rate)
        self.schedule = schedule

    def lr_at(self, epoch: int, step: int) -> float:
        if self.schedule is None:
            return self.learning_rate
        return float(self.schedule(epoch, step, self.learning_rate))

    def slots(self) -> list[str]:
        """Names of the per-weight state (each starts at zeros of the weight's shape)."""
        return []

    def globals(self) -> dict[str, float]:
        """Scalar state shared by all weights, with initial values."""
        return {}

    def update_globals(self, g: dict[str, Tensor]) -> dict[str, Tensor]:
        return {}

    def update(self, w: Tensor, grad: Tensor, slots: dict[str, Tensor], lr: Tensor,
               globals_: dict[str, Tensor], keep: Keep = _take_new) -> tuple[Tensor, dict[str, Tensor]]:
        """(next weight, next slots); ``globals_`` are the already updated globals.

        ``keep(new, old)`` is what to store as the next weight: the train step passes one that
        keeps ``old`` when the loss is not finite. It fuses into the weight's element-wise update.
        Slots are not guarded (a guard there would cost a pass over memory wherever the slot's
        update is fused into a GEMM's epilogue); a step whose loss is not finite has the model
        reset the slots it made non-finite (BaseModel._run_step)."""
        raise NotImplementedError

    def config(self) -> dict:
        sched = getattr(self.schedule, "config", None)
        return {"learning_rate": self.learning_rate, "schedule": sched() if sched else None}


class SGD(Optimizer):
    """Stochastic gradient descent, PyTorch's formulation: g += weight_decay * w; with momentum
    v = momentum * v + g and the step is v (or g + momentum * v with Nesterov); w -= lr * step."""

    def __init__(self, learning_rate: float = 0.01, momentum: float = 0.0, nesterov: bool = False,
                 weight_decay: float = 0.0, schedule: Callable | None = None):
        super().__init__(learning_rate, schedule)
        if not 0 <= momentum < 1:
            raise InputError(f"momentum must be in [0, 1), got {momentum}")
        if nesterov and momentum == 0:
            raise InputError("Nesterov momentum needs momentum > 0")
        self.momentum, self.nesterov, self.weight_decay = float(momentum), bool(nesterov), float(weight_decay)

    def slots(self):
        return ["velocity"] if self.momentum else []

    def update(self, w, grad, slots, lr, globals_, keep=_take_new):
        if self.weight_decay:
            grad = grad + w * self.weight_decay
        new_slots = {}
        step = grad
        if self.momentum:
            v = slots["velocity"] * self.momentum + grad
            new_slots["velocity"] = v
            step = grad + v * self.momentum if self.nesterov else v
        return keep(w - lr * step, w), new_slots

    def config(self):
        return {"class": "SGD", **super().config(), "momentum": self.momentum, "nesterov": self.nesterov,
                "weight_decay": self.weight_decay}


class Adam(Optimizer):
    """Adam (Kingma & Ba), PyTorch's formulation and defaults (``torch.optim.Adam``: lr 1e-3,
    betas 0.9/0.999, eps 1e-8): g += weight_decay * w; m = b1 m + (1-b1) g;
    v = b2 v + (1-b2) g^2; w -= lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + epsilon)."""

    def __init__(self, learning_rate: float = 0.001, beta_1: float = 0.9, beta_2: float = 0.999,
                 epsilon: float = 1e-8, weight_decay: float = 0.0, schedule: Callable | None = None):
        super().__init__(learning_rate, schedule)
        for nm, b in (("beta_1", beta_1), ("beta_2", beta_2)):
            if not 0 <= b < 1:
                raise InputError(f"{nm} must be in [0, 1), got {b}")
        self.beta_1, self.beta_2 = float(beta_1), float(beta_2)
        self.epsilon, self.weight_decay = float(epsilon), float(weight_decay)

    def slots(self):
        return ["m", "v"]

    def globals(self):
        return {"t": 0.0}

    def update_globals(self, g):
        return {"t": g["t"] + 1.0}

    def update(self, w, grad, slots, lr, globals_, keep=_take_new):
        if self.weight_decay:
            grad = grad + w * self.weight_decay
        b1, b2 = self.beta_1, self.beta_2
        t = globals_["t"]
        m = slots["m"] * b1 + grad * (1 - b1)
        v = slots["v"] * b2 + grad * grad * (1 - b2)
        c1 = 1.0 - t.tracer.const(np.float32(b1)) ** t
        c2 = 1.0 - t.tracer.const(np.float32(b2)) ** t
        w_new = w - lr * (m / c1) / (np.sqrt(v / c2) + self.epsilon)
        return keep(w_new, w), {"m": m, "v": v}

    def config(self):
        return {"class": "Adam", **super().config(), "beta_1": self.beta_1, "beta_2": self.beta_2,
                "epsilon": self.epsilon, "weight_decay": self.weight_decay}


def get(opt) -> Optimizer:
    """An Optimizer from an instance, a name ('sgd', 'adam') or a config dict."""
    if isinstance(opt, Optimizer):
        return opt
    if isinstance(opt, str) and opt.lower() in ("sgd", "adam"):
        return SGD() if opt.lower() == "sgd" else Adam()
    if isinstance(opt, dict):
        kw = {k: v for k, v in opt.items() if k != "class"}
        sched = kw.pop("schedule", None)
        if sched is not None:
            kw["schedule"] = _SCHEDULES[sched["class"]](**{k: v for k, v in sched.items() if k != "class"})
        return {"SGD": SGD, "Adam": Adam}[opt["class"]](**kw)
    raise InputError(f"unknown optimizer {opt!r} (give nn.SGD(...), nn.Adam(...), 'sgd' or 'adam')")
