"""LLVM optimisation and code generation of one module spread over several cores.

LLVM compiles a module on one thread, and llvmlite serialises every call into LLVM within a
process, so a large network's seconds of optimisation and codegen use one core. Here the
module's functions are split into parts that share nothing but declarations: the entry function
and each kernel with the functions it calls (union of call edges, the entry's excluded), packed
by instruction count. Each part is printed, parsed, optimised and emitted by its own forked
process (the parent takes the first part), and the objects are linked together. Only kernels
called from the entry cross parts, so no inlining that matters is lost; mutable globals (the
thread count) are defined in the first part and declared elsewhere, constants are copied.

Forking is cheap (copy on write) and needs no import in the children; it happens while this
thread holds llvmlite's lock, so no other thread is halfway through an LLVM call in the child. A
part that fails in its child is reported to the caller as None, which then compiles the module
whole.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable

from llvmlite import ir

#: below this many instructions a module compiles whole: forking costs more than it saves
MIN_INSTRUCTIONS = 2_000
#: most processes one module is spread over
MAX_JOBS = 8


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def default_jobs() -> int:
    """Processes worth forking: the cores this process may use, less the load already on them
    (our own process counts once), as ``make -l`` does; 1 on a busy machine."""
    cores = available_cores()
    try:
        busy = os.getloadavg()[0]
    except OSError:  # pragma: no cover - no load average
        busy = 0.0
    return max(1, min(MAX_JOBS, cores, int(cores - busy + 0.5) + 1))


def _size(f: ir.Function) -> int:
    return sum(len(b.instructions) for b in f.blocks)


def _callees(f: ir.Function) -> set[ir.Function]:
    """Functions ``f`` calls or passes as a value (a parallel body handed to the pool)."""
    out = set()
    for b in f.blocks:
        for i in b.instructions:
            for o in getattr(i, "operands", ()):
                if isinstance(o, ir.Function) and o.blocks:
                    out.add(o)
    return out


def partition(module: ir.Module, entry: str, jobs: int) -> list[list[ir.Function]] | None:
    """The defined functions of ``module`` in up to ``jobs`` parts (the entry's part first), or
    None when the module is too small to be worth splitting."""
    defined = [f for f in module.functions if f.blocks]
    sizes = {f: _size(f) for f in defined}
    if jobs < 2 or sum(sizes.values()) < MIN_INSTRUCTIONS:
        return None
    parent = {f: f for f in defined}

    def find(f):
        while parent[f] is not f:
            parent[f] = parent[parent[f]]
            f = parent[f]
        return f

    entry_fn = module.get_global(entry)
    for f in defined:
        if f is entry_fn:
            continue
        for g in _callees(f):
            if g is not entry_fn:
                parent[find(g)] = find(f)
    groups: dict[ir.Function, list[ir.Function]] = {}
    for f in defined:
        if f is not entry_fn:
            groups.setdefault(find(f), []).append(f)
    parts: list[list[ir.Function]] = [[entry_fn]] + [[] for _ in range(jobs - 1)]
    load = [sizes[entry_fn]] + [0] * (jobs - 1)
    for group in sorted(groups.values(), key=lambda g: -sum(sizes[f] for f in g)):
        k = min(range(jobs), key=load.__getitem__)
        parts[k] += group
        load[k] += sum(sizes[f] for f in group)
    parts = [p for p in parts if p]
    return parts if len(parts) > 1 else None


def _keep_only(module: ir.Module, keep: set[ir.Function], entry: str, first: bool) -> str:
    """The text of ``module`` with only ``keep`` defined (this process's copy is changed)."""
    entry_fn = module.get_global(entry)
    crossing = {g for g in _callees(entry_fn)}  # kernels: called from the entry, maybe in another part
    for f in module.functions:
        if f in crossing or f is entry_fn:
            f.linkage = ""  # visible to the other parts' objects
        if f.blocks and f not in keep:
            f.blocks = []
            f.linkage = ""
        f._clear_string_cache()
    for g in module.global_values:
        if not isinstance(g, ir.GlobalVariable):
            continue
        private = g.linkage in ("internal", "private")
        if g.global_constant and private:
            continue  # constant tables: every part has its own copy
        if first:
            if private:
                g.linkage = ""
        else:
            g.initializer = None
            g.linkage = ""
        g._clear_string_cache()
    return str(module)


def _llvm_lock():
    """llvmlite's lock around every LLVM call: a child forked while another thread holds it
    would wait for it forever."""
    import llvmlite.binding.ffi as ffi

    return getattr(ffi.lib, "_lock", None) or contextlib.nullcontext()


def compile_parts(module: ir.Module, parts: list[list[ir.Function]], entry: str,
                  compile_text: Callable[[str], bytes]) -> list[bytes] | None:
    """Object code of every part, ``compile_text`` (IR text -> object) run in parallel: the
    parent compiles the first part, forked children the others. ``module`` is left changed
    (only the first part defined). None when a child failed."""
    with tempfile.TemporaryDirectory(prefix="irc-codegen-") as tmp:
        children = []
        for k, part in enumerate(parts[1:], start=1):
            path = os.path.join(tmp, f"part{k}.o")
            with _llvm_lock():  # no other thread is inside LLVM while the child is made
                pid = os.fork()
            if pid == 0:  # the child: compile, write, leave without running any Python clean-up
                status = 1
                try:
                    obj = compile_text(_keep_only(module, set(part), entry, first=False))
                    with open(path, "wb") as f:
                        f.write(obj)
                    status = 0
                finally:
                    os._exit(status)
            children.append((pid, path))
        try:
            objects = [compile_text(_keep_only(module, set(parts[0]), entry, first=True))]
        finally:
            statuses = [os.waitpid(pid, 0)[1] for pid, _ in children]
        if any(s != 0 for s in statuses):
            return None
        for _, path in children:
            with open(path, "rb") as f:
                objects.append(f.read())
    return objects
