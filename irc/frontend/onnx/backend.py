"""irc as an ONNX backend (``onnx.backend.base.Backend``), so ONNX's conformance suite and any
ONNX test harness run against irc unchanged. ``target=`` picks the irc target ("interp" by
default; "cpu" and others as they exist)."""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
from onnx.backend.base import Backend, BackendRep

import irc
from irc.api import CompiledModel


class IRCBackendRep(BackendRep):
    def __init__(self, compiled: CompiledModel):
        self.compiled = compiled

    def run(self, inputs: Any, **kwargs: Any) -> tuple[np.ndarray, ...]:
        if isinstance(inputs, np.ndarray):
            inputs = [inputs]
        return tuple(self.compiled.run(inputs if isinstance(inputs, dict) else list(inputs)))


class IRCBackend(Backend):
    @classmethod
    def prepare(cls, model: onnx.ModelProto, device: str = "CPU", target: str = "interp", **kwargs: Any):
        """Import and compile; an unsupported op raises an IRCError here, not at run."""
        super().prepare(model, device, **kwargs)
        compiled = irc.compile(model, target=target, **kwargs)
        # Dynamic shapes or inputs whose values the import needs (Reshape's shape as a graph
        # input...): the model compiles at the first run, for the data it brings; import it now
        # anyway to refuse unsupported ops at prepare time, as the backend interface promises.
        compiled.check_importable()
        return IRCBackendRep(compiled)

    @classmethod
    def run_model(cls, model: onnx.ModelProto, inputs: Any, device: str = "CPU", **kwargs: Any):
        return cls.prepare(model, device, **kwargs).run(inputs)

    @classmethod
    def supports_device(cls, device: str) -> bool:
        return device.upper().startswith("CPU")


prepare = IRCBackend.prepare
run_model = IRCBackend.run_model
supports_device = IRCBackend.supports_device
