"""The CPU target: LLVM IR through llvmlite, JIT-compiled in process or written as a shared
library with a C header (see aot.py). Its own lowering (im2col + packed GEMM, int8 GEMM) is in
lowering/."""

from __future__ import annotations

import os
import re
from typing import Any

from irc.errors import InputError, TargetError
from irc.ir.graph import Graph
from irc.passes.pipeline import when
from irc.targets.base import Target
from irc.targets.cpu import (
    compile_cache,
    jit_build,
    llvm_env,
    lowering,  # noqa: F401  (registers the CPU's passes)
    model_cache,
    thread_pool,
)
from irc.targets.cpu.runtime import CpuExecutable, weights_blob


def default_threads() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def max_threads() -> int:
    """The most threads a model may use: more than a few per core only adds waiting workers."""
    return max(16, 4 * default_threads())


def check_threads(threads) -> int:
    """``threads`` (None: every core) checked against 1..max_threads()."""
    if threads is None:
        return default_threads()
    if isinstance(threads, bool) or not isinstance(threads, int) or not 1 <= threads <= max_threads():
        raise InputError(f"threads must be an integer from 1 to {max_threads()} (4 per core, at least 16), "
                         f"got {threads!r}")
    return threads


def symbol_prefix(name: str) -> str:
    """A C identifier made from a model name (used for every exported symbol)."""
    s = re.sub(r"\W", "_", name) or "model"
    return s if not s[0].isdigit() else "m_" + s


class CpuTarget(Target):
    name = "cpu"
    options: dict[str, Any] = {"threads": None, "cpu": "host", "ftz": True,
                               # int8 (passes/quantize.py): quantize="int8" with calibration data calib=
                               "quantize": None, "calib": None, "calib_method": "minmax",
                               "activation_scheme": "asym", "weight_bits": 8, "int8_isa": "auto",
                               # cache=False: neither read nor write the compile cache (compile_cache.py)
                               "cache": True}
    PIPELINE = (
        "dead_code",
        "fold_constants",
        "inline_control",
        "fold_batchnorm",
        *when("quantize", "calibrate", "quantize"),
        # fold_qdq and int8_gemm leave float graphs alone; they lower quantized ones (QDQ models too).
        "fold_qdq",
        "recognise_activations",
        "fuse_attention",
        "fuse",
        "fuse_elementwise",
        "im2col_gemm",
        "int8_gemm",
        *when("ftz", "flush_denormals"),
    )

    def pass_options(self, options: dict[str, Any]) -> dict[str, Any]:
        """Facts about the CPU that lowering passes specialise on."""
        return {"vector_bits": llvm_env.cpu_spec(options.get("cpu", "host")).vector_bits}

    def build(self, graph: Graph, options: dict[str, Any]) -> CpuExecutable:
        threads = check_threads(options.get("threads"))
        use_cache = compile_cache.check_cache_option(options.get("cache", True))
        cpu = options.get("cpu", "host")
        spec = llvm_env.cpu_spec(cpu)
        tm = llvm_env.target_machine(spec, jit=True)
        prefix = symbol_prefix(graph.name)
        thread_pool.jit_pool_address(use_cache)  # linked once per process: its first build decides
        # the weights laid out before LLVM runs, so that the given arrays (when the caller keeps
        # none) are gone by then: never the passes' arrays, the blob and LLVM's memory at once
        plan = jit_build.plan_for(graph, threads, spec.vector_bits)
        weights, graph = weights_blob(graph, plan)
        code = jit_build.object_code(graph, prefix, threads, spec, tm, options, use_cache)
        if any(plan.where(v).offset != code.plan.where(v).offset for v in graph.params):
            raise TargetError(f"graph '{graph.name}': the code's weight layout differs from the memory plan's")

        def source(g: Graph):  # the executable's graph: the original's weights are not kept alive
            return jit_build.generate_module(g, prefix, threads, spec, tm)[1]

        exe = CpuExecutable(graph, code.plan, code.objects, code.entry, code.threads_symbol, threads,
                            source=source, tm=tm, cpu=cpu, cached=code.cached, weights=weights)
        exe.spec = spec
        return exe

    def model_digest(self, origin, options: dict[str, Any]) -> str | None:
        """The fingerprint of an ONNX model (path, bytes or ModelProto) that load_compiled
        takes; None when these options do not use that cache."""
        return model_cache.model_digest(origin, options)

    def load_compiled(self, source: dict[str, Any], options: dict[str, Any]):
        """The model compiled earlier from ``source`` with these options (model_cache.py):
        (executable, what store_compiled was given as extra), or None."""
        return model_cache.load(source, options)

    def store_compiled(self, source: dict[str, Any], options: dict[str, Any], exe: CpuExecutable, extra: dict) -> bool:
        return model_cache.store(source, options, exe, extra)
