"""irc: a neural-network compiler from ONNX or Python to CPU, CUDA and FPGA."""

__version__ = "0.1.0"

from irc.api import CompiledModel, compile  # noqa: F401,E402
from irc.errors import IRCError  # noqa: F401
from irc.ir import DType, Graph, GraphBuilder, TensorType  # noqa: F401,E402


def load_onnx(src, shapes=None) -> "Graph":
    """Import an ONNX model (path, bytes or ModelProto) as an irc Graph."""
    from irc.frontend.onnx import import_onnx

    return import_onnx(src, shapes)


def save_onnx(graph: "Graph", path) -> None:
    """Write an irc Graph as an ONNX model (atomically)."""
    from irc.frontend.onnx import save_onnx as _save

    _save(graph, path)


def load(path):
    """Load a model saved by ``irc compile --target cpu -o model.so`` (or CompiledModel.save)."""
    from irc.targets.cpu.aot import load_shared_library

    return load_shared_library(path)


from irc import trace  # noqa: F401,E402  (irc.trace(fn, *examples) -> Graph; a callable module)


def __getattr__(name: str):
    # irc.CUDA (multi-GPU configuration) imports the cuda target only when used
    if name == "CUDA":
        from irc.targets.cuda.multi import CUDA

        return CUDA
    raise AttributeError(f"module 'irc' has no attribute {name!r}")
