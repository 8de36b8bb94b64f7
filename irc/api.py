"""The Python entry points: ``irc.compile`` and the CompiledModel it returns.

A model whose input shapes are all known is imported and compiled at once. One with dynamic
dimensions left unbound is compiled when it first sees inputs, for their shapes, and each
new shape gets its own specialization, kept in a cache. Inputs that set a shape, axes, pads or
sizes inside the model (Reshape's shape given as a graph input, ...) are treated the same way:
the model is specialized on their values, and a new value compiles a new specialization.

A target may keep whole compiled models (the cpu target: irc/targets/cpu/model_cache.py): an
ONNX model compiled before, with the same shapes and options, is then loaded without being read
as a model, imported or passed through the pipeline.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from irc.errors import InputError
from irc.ir.graph import Graph, Value
from irc.ir.interp import bind_inputs, check_input
from irc.ir.types import TensorType
from irc.ir.verify import verify
from irc.passes.pipeline import option_defaults, run_pipeline
from irc.targets import get_target

Shapes = Mapping[str, Sequence[int]]
#: The target a model is compiled for when none is named: native code for this CPU. The
#: interpreter ("interp") stays the reference every target is tested against.
DEFAULT_TARGET = "cpu"


def compile(
    model,
    target: str = DEFAULT_TARGET,
    *,
    shapes: Shapes | None = None,
    passes: Sequence[str] | None = None,
    on_pass: Callable[[str, Graph], None] | None = None,
    debug: bool = False,
    **options: Any,
) -> CompiledModel:
    """Compile ``model`` (an ONNX path, bytes or ModelProto, or an irc Graph) for ``target``.

    ``shapes`` binds input shapes ({name: shape}); unbound dynamic dimensions are bound on the
    first call. ``passes`` replaces the target's pipeline; ``on_pass(name, graph)`` sees the
    graph after every pass. Other keywords are the target's options (the CLI flags, one to one)
    and options of the passes that run (a pass takes those its fields name); any other is an
    InputError that lists the valid ones.
    """
    tgt = get_target(target)
    opts = {**tgt.options, **{k: v for k, v in options.items() if k in tgt.options}}
    pass_only = {k: v for k, v in options.items() if k not in tgt.options}
    if pass_only:
        takes = set(option_defaults(passes if passes is not None else tgt.pipeline(opts)))
        unknown = sorted(set(pass_only) - takes)
        if unknown:
            known = ", ".join(sorted(set(tgt.options) | takes)) or "none"
            raise InputError(f"unknown option(s) {', '.join(unknown)} for target '{target}' (known: {known})")
    return CompiledModel(_Source.of(model, shapes), tgt, opts, passes, on_pass, debug, pass_only)


class _Source:
    """Where graphs come from: a fixed graph, or an ONNX model imported per input shapes.

    The ONNX model is read when first needed, and let go once a static-shaped model is compiled
    (``release``): its weights then live once, in the executable. ``digest`` fingerprints the
    model's bytes for the compile cache of whole models (model_cache.py), whose hit reads no ONNX."""

    def __init__(self, graph: Graph | None, origin: Any, shapes: dict):
        self.graph = graph
        self.shapes = shapes
        #: inputs the import reads the values of (learnt from the import rules; see value_inputs)
        self.value_inputs: tuple[str, ...] = ()
        self._origin = origin  # the path, bytes or ModelProto the model is read from
        self._model = None
        self._specs: list | None = None
        #: whether the model keeps weights in files the digest does not cover
        self.external = False
        #: the model's fingerprint, as the target's cache of whole models takes it (see cache_source)
        self.digest: str | None = None

    @property
    def model(self):
        if self._model is None:
            from irc.frontend.onnx.load import load_model_info

            self._model, self.external = load_model_info(self._origin)
        return self._model

    def release(self) -> None:
        """Let the ONNX model go (it is read again if another specialization needs it)."""
        self._model = None

    @property
    def specs(self) -> list:
        """(name, dims, elem_type) of each data input of the ONNX model."""
        if self._specs is None:
            from irc.frontend.onnx import input_specs

            self._specs = input_specs(self.model)
        return self._specs

    def adopt_specs(self, specs: Sequence | None) -> None:
        """Input specs a cached compile recorded (so the model need not be read for them)."""
        self._specs = None if specs is None else [(n, list(dims), elem) for n, dims, elem in specs]

    @property
    def input_names(self) -> list[str]:
        if self.graph is not None:
            return [v.name for v in self.graph.inputs]
        return [s[0] for s in self.specs]

    @property
    def elem_types(self) -> dict:
        if self.graph is not None:
            return {v.name: v.dtype for v in self.graph.inputs}
        return {s[0]: s[2] for s in self.specs}

    @staticmethod
    def of(model, shapes: Shapes | None) -> _Source:
        shapes = {k: tuple(int(d) for d in v) for k, v in (shapes or {}).items()}
        if isinstance(model, Graph):
            if shapes:
                given = {v.name: v.shape for v in model.inputs}
                for k, s in shapes.items():
                    if given.get(k) != s:
                        raise InputError(f"shape {list(s)} for input '{k}' does not match the graph's {given.get(k)}")
            return _Source(verify(model), None, {})
        if isinstance(model, (str, os.PathLike, bytes, bytearray)) or type(model).__name__ == "ModelProto":
            return _Source(None, model, shapes)
        if hasattr(model, "to_graph"):
            return _Source(verify(model.to_graph()), None, {})
        raise InputError(f"cannot compile a {type(model).__name__}; give an ONNX path, bytes, ModelProto or Graph")

    def cache_source(self, target, options: dict, pass_options: dict) -> dict | None:
        """What a compile of this model is keyed by in ``target``'s cache of whole models: the
        model's bytes (the target's ``model_digest``), the shapes and the pass options the
        caller gave; None for a graph source or a target (or options) without that cache."""
        if self.graph is not None:
            return None
        if self.digest is None:
            self.digest = target.model_digest(self._origin, options)
            if self.digest is None:
                return None
        return {"model": self.digest, "shapes": sorted([k, list(v)] for k, v in self.shapes.items()),
                "pass_options": dict(sorted(pass_options.items()))}

    def static_shapes(self) -> dict | None:
        """Shapes of every input if they are known without seeing data, else None."""
        if self.graph is not None:
            return {v.name: v.shape for v in self.graph.inputs}
        out = {}
        for name, dims, _ in self.specs:
            if name in self.shapes:
                out[name] = self.shapes[name]
            elif all(isinstance(d, int) for d in dims):
                out[name] = tuple(dims)
            else:
                return None
        return out

    def key(self, shapes: dict, named: Mapping[str, Any] | None = None) -> tuple:
        """What tells specializations apart: every input's shape, and the value of each input
        the import reads (see value_inputs)."""
        key = tuple(tuple(shapes[n]) for n in self.input_names)
        if self.value_inputs:
            named = named or {}
            if any(named.get(n) is None for n in self.value_inputs):
                self.values(named)  # raises the InputError naming the missing input
            # the arrays as given (checked once, when a specialization is made): this runs every call
            arrays = [np.asarray(named[n]) for n in self.value_inputs]
            key += tuple((n, a.dtype.str, a.tobytes()) for n, a in zip(self.value_inputs, arrays))
        return key

    def values(self, named: Mapping[str, Any]) -> dict[str, np.ndarray]:
        """The run-time values of the inputs the import reads, checked against their declared types."""
        from irc.frontend.onnx.rules import dtype_from_onnx

        out = {}
        for name, dims, elem in self.specs:
            if name not in self.value_inputs:
                continue
            if named.get(name) is None:
                raise InputError(f"missing input '{name}': the model is compiled for its value")
            a = named[name]
            shape = tuple(np.shape(a))
            if len(shape) != len(dims) or any(isinstance(d, int) and d != s for d, s in zip(dims, shape)):
                shown = "[" + ",".join(str(d) if d is not None else "?" for d in dims) + "]"
                raise InputError(f"input '{name}' has shape {list(shape)}; the model declares {shown}")
            out[name] = check_input(Value(name, TensorType(shape, dtype_from_onnx(elem, f" (input '{name}')"))), a)
        return out

    def graph_for(self, shapes: dict, named: Mapping[str, Any] | None = None) -> Graph:
        """The graph for these input shapes (and, for inputs the import reads, these values).

        An input the import rules refuse as not constant joins ``value_inputs`` and the import
        is retried with it frozen; without ``named`` (nothing run yet) that raises _NeedsValues.
        """
        if self.graph is not None:
            return self.graph
        from irc.errors import UnsupportedOpError
        from irc.frontend.onnx import value_inputs
        from irc.frontend.onnx.importer import import_model, import_onnx

        while True:
            if named is None and self.value_inputs:
                raise _NeedsValues(self.value_inputs)
            frozen = value_inputs.freeze(self.model, self.values(named) if named is not None else {})
            given = {k: v for k, v in shapes.items() if k not in self.value_inputs}
            try:
                # the model as loaded is checked already; one with frozen values is checked again
                return import_model(frozen, given) if frozen is self.model else import_onnx(frozen, given)
            except UnsupportedOpError as e:
                more = value_inputs.needed_inputs(self.model, e) - set(self.value_inputs)
                if not more:
                    raise
                self.value_inputs = tuple(n for n in self.input_names if n in more or n in self.value_inputs)
                if named is None:
                    raise _NeedsValues(self.value_inputs) from None

    def check_importable(self) -> None:
        """Import once without data (dynamic dimensions bound to 1) so that an unsupported op is
        refused before the first run; the check ends at the first input whose value is needed."""
        if self.graph is not None:
            return
        from irc.errors import UnsupportedOpError
        from irc.frontend.onnx import value_inputs
        from irc.frontend.onnx.importer import import_model

        try:
            import_model(self.model, self.shapes, dynamic_default=1)
        except UnsupportedOpError as e:
            more = value_inputs.needed_inputs(self.model, e)
            if not more:
                raise
            self.value_inputs = tuple(n for n in self.input_names if n in more or n in self.value_inputs)


class _NeedsValues(Exception):
    """Not an error: the import needs the run-time values of these inputs, so the model compiles
    at its first run."""

    def __init__(self, names: Sequence[str]):
        super().__init__(f"the import needs the values of input(s) {', '.join(names)}")
        self.names = tuple(names)


class CompiledModel:
    """A model compiled for one target. Call it with numpy arrays (positionally, in input order,
    or by name): one output comes back as an array, several as a tuple."""

    def __init__(self, source: _Source, target, options: dict, passes, on_pass, debug: bool,
                 pass_options: dict | None = None):
        self._source = source
        self.target = target
        self.options = options
        self._pass_options = dict(pass_options or {})
        self._passes = list(passes) if passes is not None else None
        self._on_pass = on_pass
        self._debug = debug
        self._cache: dict[tuple, Any] = {}
        self._last = None
        self._last_key: tuple | None = None
        if self._load_cached():
            return
        static = source.static_shapes()
        if static is not None:
            try:
                self._specialize(static, last=True)
            except _NeedsValues:
                pass  # compiled at the first run, for the values it brings
        if self._last is not None and source.graph is None and not source.value_inputs:
            self._store_cached()
            source.release()  # the executable holds the weights; the model is read again if needed

    def _cache_source(self) -> dict | None:
        """The key of this compile in the target's cache of whole models, when it has one and
        the compile is the target's own pipeline (no custom passes, hooks or checks)."""
        if self._passes is not None or self._on_pass is not None or self._debug:
            return None
        if not hasattr(self.target, "model_digest"):
            return None
        return self._source.cache_source(self.target, self.options, self._pass_options)

    def _load_cached(self) -> bool:
        """Whether the compile was found whole in the target's cache (no import, no pass)."""
        key = self._cache_source()
        got = self.target.load_compiled(key, self.options) if key is not None else None
        if got is None:
            return False
        exe, extra = got
        self._source.adopt_specs(extra["specs"])
        shapes = self._source.static_shapes()
        if shapes is None or [v.name for v in exe.graph.inputs] != self._source.input_names:
            self._source.adopt_specs(None)  # not this model's: read them from the model
            return False
        self._last, self._last_key = exe, self._source.key(shapes)
        self._cache[self._last_key] = exe
        return True

    def _store_cached(self) -> None:
        key = self._cache_source()
        if key is not None and not self._source.external:
            self.target.store_compiled(key, self.options, self._last, {"specs": self._source.specs})

    @property
    def input_names(self) -> list[str]:
        return list(self._source.input_names)

    @property
    def output_names(self) -> list[str]:
        return [v.name for v in self.graph.outputs]

    @property
    def executable(self):
        if self._last is None:
            if self._source.value_inputs:
                raise InputError(f"input(s) {', '.join(self._source.value_inputs)} set shapes inside the model, which "
                                 "is compiled for their values when first run (call it, or irc run --input NAME=FILE.npy)")
            raise InputError("the model has dynamic input shapes and has not been run yet; pass shapes= to compile")
        return self._last

    @property
    def graph(self) -> Graph:
        """The compiled (post-pipeline) graph of the latest specialization."""
        return self.executable.graph

    @property
    def value_inputs(self) -> list[str]:
        """Inputs whose values (not only shapes) the model is specialized on: those that set a
        shape, axes, pads or sizes inside it. A new value compiles a new specialization."""
        return list(self._source.value_inputs)

    def check_importable(self) -> None:
        """Refuse an unsupported model now rather than at its first run (the onnx.backend promise).
        Nothing to do once an import ran: one that stopped at an input whose value it needs
        (value_inputs) had already refused unsupported ops."""
        if self._last is None and not self._source.value_inputs:
            self._source.check_importable()

    def _specialize(self, shapes: dict, named: Mapping[str, Any] | None = None, *, last: bool = False):
        """The executable for these shapes (and values), compiled if new. ``last``: no other
        specialization is expected (static shapes), so the ONNX model is let go once imported."""
        key = self._source.key(shapes, named)
        exe = self._cache.get(key)
        if exe is None:
            passes = self._passes if self._passes is not None else self.target.pipeline(self.options)
            # the options the caller gave a pass directly win over those the target derives
            pass_options = {**self.options, **self.target.pass_options(self.options), **self._pass_options}
            imported = [self._source.graph_for(shapes, named)]
            if last and not self._source.value_inputs:
                self._source.release()  # its weights are in the imported graph now
            # no name holds the imported or the lowered graph: each pass's input (its weights) goes
            # once it is rewritten, and the lowered weights once the target has its own copy
            exe = self.target.build(run_pipeline(imported.pop(), passes, options=pass_options,
                                                 verify_each=self._debug, on_pass=self._on_pass), self.options)
            key = self._source.key(shapes, named)  # graph_for may have learnt more value inputs
            self._cache[key] = exe
        self._last, self._last_key = exe, key
        return exe

    def run(self, inputs: Sequence[np.ndarray] | Mapping[str, np.ndarray]) -> list[np.ndarray]:
        """Outputs as a list, for inputs given as a list or a {name: array} mapping."""
        if isinstance(inputs, Mapping):
            named = dict(inputs)
        else:
            inputs = list(inputs)
            if len(inputs) != len(self.input_names):
                raise InputError(f"got {len(inputs)} input(s); the model takes {len(self.input_names)} "
                                 f"({', '.join(self.input_names)})")
            named = dict(zip(self.input_names, inputs))
        if not all(isinstance(a, np.ndarray) for a in named.values()):
            from irc.frontend.onnx.validate import run_inputs  # Python lists: declared dtype, not float64

            named = run_inputs(named, self._source.elem_types)
        exe = self._last
        if exe is None or self._source.graph is None:
            shapes = {k: np.shape(a) for k, a in named.items() if a is not None}
            missing = [n for n in self.input_names if n not in shapes]
            if missing:
                raise InputError(f"missing input(s) {', '.join(missing)}")
            if exe is None or self._source.key(shapes, named) != self._last_key:
                exe = self._specialize(shapes, named)
            for name in self._source.value_inputs:
                named.pop(name)  # frozen into this specialization
        return exe.run(bind_inputs(exe.graph, named))

    def __call__(self, *args, **kwargs):
        if args and kwargs:
            raise InputError("give inputs either positionally or by name, not both")
        outs = self.run(kwargs if kwargs else list(args))
        return outs[0] if len(outs) == 1 else tuple(outs)
