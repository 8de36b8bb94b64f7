"""Making mutant number i of a seeded run, and running one mutant in a child process.

Mutant i depends only on (seed, i): ``--seed S --only i`` rebuilds it. The child imports the
model, compiles it for each target, runs it once on zeros (dynamic dimensions bound to 1) and
reports how that ended; the parent classifies a child killed by a signal as a crash and one
still running at the timeout as a hang. Children run with a low tensor-size limit and a capped
address space so that a mutant cannot take the machine's memory."""

from __future__ import annotations

import faulthandler
import multiprocessing
import os
import resource
import tempfile
import traceback
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx

from tests.fuzz.mutate_bytes import BYTE_MUTATIONS
from tests.fuzz.mutate_struct import STRUCT_MUTATIONS
from tests.fuzz.seeds import SEEDS, seed_bytes, seed_model

CLASSES = ("compiled", "clean", "other", "crash", "hang")
#: what the children may allocate: tensors (irc's own limit) and address space in all
CHILD_TENSOR_BYTES = "64M"
CHILD_ADDRESS_SPACE = 12 << 30


@dataclass
class Mutant:
    index: int
    seed_model: str
    mutation: str
    data: bytes
    files: dict[str, bytes] = field(default_factory=dict)


@dataclass
class Outcome:
    cls: str
    detail: str = ""
    where: str = ""  # innermost frame of an unexpected exception: its class of bug


def make_mutant(seed: int, index: int, seeds: list[str]) -> Mutant:
    rng = np.random.default_rng([seed, index])
    name = seeds[int(rng.integers(len(seeds)))]
    files: dict[str, bytes] = {}
    if rng.random() < 0.6:
        fns = list(STRUCT_MUTATIONS.items())
        for _ in range(10):
            key, fn = fns[int(rng.integers(len(fns)))]
            m = seed_model(name)
            what = fn(m, rng, files)
            if what is not None:
                return Mutant(index, name, what, m.SerializeToString(), files)
            files.clear()
    key, fn = list(BYTE_MUTATIONS.items())[int(rng.integers(len(BYTE_MUTATIONS)))]
    data, what = fn(seed_bytes(name), seed_model(name), rng)
    return Mutant(index, name, f"{key}: {what}", data, files)


def write_mutant(m: Mutant, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "model.onnx"
    path.write_bytes(m.data)
    for name, data in m.files.items():
        (folder / name).write_bytes(data)
    return path


def attempt(path: Path, targets: list[str]) -> Outcome:
    """Import, compile and run ``path`` for each target, in this process."""
    from irc.errors import IRCError

    worst = Outcome("compiled")
    for target in targets:
        try:
            _run_target(path, target)
        except IRCError as e:
            if worst.cls == "compiled":
                worst = Outcome("clean", f"{target}: {type(e).__name__}: {e}"[:300])
        except Exception as e:  # anything else is a bug in irc: that is what the fuzzer looks for
            tb = traceback.extract_tb(e.__traceback__)
            inner = tb[-1] if tb else None
            where = f"{Path(inner.filename).name}:{inner.lineno} {inner.name}" if inner else "?"
            return Outcome("other", f"{target}: {type(e).__name__}: {e}"[:300], f"{type(e).__name__} at {where}")
    return worst


def _run_target(path: Path, target: str) -> None:
    if target == "info":
        from irc.cli.commands import cli

        cli.main(args=["info", str(path)], prog_name="irc", standalone_mode=False, obj=[])
        return
    import irc
    from irc.frontend.onnx import input_specs, load_model

    specs = input_specs(load_model(path))
    shapes = {name: [d if isinstance(d, int) else 1 for d in dims] for name, dims, _ in specs}
    model = irc.compile(path, target, shapes=shapes)
    inputs = [np.zeros(v.shape, v.dtype.numpy) for v in model.graph.inputs]
    model(*inputs)


def _child(path: str, targets: list[str], conn) -> None:
    os.environ["IRC_MAX_TENSOR_BYTES"] = CHILD_TENSOR_BYTES
    quiet = os.open(os.devnull, os.O_WRONLY)  # irc info's report and LLVM's messages are not the result
    os.dup2(quiet, 1)
    os.dup2(quiet, 2)
    faulthandler.disable()  # a crash is reported by its signal, not a dump on the parent's terminal
    try:
        resource.setrlimit(resource.RLIMIT_AS, (CHILD_ADDRESS_SPACE, CHILD_ADDRESS_SPACE))
    except (ValueError, OSError):
        pass
    import warnings

    warnings.simplefilter("ignore")
    out = attempt(Path(path), targets)
    conn.send((out.cls, out.detail, out.where))
    conn.close()


def run_isolated(m: Mutant, targets: list[str], timeout: float) -> Outcome:
    """``m`` tried in a forked child, with ``timeout`` seconds for all targets."""
    ctx = multiprocessing.get_context("fork")
    with tempfile.TemporaryDirectory(prefix="irc-fuzz-") as tmp:
        path = write_mutant(m, Path(tmp))
        recv, send = ctx.Pipe(duplex=False)
        p = ctx.Process(target=_child, args=(str(path), targets, send), daemon=True)
        p.start()
        send.close()
        got = recv.poll(timeout)
        result = None
        if got:
            try:
                result = recv.recv()
            except EOFError:
                result = None
        p.join(5 if result is not None else 0.5)
        if p.is_alive():
            p.kill()
            p.join()
            if result is None:
                return Outcome("hang", f"no answer after {timeout:.0f} s")
        if result is None:
            code = p.exitcode
            return Outcome("crash", f"child exited with {'signal ' + str(-code) if code and code < 0 else code}",
                           f"exit {code}")
        return Outcome(*result)


def warm_up() -> None:
    """Import what children use once in the parent, so that each fork starts warm."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import irc  # noqa: F401
        import irc.cli.commands  # noqa: F401
        from irc.frontend.onnx import import_onnx  # noqa: F401
        from irc.targets import get_target

        for t in ("interp", "cpu"):
            get_target(t)
    onnx.defs.onnx_opset_version()
    for name in SEEDS:
        seed_bytes(name)
