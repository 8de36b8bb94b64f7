"""The CPU target's JIT build: a lowered graph becomes object code, linked into the process.

Object code comes from the compile cache (compile_cache.py) when an entry matches the graph,
target machine and options, and the build then runs no LLVM pass at all; otherwise the graph is
generated, optimised and emitted (in parts on several cores when it is large: see
parallel_codegen.py), and the objects stored for the next process. The memory plan
is recomputed from the graph either way (it is cheap and says where each weight goes) and
checked against the sizes the entry was built for.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import llvmlite.binding as llvm

from irc.ir.graph import Graph
from irc.ir.printer import print_graph
from irc.passes.memory_plan import MemoryPlan
from irc.targets.cpu import codegen, compile_cache, llvm_env, parallel_codegen
from irc.targets.cpu.kernels.registry import CpuContext
from irc.targets.llvm import machine

#: target options that change no code: the cache switch itself, and calibration data (its
#: effect, the quantization scales, is part of the lowered graph)
_NOT_IN_KEY = ("cache", "calib")


@dataclass
class ObjectCode:
    """A graph's object code (one object, or one per part of parallel_codegen.py) and what
    loading it needs."""

    objects: list[bytes]
    plan: MemoryPlan
    entry: str
    threads_symbol: str
    cached: bool  # True when it came from the compile cache


def cache_key(graph: Graph, spec: llvm_env.CpuSpec, tm: llvm.TargetMachine, threads: int,
              options: dict[str, Any]) -> str | None:
    """The compile cache key of ``graph`` built with these settings; None when the graph has no
    text form to key it by (it is then always compiled)."""
    try:
        text = print_graph(graph)
    except TypeError:
        return None
    return compile_cache.make_key({
        "target": "cpu-jit", "graph": text, "cpu": spec.name, "features": spec.features, "triple": tm.triple,
        "data_layout": str(tm.target_data), "threads": threads,
        "options": {k: v for k, v in sorted(options.items()) if k not in _NOT_IN_KEY}})


def plan_for(graph: Graph, threads: int, vector_bits: int) -> MemoryPlan:
    """The memory plan codegen.generate makes for the same arguments."""
    codegen.check_legal(graph)
    return codegen.memory_plan_for_cpu(graph, CpuContext(threads=max(1, threads), vector_bits=vector_bits))


def generate_module(graph: Graph, prefix: str, threads: int, spec: llvm_env.CpuSpec,
                    tm: llvm.TargetMachine) -> tuple[codegen.Codegen, llvm.ModuleRef]:
    """The graph's module, generated and optimised."""
    cg = _generate(graph, prefix, threads, spec, tm)
    mod = machine.parse(str(cg.module))
    llvm_env.optimize(mod, tm)
    return cg, mod


def _generate(graph: Graph, prefix: str, threads: int, spec: llvm_env.CpuSpec,
              tm: llvm.TargetMachine) -> codegen.Codegen:
    return codegen.generate(graph, prefix=prefix, threads=threads, triple=tm.triple,
                            data_layout=str(tm.target_data), vector_bits=spec.vector_bits)


def compile_objects(graph: Graph, prefix: str, threads: int, spec: llvm_env.CpuSpec,
                    tm: llvm.TargetMachine, jobs: int | None = None) -> tuple[codegen.Codegen, list[bytes]]:
    """Generate, optimise and emit the graph's code: in parts on ``jobs`` cores (default: the
    free ones, parallel_codegen.default_jobs) when the module is large enough, else whole.
    LLVM's memory for the modules is released before returning."""
    def compile_text(text: str) -> bytes:
        mod = machine.parse(text)
        llvm_env.optimize(mod, tm)
        return tm.emit_object(mod)

    cg = _generate(graph, prefix, threads, spec, tm)
    jobs = parallel_codegen.default_jobs() if jobs is None else jobs
    parts = parallel_codegen.partition(cg.module, cg.entry_name, jobs)
    if parts is not None:
        objects = parallel_codegen.compile_parts(cg.module, parts, cg.entry_name, compile_text)
        if objects is not None:
            return cg, objects
        cg = _generate(graph, prefix, threads, spec, tm)  # a part failed: the module was changed
    return cg, [compile_text(str(cg.module))]


def object_code(graph: Graph, prefix: str, threads: int, spec: llvm_env.CpuSpec, tm: llvm.TargetMachine,
                options: dict[str, Any], use_cache: bool) -> ObjectCode:
    """Object code for ``graph``: from the cache when it holds it, else compiled (and stored)."""
    store = compile_cache.CompileCache() if use_cache else None
    key = cache_key(graph, spec, tm, threads, options) if store is not None else None
    if key is not None:
        entry = store.get(key)
        if entry is not None:
            plan = plan_for(graph, threads, spec.vector_bits)
            m = entry.meta
            sizes = m.get("objects", [])
            if ((m.get("arena_bytes"), m.get("weights_bytes")) == (plan.arena_bytes, plan.weights_bytes)
                    and sum(sizes) == len(entry.obj)):
                offsets = [sum(sizes[:k]) for k in range(len(sizes) + 1)]
                objects = [entry.obj[a:b] for a, b in zip(offsets, offsets[1:])]
                return ObjectCode(objects, plan, m["entry"], m["threads_symbol"], cached=True)
    cg, objects = compile_objects(graph, prefix, threads, spec, tm)
    if key is not None:
        store.put(key, compile_cache.Entry({"entry": cg.entry_name, "threads_symbol": cg.threads_global,
                                            "arena_bytes": cg.plan.arena_bytes, "weights_bytes": cg.plan.weights_bytes,
                                            "objects": [len(o) for o in objects]}, b"".join(objects)))
    return ObjectCode(objects, cg.plan, cg.entry_name, cg.threads_global, cached=False)
