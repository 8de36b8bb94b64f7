"""All ops, registered on import. ``get_op(name)`` and ``REGISTRY`` are the way in."""

from irc.ir.ops import conv, elementwise, fused, grad, index, linalg, norm, pool, quant, reduce, resize, shape  # noqa: F401,E401
from irc.ir.ops.registry import REGISTRY, Attr, OpDef, Trait, defop, get_op  # noqa: F401
