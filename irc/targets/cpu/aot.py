"""Ahead-of-time build of the CPU target: a shared library with a C header.

``write_shared_library`` turns a compiled graph into ``<name>.so`` and ``<name>.h``:
object code emitted by llvmlite's target machine (position independent), the weights embedded
by an assembler ``.incbin`` (fast even for hundreds of megabytes), linked by the system C
compiler against libm; the library carries its own copy of the thread pool (thread_pool.py).
Both files appear atomically, the library first: a kill between the two renames leaves a new
library beside the old header, never an old library behind a new header. The build folder
(``irc-aot-<pid>-*`` in the temporary directory) is removed however the build ends (a killed
build's by the next one, irc.fileio.scratch_dir).

The C ABI (every symbol is prefixed with the model's name, so several models link together):

    int64_t <p>_workspace_size(void);     bytes of scratch memory one run needs
    void   *<p>_alloc_workspace(void);     64-byte aligned, zeroed; free with <p>_free_workspace
    void    <p>_free_workspace(void *);
    void    <p>_set_num_threads(int32_t);  threads of the pool used by parallel loops
    int32_t <p>_run(const void *const *inputs, void *const *outputs, void *workspace);
    const char *<p>_metadata(void);        JSON: names, shapes and dtypes of inputs and outputs

``load_shared_library`` (``irc.load``) opens such a library from Python.
"""

from __future__ import annotations

import ctypes
import json
import os
import shutil
import subprocess
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from llvmlite import ir

from irc.errors import InputError, TargetError
from irc.fileio import atomic_path, atomic_write, scratch_dir
from irc.ir.graph import Graph
from irc.ir.interp import check_input
from irc.ir.types import DType, TensorType
from irc.targets.cpu import codegen, llvm_env, thread_pool
from irc.targets.cpu.elf_check import check_shared_library
from irc.targets.cpu.runtime import aligned_bytes, weights_blob
from irc.targets.llvm import lltypes as T
from irc.targets.llvm import machine

_C_TYPES = {
    DType.f64: "double", DType.f32: "float", DType.f16: "uint16_t", DType.bf16: "uint16_t",
    DType.i64: "int64_t", DType.i32: "int32_t", DType.i16: "int16_t", DType.i8: "int8_t",
    DType.u64: "uint64_t", DType.u32: "uint32_t", DType.u16: "uint16_t", DType.u8: "uint8_t", DType.bool: "uint8_t",
}


def c_compiler() -> str:
    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if not cc:
        raise TargetError("building a shared library needs a C compiler (cc, gcc or clang) on the PATH")
    return cc


def metadata(g: Graph, prefix: str, arena_bytes: int, isa: Sequence[str] = ()) -> dict:
    """What the library says about itself; ``isa``: the instruction-set extensions its code may
    use (llvm_env.isa_features), checked against the machine that loads it."""
    def desc(vs):
        return [{"name": v.name, "shape": list(v.shape), "dtype": v.dtype.value} for v in vs]

    return {"irc_abi": 1, "prefix": prefix, "name": g.name, "inputs": desc(g.inputs), "outputs": desc(g.outputs),
            "workspace_bytes": arena_bytes, "isa": sorted(isa)}


def _add_abi(cg: codegen.Codegen, prefix: str, meta: dict) -> None:
    """The exported wrappers around the internal entry function."""
    m = cg.module
    entry = m.globals[cg.entry_name]
    weights = ir.GlobalVariable(m, ir.ArrayType(T.I8, 0), f"{prefix}_weights")
    weights.linkage = "external"

    def fn(name, ret, args):
        f = ir.Function(m, ir.FunctionType(ret, args), f"{prefix}_{name}")
        return f, ir.IRBuilder(f.append_basic_block("entry"))

    f, b = fn("workspace_size", T.I64, [])
    b.ret(ir.Constant(T.I64, cg.plan.arena_bytes))
    def declared(name, ret, args):  # the kernels may already have declared it
        return m.globals.get(name) or ir.Function(m, ir.FunctionType(ret, args), name)

    aligned_alloc = declared("aligned_alloc", T.PTR, [T.I64, T.I64])
    memset = declared("llvm.memset.p0.i64", T.VOID, [T.PTR, T.I8, T.I64, T.I1])
    free = declared("free", T.VOID, [T.PTR])
    size = max(64, (cg.plan.arena_bytes + 63) // 64 * 64)
    f, b = fn("alloc_workspace", T.PTR, [])
    p = b.call(aligned_alloc, [ir.Constant(T.I64, 64), ir.Constant(T.I64, size)])
    with b.if_then(b.icmp_unsigned("!=", p, ir.Constant(T.PTR, None))):
        b.call(memset, [p, ir.Constant(T.I8, 0), ir.Constant(T.I64, size), ir.Constant(T.I1, 0)])
    b.ret(p)
    f, b = fn("free_workspace", T.VOID, [T.PTR])
    b.call(free, [f.args[0]])
    b.ret_void()
    f, b = fn("set_num_threads", T.VOID, [T.I32])
    n = b.select(b.icmp_signed("<", f.args[0], ir.Constant(T.I32, 1)), ir.Constant(T.I32, 1), f.args[0])
    b.store(n, m.globals[cg.threads_global])
    b.ret_void()
    f, b = fn("run", T.I32, [T.PTR, T.PTR, T.PTR])
    b.call(entry, [f.args[0], f.args[1], f.args[2], weights])
    b.ret(ir.Constant(T.I32, 0))
    text = bytearray(json.dumps(meta).encode() + b"\0")
    g = ir.GlobalVariable(m, ir.ArrayType(T.I8, len(text)), f"{prefix}_metadata_json")
    g.initializer = ir.Constant(ir.ArrayType(T.I8, len(text)), text)
    g.global_constant = True
    g.linkage = "internal"
    f, b = fn("metadata", T.PTR, [])
    b.ret(g)


def header(g: Graph, prefix: str, arena_bytes: int) -> str:
    guard = f"{prefix.upper()}_IRC_H"
    lines = [
        f"/* {prefix}.h: C interface of the irc-compiled model '{g.name}'.",
        " *",
        " * Usage:",
        f" *   void *ws = {prefix}_alloc_workspace();",
        f" *   const void *in[{prefix.upper()}_NUM_INPUTS] = {{...}};   (C-contiguous arrays, shapes below)",
        f" *   void *out[{prefix.upper()}_NUM_OUTPUTS] = {{...}};       (caller-allocated, shapes below)",
        f" *   {prefix}_run(in, out, ws);   returns 0; the workspace may be reused by later runs",
        f" *   {prefix}_free_workspace(ws);",
        " * One workspace must not be used by two runs at the same time.",
        " */",
        f"#ifndef {guard}",
        f"#define {guard}",
        "#include <stdint.h>",
        "#ifdef __cplusplus",
        'extern "C" {',
        "#endif",
        "",
        f"#define {prefix.upper()}_NUM_INPUTS {len(g.inputs)}",
        f"#define {prefix.upper()}_NUM_OUTPUTS {len(g.outputs)}",
        f"#define {prefix.upper()}_WORKSPACE_BYTES {arena_bytes}LL",
    ]
    for kind, vals in (("INPUT", g.inputs), ("OUTPUT", g.outputs)):
        for i, v in enumerate(vals):
            tag = f"{prefix.upper()}_{kind}{i}"
            dims = ", ".join(str(d) for d in v.shape) or "1"
            lines += [
                f"/* {kind.lower()} {i}: '{v.name}', {v.type} ({_C_TYPES[v.dtype]}) */",
                f"#define {tag}_RANK {len(v.shape)}",
                f"#define {tag}_SIZE {v.type.size}LL",
                f"static const int64_t {prefix}_{kind.lower()}{i}_shape[] = {{{dims}}};",
                f"typedef {_C_TYPES[v.dtype]} {prefix}_{kind.lower()}{i}_t;",
            ]
    lines += [
        "",
        f"int64_t {prefix}_workspace_size(void);",
        f"void *{prefix}_alloc_workspace(void);",
        f"void {prefix}_free_workspace(void *workspace);",
        f"void {prefix}_set_num_threads(int32_t n);",
        f"int32_t {prefix}_run(const void *const *inputs, void *const *outputs, void *workspace);",
        f"const char *{prefix}_metadata(void);",
        "",
        "#ifdef __cplusplus",
        "}",
        "#endif",
        f"#endif /* {guard} */",
        "",
    ]
    return "\n".join(lines)


def write_shared_library(g: Graph, path: str | os.PathLike, *, cpu: str = "host", threads: int = 1) -> tuple[Path, Path]:
    """Build ``path`` (a .so) and the header beside it; returns both paths."""
    from irc.targets.cpu import symbol_prefix

    path = Path(path)
    if path.suffix != ".so":
        raise InputError(f"the cpu target writes a shared library: give an output path ending in .so, not '{path}'")
    prefix = symbol_prefix(path.stem)
    spec = llvm_env.cpu_spec(cpu)
    tm = llvm_env.target_machine(spec, jit=False)
    cg = codegen.generate(g, prefix=prefix, threads=threads, triple=tm.triple, data_layout=str(tm.target_data),
                              vector_bits=spec.vector_bits)
    meta = metadata(g, prefix, cg.plan.arena_bytes, llvm_env.isa_features(cpu))
    _add_abi(cg, prefix, meta)
    if thread_pool.RUN in cg.module.globals:
        thread_pool.define_pool(cg.module, linkage="internal")
    mod = machine.parse(str(cg.module))
    llvm_env.optimize(mod, tm)
    cc = c_compiler()
    with scratch_dir("irc-aot") as tmp:
        (tmp / "model.o").write_bytes(tm.emit_object(mod))
        weights_blob(g, cg.plan)[0].tofile(tmp / "weights.bin")
        (tmp / "weights.S").write_text(
            f'\t.section .rodata\n\t.balign 64\n\t.globl {prefix}_weights\n\t.type {prefix}_weights, @object\n'
            f'{prefix}_weights:\n\t.incbin "weights.bin"\n\t.size {prefix}_weights, .-{prefix}_weights\n'
            '\t.section .note.GNU-stack,"",@progbits\n')
        _run([cc, "-c", "weights.S", "-o", "weights.o"], tmp)
        with atomic_path(path, executable=True) as so_tmp:
            _run([cc, "-shared", "-o", str(so_tmp.resolve()), "model.o", "weights.o", "-lpthread", "-lm"], tmp)
    h = atomic_write(path.with_suffix(".h"), header(g, prefix, cg.plan.arena_bytes))
    return path, h


def _run(cmd: Sequence[str], cwd: Path) -> None:
    r = subprocess.run(list(cmd), cwd=cwd, capture_output=True, text=True)
    if r.returncode != 0:
        raise TargetError(f"{os.path.basename(cmd[0])} failed: {(r.stderr or r.stdout).strip().splitlines()[-1:]}")


class SharedLibraryModel:
    """A model loaded from an irc-built shared library; called like a CompiledModel."""

    def __init__(self, path: str | os.PathLike):
        path = Path(path)
        if not path.exists():
            raise InputError(f"no such file: {path}")
        check_shared_library(path)
        try:
            lib = ctypes.CDLL(str(path.resolve()))
        except OSError as e:
            raise InputError(f"{path} is not a loadable shared library: {e}") from None
        prefix = symbol_prefix_of(lib, path)
        meta_fn = getattr(lib, f"{prefix}_metadata")
        meta_fn.restype = ctypes.c_char_p
        self.meta = json.loads(meta_fn().decode())
        self._lib = lib
        self._run = getattr(lib, f"{prefix}_run")
        self._run.restype = ctypes.c_int32
        self._run.argtypes = [ctypes.c_void_p] * 3
        self._set_threads = getattr(lib, f"{prefix}_set_num_threads")
        self._set_threads.argtypes = [ctypes.c_int32]
        self._workspace = aligned_bytes(max(int(self.meta["workspace_bytes"]), 1))
        self._lock = threading.Lock()
        self._runs_here = False  # its instruction set is checked against this machine's on the first run
        from irc.ir.graph import Value

        def vals(key):
            return [Value(d["name"], TensorType(tuple(d["shape"]), DType(d["dtype"]))) for d in self.meta[key]]

        self._inputs, self._outputs = vals("inputs"), vals("outputs")

    @property
    def input_names(self) -> list[str]:
        return [v.name for v in self._inputs]

    @property
    def output_names(self) -> list[str]:
        return [v.name for v in self._outputs]

    def set_threads(self, n: int) -> None:
        self._set_threads(int(n))

    def run(self, inputs) -> list[np.ndarray]:
        if isinstance(inputs, dict):
            missing = [n for n in self.input_names if n not in inputs]
            if missing:
                raise InputError(f"missing input(s) {', '.join(missing)}")
            inputs = [inputs[n] for n in self.input_names]
        inputs = list(inputs)
        if len(inputs) != len(self._inputs):
            raise InputError(f"got {len(inputs)} input(s); the model takes {len(self._inputs)}")
        arrays = [check_input(v, a) for v, a in zip(self._inputs, inputs)]
        outs = [np.empty(v.shape, v.dtype.numpy) for v in self._outputs]
        ins = (ctypes.c_void_p * max(len(arrays), 1))(*[a.ctypes.data for a in arrays])
        ous = (ctypes.c_void_p * max(len(outs), 1))(*[a.ctypes.data for a in outs])
        if not self._runs_here:
            self._check_isa()
        with self._lock:
            self._run(ins, ous, self._workspace.ctypes.data)
        return outs

    def _check_isa(self) -> None:
        """InputError if the library's code uses instructions this machine lacks (SIGILL otherwise)."""
        missing = sorted(set(self.meta.get("isa", ())) - llvm_env.isa_features("host"))
        if missing:
            raise InputError(f"the library was built for a CPU with {', '.join(missing)}, which this machine "
                             f"lacks: it cannot run here (rebuild it here with cpu=host)")
        self._runs_here = True

    def __call__(self, *args, **kwargs):
        outs = self.run(kwargs if kwargs else list(args))
        return outs[0] if len(outs) == 1 else tuple(outs)


def symbol_prefix_of(lib: ctypes.CDLL, path: Path) -> str:
    from irc.targets.cpu import symbol_prefix

    prefix = symbol_prefix(path.stem)
    if not hasattr(lib, f"{prefix}_metadata"):
        raise InputError(f"{path} is not a model built by irc (no {prefix}_metadata symbol; was it renamed?)")
    return prefix


def load_shared_library(path: str | os.PathLike) -> SharedLibraryModel:
    return SharedLibraryModel(path)
