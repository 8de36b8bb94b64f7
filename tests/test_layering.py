"""The package's layering, checked on the source: no import cycle between irc's modules at
import time, passes independent of targets, cuda independent of cpu, and the IR, passes and
the tracer importable without onnx."""

from __future__ import annotations

import ast
import functools
import subprocess
import sys
from pathlib import Path

import networkx as nx
import pytest

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "irc"


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in PKG.rglob("*.py")}


def _imports(path: Path, module: str, *, module_level: bool) -> set[str]:
    """irc modules that ``path`` imports: all of them, or only those run when it is imported
    (statements outside function bodies)."""
    tree = ast.parse(path.read_text(), str(path))
    is_pkg = path.name == "__init__.py"
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if module_level and isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                continue
            if isinstance(child, ast.Import):
                found.update(a.name for a in child.names)
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    anchor = module.split(".")[: len(module.split(".")) - child.level + (1 if is_pkg else 0)]
                    base = ".".join(anchor + ([base] if base else []))
                for a in child.names:
                    sub = f"{base}.{a.name}"
                    found.add(sub if sub in MODULES else base)
            visit(child)

    visit(tree)
    return {m for m in found if m in MODULES and m != module}


@functools.cache
def _graph(*, module_level: bool) -> nx.DiGraph:
    g = nx.DiGraph()
    for name, path in MODULES.items():
        g.add_node(name)
        g.add_edges_from((name, dep) for dep in _imports(path, name, module_level=module_level))
    return g


def test_no_import_cycle_between_modules():
    cycles = [sorted(c) for c in nx.strongly_connected_components(_graph(module_level=True)) if len(c) > 1]
    assert cycles == []


@pytest.mark.parametrize("importer, forbidden", [
    ("irc.passes", "irc.targets"),
    ("irc.ir", "irc.targets"),
    ("irc.ir", "irc.passes"),
    ("irc.ir", "irc.frontend"),
    ("irc.targets.cuda", "irc.targets.cpu"),
])
def test_layer_imports_nothing_from(importer, forbidden):
    g = _graph(module_level=False)
    bad = sorted((a, b) for a, b in g.edges
                 if (a == importer or a.startswith(importer + "."))
                 and (b == forbidden or b.startswith(forbidden + ".")))
    assert bad == []


def test_ir_passes_and_tracer_import_without_onnx():
    code = ("import sys; sys.modules['onnx'] = None\n"
            "import irc, irc.ir, irc.ir.interp, irc.passes, irc.passes.autodiff, irc.frontend.trace\n"
            "g = irc.trace(lambda x: x * 2.0, __import__('numpy').ones(3, 'float32'))\n"
            "print(len(g.nodes))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "1"
