"""Shared helpers of the dataflow tests: zoo and small residual models compiled with
architecture="dataflow", and the generated C++ read back (stage constants, loop trip counts,
FIFO depths) to check the model against the code it describes."""

from __future__ import annotations

import re

import numpy as np

import irc
import irc.zoo
from irc.ir import GraphBuilder
from irc.targets.fpga_hls.dataflow import render as df_render


def calib_for(model, batches: int = 2, seed: int = 0):
    inp = model.graph.input[0]
    shape = [d.dim_value for d in inp.type.tensor_type.shape.dim]
    rng = np.random.default_rng(seed)
    return [{inp.name: rng.standard_normal(shape).astype(np.float32)} for _ in range(batches)]


def zoo_dataflow(name: str, precision: str, **kw):
    m = irc.zoo.build(name, batch=1)
    extra = {"calib": calib_for(m)} if precision == "int8" else {}
    return irc.compile(m, target="fpga", precision=precision, architecture="dataflow", **extra, **kw).executable


def residual_block(c: int = 4, hw: int = 6, downsample: bool = False, seed: int = 0):
    """conv-relu-conv + skip (1x1 stride-2 conv on the skip when ``downsample``), relu, global
    average pool, dense: a ResNet basic block at toy size, batch 1."""
    rng = np.random.default_rng(seed)
    b = GraphBuilder("resblock")
    x = b.input("x", (1, c, hw, hw))

    def conv(v, name, co, k, stride):
        w = b.param(f"w_{name}", (rng.standard_normal((co, v.shape[1], k, k)) * 0.4).astype(np.float32))
        bias = b.param(f"b_{name}", (rng.standard_normal(co) * 0.1).astype(np.float32))
        return b.op("conv", v, w, bias, pads=(k // 2,) * 4, strides=(stride, stride))

    y = b.op("relu", conv(x, "a", c * (2 if downsample else 1), 3, 2 if downsample else 1))
    y = conv(y, "b", y.shape[1], 3, 1)
    skip = conv(x, "skip", y.shape[1], 1, 2) if downsample else x
    y = b.op("relu", b.op("add", y, skip))
    y = b.op("reshape", b.op("global_average_pool", y), shape=(1, y.shape[1]))
    w = b.param("w_fc", (rng.standard_normal((y.shape[1], 5)) * 0.4).astype(np.float32))
    return b.build(b.op("gemm", y, w, b.param("b_fc", np.zeros(5, np.float32))))


def compile_graph(g, precision: str, **kw):
    extra = {}
    if precision == "int8":
        rng = np.random.default_rng(0)
        extra["calib"] = [{v.name: rng.standard_normal(v.shape).astype(np.float32) for v in g.inputs}
                          for _ in range(2)]
    return irc.compile(g, target="fpga", precision=precision, architecture="dataflow", **extra, **kw).executable


# ---------------------------------------------------------------------------- reading the C++ back

_STRUCT = re.compile(r"struct (\w+)_cfg : irc_precision \{\n(.*?)\n\};", re.S)
_CALL = re.compile(r"irc::(\w+)<(\w+?)_cfg>|irc::fork_stage<(\d+)>")
_FIFO = re.compile(r'irc::fifo<.*?> (f\d+)\("f\d+", (\d+)\);\n#pragma HLS STREAM variable=(f\d+) depth=(\d+)')


def stage_constants(top: str) -> dict[str, dict[str, int]]:
    """{stage name: {constant: value}} from every configuration struct of the top's source."""
    out = {}
    for name, body in _STRUCT.findall(top):
        consts = {}
        for decl in re.findall(r"static const int ([^;]*);", body):
            for item in decl.split(","):
                k, v = item.split("=")
                consts[k.strip()] = int(v)
        out[name] = consts
    return out


def stage_templates(top: str) -> dict[str, tuple[str, int | None]]:
    """{stage name: (library template it calls, fork pixel count)} from the stage functions."""
    out = {}
    for m in re.finditer(r"static void (s\d+\w*)\((.*?)\n\}\n", top, re.S):
        call = _CALL.search(m.group(2))
        if call.group(3):
            out[m.group(1)] = ("fork_stage", int(call.group(3)))
        else:
            out[m.group(1)] = (call.group(1), None)
    return out


def fifo_depths(top: str) -> dict[str, int]:
    """{fifo: depth}; the object's capacity and its STREAM pragma must agree."""
    out = {}
    for name, depth, pname, pdepth in _FIFO.findall(top):
        assert name == pname and depth == pdepth, (name, depth, pname, pdepth)
        out[name] = int(depth)
    return out


def pipelined_loops(template: str) -> list[tuple[str, str]]:
    """(trip count expression, II expression) of every PIPELINE'd loop of a library template."""
    lib = df_render.library_source()
    start = re.search(rf"\nvoid {template}\(", lib)
    assert start, template
    body = lib[start.start():]
    end = re.search(r"\n\}\n", body)
    body = body[:end.start()]
    loops = []
    for m in re.finditer(r"for \(int \w+ = 0; \w+ < ([^;]+); \w+\+\+\) \{\n#pragma HLS PIPELINE II=(\S+)", body):
        loops.append((m.group(1), m.group(2)))
    if not loops:  # a wrapper: the loops are those of the template it calls
        inner = re.search(r"\b(\w+)<C>\(", body)
        return pipelined_loops(inner.group(1)) if inner else []
    return loops


def evaluate(expr: str, consts: dict[str, int], frames: int = 1) -> int:
    py = re.sub(r"C::(\w+)", lambda m: str(consts[m.group(1)]), expr).replace("frames", str(frames))
    assert re.fullmatch(r"[\d\s*+()-]+", py), py
    return int(eval(py))  # noqa: S307 - arithmetic of integers only (checked above)


def inverted_residual(c: int = 4, expand: int = 3, hw: int = 6, stride: int = 1, seed: int = 0):
    """MobileNetV2's block at toy size: 1x1 expand + relu6, 3x3 depthwise (+ relu6), 1x1
    project, and the skip add where the stride is 1; then global pooling and a dense layer."""
    rng = np.random.default_rng(seed)
    b = GraphBuilder("invres")
    x = b.input("x", (1, c, hw, hw))

    def conv(v, name, co, k, stride=1, group=1):
        w = b.param(f"w_{name}", (rng.standard_normal((co, v.shape[1] // group, k, k)) * 0.4).astype(np.float32))
        bias = b.param(f"b_{name}", (rng.standard_normal(co) * 0.1).astype(np.float32))
        return b.op("conv", v, w, bias, pads=(k // 2,) * 4, strides=(stride, stride), group=group)

    e = c * expand
    y = b.op("clip", conv(x, "expand", e, 1), min=0.0, max=6.0)
    y = b.op("clip", conv(y, "dw", e, 3, stride, group=e), min=0.0, max=6.0)
    y = conv(y, "project", c, 1)
    if stride == 1:
        y = b.op("add", y, x)
    y = b.op("reshape", b.op("global_average_pool", y), shape=(1, c))
    w = b.param("w_fc", (rng.standard_normal((c, 3)) * 0.4).astype(np.float32))
    return b.build(b.op("gemm", y, w, b.param("b_fc", np.zeros(3, np.float32))))
