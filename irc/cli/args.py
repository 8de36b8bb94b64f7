"""What the ``irc`` command reads and prints: ``--shape`` and ``--opt`` values, input files,
random inputs, dynamic dimensions bound for the user, and the short forms of numbers."""

from __future__ import annotations

import re
import zipfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from irc.errors import InputError

if TYPE_CHECKING:
    import numpy as np

SHAPE_HELP = "Bind an input's shape, e.g. input=1x3x224x224 (or 1,3,224,224). Repeatable."

_DIMS = re.compile(r"\d+(?:[x,]\d+)*\Z")


def parse_shape(text: str) -> tuple[str, tuple[int, ...]]:
    """``name=1x3x224x224`` (or with commas) -> (name, dims)."""
    name, eq, dims = text.rpartition("=")
    dims = dims.strip().lower()
    if not eq or not name or not _DIMS.match(dims):
        raise InputError(f"--shape '{text}' is malformed; expected NAME=DIMS such as input=1x3x224x224")
    return name, tuple(int(d) for d in re.split("[x,]", dims))


def parse_shapes(texts: Iterable[str]) -> dict[str, tuple[int, ...]]:
    shapes: dict[str, tuple[int, ...]] = {}
    for text in texts:
        name, dims = parse_shape(text)
        if name in shapes and shapes[name] != dims:
            raise InputError(f"--shape gives input '{name}' two shapes: {x_dims(shapes[name])} and {x_dims(dims)}")
        shapes[name] = dims
    return shapes


def x_dims(dims: Sequence[int]) -> str:
    return "x".join(map(str, dims))


def bind_dynamic(specs, given: dict[str, tuple[int, ...]]) -> tuple[dict[str, tuple[int, ...]], list[str]]:
    """Shapes for every input in ``specs`` ((name, dims, elem) as input_specs gives): the ``given``
    ones as they are, others from the model with each dynamic dimension bound to 1, and a note for
    each input bound that way."""
    names = [s[0] for s in specs]
    unknown = sorted(set(given) - set(names))
    if unknown:
        raise InputError(f"--shape names unknown input(s) {', '.join(unknown)}; "
                         f"the model's inputs are {', '.join(names) or 'none'}")
    shapes = dict(given)
    notes = []
    for name, dims, _ in specs:
        if name in shapes:
            continue
        if all(isinstance(d, int) for d in dims):
            shapes[name] = tuple(dims)
            continue
        shapes[name] = tuple(d if isinstance(d, int) else 1 for d in dims)
        free = ", ".join(str(d) if d else f"#{i}" for i, d in enumerate(dims) if not isinstance(d, int))
        notes.append(f"input '{name}' has dynamic dimension(s) {free}; bound to 1 "
                     f"(use --shape {name}={x_dims(shapes[name])} to choose)")
    return shapes, notes


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def parse_value(key: str, text: str, default):
    """``text`` as the type of the option's default (guessed when the default is None)."""
    low = text.strip().lower()
    try:
        if isinstance(default, bool) or (default is None and low in _TRUE | _FALSE and not low.isdigit()):
            if low in _TRUE | _FALSE:
                return low in _TRUE
            raise ValueError
        if isinstance(default, int) or (default is None and re.fullmatch(r"[-+]?\d+", low)):
            return int(low)
        if isinstance(default, float) or (default is None and re.fullmatch(r"[-+]?(\d+\.?\d*|\.\d+)(e[-+]?\d+)?", low)):
            return float(low)
    except ValueError:
        kind = "true or false" if isinstance(default, bool) else type(default).__name__
        raise InputError(f"--opt {key}={text}: the option takes {kind}") from None
    return text


def parse_options(target: str, texts: Iterable[str]) -> dict:
    """``--opt key=value`` pairs as keywords of irc.compile: options of the target, then options
    of a pass in the pipeline those choose, each typed like its default."""
    from irc.passes.pipeline import option_defaults
    from irc.targets import get_target

    pairs = []
    for text in texts:
        key, eq, value = text.partition("=")
        key = key.strip().replace("-", "_")
        if not eq or not key:
            raise InputError(f"--opt '{text}' is malformed; expected KEY=VALUE")
        pairs.append((key, value))
    tgt = get_target(target)
    options = {k: parse_value(k, v, tgt.options[k]) for k, v in pairs if k in tgt.options}
    defaults = {**option_defaults(tgt.pipeline({**tgt.options, **options})), **tgt.options}
    for key, value in pairs:
        if key not in defaults:
            known = ", ".join(sorted(defaults)) or "none"
            raise InputError(f"unknown option '{key}' for target '{target}' (known: {known})")
        options[key] = parse_value(key, value, defaults[key])
    return options


def _load(path: str):
    import numpy as np

    p = Path(path)
    if not p.is_file():
        raise InputError(f"no such input file: {path}")
    with open(p, "rb") as f:
        magic = f.read(6)
    if magic != b"\x93NUMPY" and not magic.startswith(b"PK"):
        raise InputError(f"{path} is not a .npy or .npz file")
    try:
        return np.load(p, allow_pickle=False)
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as e:
        raise InputError(f"cannot read {path} as .npy/.npz: {' '.join(str(e).split())}") from None


def load_inputs(texts: Iterable[str], names: Sequence[str]) -> dict[str, np.ndarray]:
    """Arrays by input name from ``NAME=FILE.npy``, ``FILE.npz`` or (one-input models) ``FILE.npy``."""
    import numpy as np

    arrays: dict[str, np.ndarray] = {}

    def put(name: str, a, where: str) -> None:
        if name not in names:
            raise InputError(f"{where} gives data for '{name}', which is not an input "
                             f"(the model's inputs: {', '.join(names) or 'none'})")
        if name in arrays:
            raise InputError(f"input '{name}' is given twice")
        arrays[name] = a

    for text in texts:
        name, eq, path = text.partition("=")
        if eq and (name in names or not Path(text).exists()):
            data = _load(path)
            if not isinstance(data, np.ndarray):
                raise InputError(f"{path} is an .npz archive; give it as --input {path} (keys are input names)")
            put(name, data, f"--input {text}")
            continue
        data = _load(text)
        if isinstance(data, np.ndarray):
            if len(names) != 1:
                raise InputError(f"--input {text}: the model has {len(names)} inputs; give NAME={text}")
            put(names[0], data, f"--input {text}")
        else:
            with data:
                for key in data.files:
                    put(key, data[key], text)
    return arrays


def random_inputs(specs, shapes: dict[str, tuple[int, ...]], seed: int) -> dict[str, np.ndarray]:
    """Standard normal floats, integers in [0, 10) and random bools, for each (name, dims, elem)."""
    import numpy as np

    from irc.frontend.onnx.rules import dtype_from_onnx

    rng = np.random.default_rng(seed)
    out = {}
    for name, _, elem in specs:
        dt = dtype_from_onnx(elem, f" (input '{name}')")
        shape = shapes[name]
        if dt.is_float:
            out[name] = rng.standard_normal(shape).astype(dt.numpy)
        elif dt.is_int:
            out[name] = rng.integers(0, 10, shape).astype(dt.numpy)
        else:
            out[name] = rng.random(shape) < 0.5
    return out


def summarize(name: str, a: np.ndarray) -> str:
    """One line: name, type, and min/max/mean (with argmax per row for a batch of score vectors)."""
    import numpy as np

    from irc.ir.types import DType

    try:
        ty = f"{DType.from_numpy(a.dtype).value}[{','.join(map(str, a.shape))}]"
    except Exception:
        ty = f"{a.dtype}{list(a.shape)}"
    line = f"{name}  {ty}"
    if a.size == 0 or a.dtype == np.bool_ or a.dtype.kind not in "fiu":
        return line
    x = a.astype(np.float64)
    line += f"  min {x.min():.6g}  max {x.max():.6g}  mean {x.mean():.6g}"
    if a.dtype.kind == "f" and a.ndim == 2 and a.shape[1] > 1:
        top = np.argmax(a, axis=1)
        shown = " ".join(map(str, top[:16])) + (" ..." if len(top) > 16 else "")
        line += f"  argmax [{shown}]"
    return line


def format_count(n: int | float) -> str:
    """1234 -> '1.23K', 1.8e9 -> '1.80G'; small counts as they are."""
    for unit, scale in (("T", 1e12), ("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.2f}{unit}"
    return str(int(n))


def format_bytes(n: int) -> str:
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} B"
