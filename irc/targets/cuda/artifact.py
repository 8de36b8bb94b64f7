"""What ``irc compile --target cuda -o DIR`` writes (no GPU needed), atomically:

    DIR/<model>.<sm_XY>.ptx     one PTX module per architecture
    DIR/<model>.<sm_XY>.plan.json  its launch plan (kernels, grids, blocks, shared bytes, arguments)
    DIR/<model>.weights.bin     the weights blob, laid out as the plans' ``param`` offsets say
    DIR/ptxas.txt               ptxas's register and spill report per kernel, when ptxas is present
    DIR/README.md               what the files are and how to launch them
"""

from __future__ import annotations

import os
from pathlib import Path

from irc.errors import TargetError
from irc.fileio import atomic_dir
from irc.targets.cuda import ptx as ptxmod

README = """# {name}: CUDA build by irc

Compiled for {archs}. Nothing here needs irc to run: any CUDA driver API program can load a
PTX module (`cuModuleLoadData`) and follow a plan.

| file | what it is |
| --- | --- |
{rows}

## Memory

Allocate once, per plan:
- an **arena** of `arena_bytes` ({arena} bytes): every intermediate value lives at its `offset`;
- the **weights** (`weights_bytes` = {weights} bytes): copy `{name}.weights.bin` in once;
- one buffer per graph input and output (`inputs`, `outputs`: name, shape, dtype, bytes).

Inputs:
{inputs}
Outputs:
{outputs}

## Running

For each entry of `steps`, in order, launch kernel `kernel` with grid `grid`, block `block`
and `shared_bytes` of shared memory (already static in the kernel: pass 0 as dynamic shared
memory). Its parameters are device pointers, one per entry of `args` (outputs first, then
inputs): `region` is `arena`, `param` (weights), `input` or `output`, plus `offset` bytes (for
input/output, `index` picks the buffer). All launches go on one stream; a graph of them can
be captured and replayed.

Peak live activation bytes: {peak}. Element types are row-major, C-contiguous.
"""


def write(exe, path) -> list[Path]:
    """Write the build for every architecture of ``exe`` into directory ``path``."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise TargetError(f"{path} exists and is not a directory; the cuda target writes a directory")
    g = exe.graph
    name = _stem(g.name)
    codes = [exe.code(a) for a in exe.archs]
    with atomic_dir(path) as tmp:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o777 & ~umask)  # a build directory, readable as any other the user makes
        files: list[tuple[str, str]] = []
        for c in codes:
            (tmp / f"{name}.{c.arch.name}.ptx").write_text(c.ptx)
            (tmp / f"{name}.{c.arch.name}.plan.json").write_text(c.plan.to_json())
            files.append((f"{name}.{c.arch.name}.ptx", f"PTX for {c.arch.name} (PTX ISA {c.arch.ptx[0]}.{c.arch.ptx[1]})"))
            files.append((f"{name}.{c.arch.name}.plan.json", f"launch plan for {c.arch.name}: "
                          f"{len(c.plan.steps)} launches of {len(c.plan.kernels)} kernels"))
        (tmp / f"{name}.weights.bin").write_bytes(exe.weights.tobytes())
        files.append((f"{name}.weights.bin", "weights blob"))
        if ptxmod.ptxas_path():
            (tmp / "ptxas.txt").write_text(ptxas_report(codes))
            files.append(("ptxas.txt", "ptxas: registers, spills and shared memory per kernel"))
        p = codes[0].plan
        rows = "\n".join(f"| `{f}` | {what} |" for f, what in files + [("README.md", "this file")])
        io = lambda rs: "\n".join(f"- `{r['name']}`: {r['dtype']}{r['shape']} ({r['nbytes']} bytes)" for r in rs)  # noqa: E731
        (tmp / "README.md").write_text(README.format(
            name=name, archs=", ".join(c.arch.name for c in codes), rows=rows, arena=p.arena_bytes,
            weights=p.weights_bytes, inputs=io(p.inputs), outputs=io(p.outputs), peak=p.peak_live_bytes))
        written = [path / f for f, _ in files] + [path / "README.md"]
    return written


def ptxas_report(codes) -> str:
    lines = []
    for c in codes:
        r = ptxmod.ptxas(c.ptx, c.arch)
        lines.append(f"# {c.arch.name} (assembled for {r.assembled_for})")
        lines.append(f"{'kernel':<40}{'regs':>6}{'spill st':>10}{'spill ld':>10}{'smem':>8}  kind")
        for k, rep in sorted(r.kernels.items()):
            lines.append(f"{k:<40}{rep.registers:>6}{rep.spill_stores:>10}{rep.spill_loads:>10}"
                         f"{rep.shared_bytes:>8}  {c.kinds.get(k, '')}")
        lines.append("")
    return "\n".join(lines)


def _stem(name: str) -> str:
    import re

    return re.sub(r"[^\w.-]", "_", name) or "model"
