"""Target registry. Targets import lazily so that CUDA, OpenCL and MPI stay optional."""

from __future__ import annotations

import importlib

from irc.errors import InputError, TargetError

#: name -> (module, class, extra that provides its dependencies)
_TARGETS: dict[str, tuple[str, str, str | None]] = {
    "interp": ("irc.targets.interp", "InterpTarget", None),
    "cpu": ("irc.targets.cpu", "CpuTarget", None),
    "cuda": ("irc.targets.cuda", "CudaTarget", "cuda"),
    "fpga": ("irc.targets.fpga", "FpgaTarget", None),
}


def target_names() -> list[str]:
    return list(_TARGETS)


def get_target(name: str):
    try:
        module, cls, extra = _TARGETS[name]
    except KeyError:
        raise InputError(f"unknown target '{name}' (known: {', '.join(_TARGETS)})") from None
    try:
        mod = importlib.import_module(module)
    except ImportError as e:
        hint = f"; install it with pip install 'irc[{extra}]'" if extra else ""
        raise TargetError(f"target '{name}' needs {e.name or e}{hint}") from None
    return getattr(mod, cls)()
