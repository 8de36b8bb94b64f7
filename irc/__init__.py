"""irc: a neural-network compiler from ONNX or Python to CPU, CUDA and FPGA.

Importing irc loads nothing heavy: the IR and irc.compile on first use of their names (so that
``irc --version`` and ``irc --help`` start at once), onnx by the entry points that read or write
ONNX, and each target by its first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

__version__ = "0.1.0"

from irc.errors import IRCError  # noqa: F401

if TYPE_CHECKING:
    from irc.api import CompiledModel, compile  # noqa: F401
    from irc.ir import DType, Graph, GraphBuilder, TensorType  # noqa: F401

#: names imported on first use: name -> module
_LAZY = {"compile": "irc.api", "CompiledModel": "irc.api", "DType": "irc.ir", "Graph": "irc.ir",
         "GraphBuilder": "irc.ir", "TensorType": "irc.ir"}


def trace(fn, *examples, **kwargs) -> Graph:
    """Trace ``fn`` on example inputs into a Graph; see :func:`irc.frontend.trace.trace`."""
    from irc.frontend.trace import trace as _trace

    return _trace(fn, *examples, **kwargs)


def load_onnx(src, shapes=None) -> Graph:
    """Import an ONNX model (path, bytes or ModelProto) as an irc Graph."""
    from irc.frontend.onnx import import_onnx

    return import_onnx(src, shapes)


def save_onnx(graph: Graph, path) -> None:
    """Write an irc Graph as an ONNX model (atomically)."""
    from irc.frontend.onnx import save_onnx as _save

    _save(graph, path)


def load(path):
    """Load a model saved by ``irc compile --target cpu -o model.so`` (or CompiledModel.save)."""
    from irc.targets.cpu.aot import load_shared_library

    return load_shared_library(path)


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    # irc.CUDA (multi-GPU configuration) imports the cuda target only when used
    if name == "CUDA":
        from irc.targets.cuda.multi import CUDA

        return CUDA
    raise AttributeError(f"module 'irc' has no attribute {name!r}")
