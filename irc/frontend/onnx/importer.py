"""ONNX -> irc Graph.

Static shapes are bound first (from the model, or from ``shapes`` for dynamic dimensions);
then every node goes through its import rule. Nodes whose inputs are all known are evaluated
on the spot, which folds shape-computation subgraphs (Shape -> Gather -> Concat -> Reshape) into
the constant attributes irc ops need. Unsupported ops are collected first and refused in one error.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import onnx
from onnx import numpy_helper

from irc.errors import InputError, IRCError, ModelError, UnsupportedOpError
from irc.frontend.onnx import rules_all, validate  # noqa: F401  (rules_all fills the rule tables)
from irc.frontend.onnx.load import load_model
from irc.frontend.onnx.opset import default_opset
from irc.frontend.onnx.rules import IMPORT_RULES, NodeContext, dtype_from_onnx
from irc.ir.builder import GraphBuilder
from irc.ir.graph import Graph, Value
from irc.ir.types import TensorType
from irc.passes.dead_code import eliminate_dead_code

Shapes = Mapping[str, Sequence[int]]


def import_onnx(src, shapes: Shapes | None = None, *, dynamic_default: int | None = None) -> Graph:
    """The irc graph of an ONNX model (path, bytes or ModelProto).

    ``shapes`` binds input shapes (needed for dynamic dimensions); ``dynamic_default`` binds any
    remaining dynamic dimension to that size instead of refusing (``irc info`` uses 1).
    """
    return import_model(load_model(src), shapes, dynamic_default=dynamic_default)


def import_model(model: onnx.ModelProto, shapes: Shapes | None = None, *, dynamic_default: int | None = None) -> Graph:
    """``import_onnx`` of a model ``load_model`` already read and checked (checking it again
    costs more than the import on a network's weights)."""
    return _Importer(model, shapes or {}, dynamic_default).run()


def input_specs(model: onnx.ModelProto) -> list[tuple[str, list[int | str | None], int]]:
    """(name, dims, elem_type) of each data input; a dim is an int, a symbolic name, or None."""
    inits = {t.name for t in model.graph.initializer}
    out = []
    for vi in model.graph.input:
        if vi.name in inits:
            continue
        tt = vi.type.tensor_type
        dims = []
        for d in tt.shape.dim:
            if d.HasField("dim_value"):
                dims.append(d.dim_value)
            else:
                dims.append(d.dim_param or None)
        out.append((vi.name, dims, tt.elem_type))
    return out


def unsupported_ops(model: onnx.ModelProto) -> dict[str, list[str]]:
    """Op type -> names of the nodes that use it, for every op irc cannot import."""
    bad: dict[str, list[str]] = {}
    for i, n in enumerate(model.graph.node):
        key = n.op_type if n.domain in ("", "ai.onnx") else f"{n.domain}.{n.op_type}"
        if n.domain not in ("", "ai.onnx") or n.op_type not in IMPORT_RULES:
            bad.setdefault(key, []).append(n.name or (n.output[0] if n.output else f"#{i}"))
    return bad


def describe_unsupported(bad: dict[str, list[str]]) -> str:
    parts = []
    for op, nodes in sorted(bad.items()):
        shown = ", ".join(nodes[:5]) + (f" and {len(nodes) - 5} more" if len(nodes) > 5 else "")
        parts.append(f"{op} (nodes: {shown})")
    return f"unsupported op(s): {'; '.join(parts)}"


class _Importer:
    def __init__(self, model: onnx.ModelProto, shapes: Shapes, dynamic_default: int | None):
        self.model = model
        self.opset = default_opset(model)
        self.shapes = {k: tuple(int(d) for d in v) for k, v in shapes.items()}
        self.dynamic_default = dynamic_default
        g = model.graph
        onnx_names = {t.name for t in g.initializer} | {v.name for v in g.input}
        onnx_names |= {o for n in g.node for o in n.output if o}
        self.builder = GraphBuilder(g.name or "model", reserved=onnx_names)
        self.env: dict[str, Value] = {}
        self.bound: dict[str, tuple[int, ...]] = {}  # inputs whose shape the caller chose

    def lookup(self, name: str, node: str, op: str) -> Value:
        v = self.env.get(name)
        if v is None:
            raise ModelError(f"input '{name}' is not produced by any earlier node (dangling input or cycle)",
                             node=node, op=op)
        return v

    def run(self) -> Graph:
        g = self.model.graph
        bad = unsupported_ops(self.model)
        if bad:
            raise UnsupportedOpError(describe_unsupported(bad))
        if g.sparse_initializer:
            raise UnsupportedOpError("sparse initializers are not supported")
        for t in g.initializer:
            dtype_from_onnx(t.data_type, f" (initializer '{t.name}')")
            self.env[t.name] = self.builder.param(t.name, numpy_helper.to_array(t), exact=True)
        self._bind_inputs()
        self.import_nodes(g)
        outputs = self._outputs()
        graph = eliminate_dead_code(self.builder.build(*outputs, check=False))
        self._check_sizes(graph.values())
        return graph

    def import_nodes(self, g: onnx.GraphProto) -> None:
        """Every node of ``g`` through its import rule, its outputs bound in ``env`` (a
        subgraph's importer runs this too: irc/frontend/onnx/rules_control.py)."""
        used = {i for n in g.node for i in n.input} | {o.name for o in g.output}
        for i, node in enumerate(g.node):
            ctx = NodeContext(self, node)
            validate.check_node_inputs(node, i, self.env)
            made = len(self.builder.nodes), len(self.builder.params)
            try:
                outs = IMPORT_RULES[node.op_type](ctx)
            except IRCError as e:
                raise e.at(ctx.name, node.op_type) from None
            outs = self._name_outputs(node, (outs,) if isinstance(outs, Value) else tuple(outs), made)
            for i, name in enumerate(node.output):
                if not name:
                    continue
                if i < len(outs) and outs[i] is not None:
                    if name in self.env:
                        raise ModelError(f"value '{name}' is assigned twice", node=ctx.name, op=node.op_type)
                    self.env[name] = outs[i]
                elif name in used:
                    raise UnsupportedOpError(f"output {i} ('{name}') is not supported", node=ctx.name, op=node.op_type)

    def _check_sizes(self, values) -> None:
        """Values within the size limit; over it, an InputError when input shapes were bound by the
        caller (they made it too large), else a ModelError."""
        error = InputError if self.bound else ModelError
        validate.check_bound_sizes(((v.name, v.shape, v.dtype.itemsize) for v in values), self.bound, error)

    def _name_outputs(self, node: onnx.NodeProto, outs: tuple, made: tuple[int, int]) -> tuple:
        """Values this node created take their ONNX output names (aliases keep theirs)."""
        b = self.builder
        new = {v for n in b.nodes[made[0]:] for v in n.outputs} | set(list(b.params)[made[1]:])
        renamed = list(outs)
        for i, name in enumerate(node.output[: len(outs)]):
            v = outs[i]
            if name and v is not None and v in new and name not in b._names:
                renamed[i] = b.rename(v, name)
        return tuple(renamed)

    def _bind_inputs(self) -> None:
        specs = input_specs(self.model)
        names = {s[0] for s in specs}
        unknown = sorted(set(self.shapes) - names)
        if unknown:
            raise InputError(f"shape given for unknown input(s) {', '.join(unknown)}; "
                             f"the model's inputs are {', '.join(sorted(names)) or 'none'}")
        for name, dims, elem in specs:
            dtype = dtype_from_onnx(elem, f" (input '{name}')")
            shape = self._shape_of(name, dims)
            if name in self.shapes or any(not isinstance(d, int) for d in dims):
                self.bound[name] = shape
            self.env[name] = self.builder.input(name, TensorType(shape, dtype))
        self._check_sizes(self.env[name] for name, _, _ in specs)

    def _shape_of(self, name: str, dims: list) -> tuple[int, ...]:
        shown = "[" + ",".join(str(d) if d is not None else "?" for d in dims) + "]"
        if name in self.shapes:
            given = self.shapes[name]
            if len(given) != len(dims) or any(isinstance(d, int) and d != s for d, s in zip(dims, given)):
                raise InputError(f"shape {'x'.join(map(str, given))} for input '{name}' contradicts the model's {shown}")
            return given
        dynamic = [d for d in dims if not isinstance(d, int)]
        if dynamic:
            if self.dynamic_default is not None:
                return tuple(d if isinstance(d, int) else self.dynamic_default for d in dims)
            raise InputError(f"input '{name}' has dynamic shape {shown}; bind it with "
                             f"--shape {name}=... (Python: shapes={{'{name}': (...)}})")
        return tuple(dims)

    def _outputs(self) -> list[Value]:
        """Graph outputs, each a distinct node output (Identity inserted where needed)."""
        b = self.builder
        node_outs = {v for n in b.nodes for v in n.outputs}
        seen: set[Value] = set()
        outputs = []
        for vi in self.model.graph.output:
            v = self.lookup(vi.name, vi.name, "graph output")
            if v not in node_outs or v in seen:
                v = b.add_node("identity", [v], names=[vi.name + "_out"])[0]
            self._check_declared(vi, v)
            seen.add(v)
            outputs.append(v)
        return outputs

    def _check_declared(self, vi: onnx.ValueInfoProto, v: Value) -> None:
        """The declared element type and every static dimension of a graph output must agree."""
        if not vi.type.HasField("tensor_type"):
            return
        tt = vi.type.tensor_type
        if tt.elem_type:
            try:
                declared = dtype_from_onnx(tt.elem_type)
            except UnsupportedOpError:
                declared = None
            if declared != v.dtype:
                name = validate.elem_name(tt.elem_type) if declared is None else declared
                raise ModelError(f"output '{vi.name}' is declared {name} but computes to {v.type}")
        if not tt.HasField("shape"):
            return
        dims = [d.dim_value if d.HasField("dim_value") else None for d in tt.shape.dim]
        shown = "[" + ",".join("?" if d is None else str(d) for d in dims) + "]"
        if len(dims) != v.type.rank or any(d is not None and d != s for d, s in zip(dims, v.shape)):
            dt = str(v.dtype) if tt.elem_type else "?"
            raise ModelError(f"output '{vi.name}' is declared {dt}{shown} but computes to {v.type}")
