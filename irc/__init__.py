"""irc: a neural-network compiler from ONNX or Python to CPU, CUDA and FPGA."""

__version__ = "0.1.0"

from irc.errors import IRCError  # noqa: F401
