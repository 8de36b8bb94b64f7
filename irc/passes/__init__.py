"""Target-independent graph passes. Importing this package registers all of them; a target's own
passes (the CPU lowering, the DNeuro check) register with their target."""

from irc.passes import (  # noqa: F401
    autodiff,
    calibrate,
    dead_code,
    flush_denormals,
    fold_batchnorm,
    fold_constants,
    fold_qdq,
    fuse,
    fuse_attention,
    fuse_elementwise,
    inline_control,
    quantize,
    recognise_activations,
)
from irc.passes.registry import PASSES, Pass, get_pass, register_pass  # noqa: F401
