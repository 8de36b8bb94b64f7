"""The typed dataflow IR: types, graph, op registry, builder, verifier, text form, interpreter."""

from irc.ir.builder import GraphBuilder  # noqa: F401
from irc.ir.graph import Graph, Node, Value  # noqa: F401
from irc.ir.interp import interpret  # noqa: F401
from irc.ir.ops import REGISTRY, get_op  # noqa: F401
from irc.ir.parser import parse_graph  # noqa: F401
from irc.ir.printer import all_params, print_graph  # noqa: F401
from irc.ir.types import DType, TensorType  # noqa: F401
from irc.ir.verify import verify  # noqa: F401
