"""Weight initializers: Glorot (Xavier) and He (Kaiming), uniform and normal, zeros and ones.

An initializer is called with the weight's shape, its fan-in and fan-out and a numpy Generator;
the Model gives each layer a generator seeded from the model seed and the layer's position, so
the same seed gives the same initial weights. An initializer made with its own ``seed`` uses
that instead (mixed with the weight's name, so two weights of a layer differ).
"""

from __future__ import annotations

import zlib

import numpy as np

from irc.errors import InputError


class Initializer:
    """Base: ``init(shape, fan_in, fan_out, rng, name) -> float32 array``."""

    def __init__(self, seed: int | None = None):
        self.seed = seed

    def __call__(self, shape, fan_in: int, fan_out: int, rng: np.random.Generator, name: str = "") -> np.ndarray:
        if self.seed is not None:
            rng = np.random.default_rng([self.seed, zlib.crc32(name.encode())])
        return np.asarray(self.sample(tuple(shape), max(fan_in, 1), max(fan_out, 1), rng), np.float32)

    def sample(self, shape, fan_in, fan_out, rng) -> np.ndarray:
        raise NotImplementedError

    def config(self) -> dict:
        return {"class": type(self).__name__, "seed": self.seed}


class Zeros(Initializer):
    def sample(self, shape, fan_in, fan_out, rng):
        return np.zeros(shape)


class Ones(Initializer):
    def sample(self, shape, fan_in, fan_out, rng):
        return np.ones(shape)


class GlorotUniform(Initializer):
    """U(-l, l) with l = sqrt(6 / (fan_in + fan_out))."""

    def sample(self, shape, fan_in, fan_out, rng):
        lim = np.sqrt(6.0 / (fan_in + fan_out))
        return rng.uniform(-lim, lim, shape)


class GlorotNormal(Initializer):
    """N(0, 2 / (fan_in + fan_out)) truncated at two standard deviations."""

    def sample(self, shape, fan_in, fan_out, rng):
        return _truncated(rng, shape, np.sqrt(2.0 / (fan_in + fan_out)))


class HeUniform(Initializer):
    """U(-l, l) with l = sqrt(6 / fan_in) (for ReLU networks)."""

    def sample(self, shape, fan_in, fan_out, rng):
        lim = np.sqrt(6.0 / fan_in)
        return rng.uniform(-lim, lim, shape)


class HeNormal(Initializer):
    """N(0, 2 / fan_in) truncated at two standard deviations."""

    def sample(self, shape, fan_in, fan_out, rng):
        return _truncated(rng, shape, np.sqrt(2.0 / fan_in))


def _truncated(rng, shape, std):
    # Redraw what falls outside two standard deviations; 0.8796 restores the variance.
    std = std / 0.87962566103423978
    out = rng.normal(0.0, std, shape)
    bad = np.abs(out) > 2 * std
    while bad.any():
        out[bad] = rng.normal(0.0, std, int(bad.sum()))
        bad = np.abs(out) > 2 * std
    return out


_BY_NAME = {
    "zeros": Zeros, "ones": Ones, "glorot_uniform": GlorotUniform, "glorot_normal": GlorotNormal,
    "he_uniform": HeUniform, "he_normal": HeNormal,
}
_BY_CLASS = {cls.__name__: cls for cls in _BY_NAME.values()}


def get(init) -> Initializer:
    """An Initializer from an instance, a name ('he_uniform'...) or a config dict."""
    if isinstance(init, Initializer):
        return init
    if isinstance(init, dict):
        return _BY_CLASS[init["class"]](seed=init.get("seed"))
    if isinstance(init, str) and init in _BY_NAME:
        return _BY_NAME[init]()
    raise InputError(f"unknown initializer {init!r} (known: {', '.join(_BY_NAME)})")
