"""All ops, registered on import. ``get_op(name)`` and ``REGISTRY`` are the way in."""

from irc.ir.ops import (  # noqa: F401
    attention,
    control,
    conv,
    elementwise,
    fused,
    grad,
    index,
    linalg,
    masks,
    norm,
    numeric,
    pool,
    quant,
    reduce,
    resize,
    scan,
    scatter,
    self_gated,
    shape,
    topk,
)
from irc.ir.ops.registry import REGISTRY, Attr, OpDef, Trait, defop, get_op  # noqa: F401
