"""All ops, registered on import. ``get_op(name)`` and ``REGISTRY`` are the way in."""

from irc.ir.ops.registry import REGISTRY, Attr, OpDef, Trait, defop, get_op  # noqa: F401
from irc.ir.ops import elementwise, linalg, conv, pool, norm, resize, shape, reduce, index, fused, quant, grad  # noqa: F401,E401
