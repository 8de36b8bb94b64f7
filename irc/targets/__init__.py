"""Target registry. Targets import lazily so that CUDA, OpenCL and MPI stay optional."""

from __future__ import annotations

import functools
import importlib

from irc.errors import InputError, TargetError
from irc.passes.registry import register_pass_loader

#: name -> (module, class, extra that provides its dependencies)
_TARGETS: dict[str, tuple[str, str, str | None]] = {
    "interp": ("irc.targets.interp", "InterpTarget", None),
    "cpu": ("irc.targets.cpu", "CpuTarget", None),
    "cuda": ("irc.targets.cuda", "CudaTarget", "cuda"),
    "fpga": ("irc.targets.fpga", "FpgaTarget", None),
}

#: Passes a target owns -> the module that registers them, imported when the pass is first named.
_TARGET_PASSES: dict[str, str] = {
    "im2col_gemm": "irc.targets.cpu.lowering",
    "int8_gemm": "irc.targets.cpu.lowering",
    "dneuro_check": "irc.targets.dneuro.flow",
}
for _name, _module in _TARGET_PASSES.items():
    register_pass_loader(_name, functools.partial(importlib.import_module, _module))


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
