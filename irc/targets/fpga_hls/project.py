"""The Vitis project on disk: sources, host programs, build files, test vectors, report.

Written into a temporary folder and swapped into place at the end (irc.fileio.atomic_dir), so
an interrupted or failed write never leaves half a project. Text templates are in templates/,
with ``{{name}}`` fields that ``fill`` replaces.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from irc.fileio import atomic_dir
from irc.ir.graph import Value
from irc.ir.printer import print_graph
from irc.targets.fpga_hls import render, xrt_host
from irc.targets.fpga_hls.connectivity import place, render_cfg
from irc.targets.fpga_hls.csim import format_results, write_vectors
from irc.targets.fpga_hls.pragmas import DATAFLOW_KINDS

_FIELD = re.compile(r"\{\{(\w+)\}\}")


def fill(name: str, **values) -> str:
    """Template ``name`` with every {{field}} replaced; KeyError for a field not given."""
    text = (render.TEMPLATES / name).read_text()
    return _FIELD.sub(lambda m: str(values[m.group(1)]), text)


def _buffers(exe) -> list[tuple[Value, str]]:
    """Every device buffer in a stable order with its role: params, inputs, outputs, internal."""
    plan = exe.kernel_plan
    g = exe.graph
    used = []
    for k in plan.kernels:
        for a in k.args:
            b = plan.buffer_of(a.value)
            if b not in used:
                used.append(b)
    outs = [plan.buffer_of(v) for v in g.outputs]
    for v in list(g.inputs) + outs:
        if v not in used:
            used.append(v)
    role = {}
    for v in used:
        if v in g.params:
            role[v] = "param"
        elif v in g.inputs:
            role[v] = "input"
        elif v in outs:
            role[v] = "output"
        else:
            role[v] = "internal"
    order = {"param": 0, "input": 1, "output": 2, "internal": 3}
    return sorted(((v, role[v]) for v in used), key=lambda vr: order[vr[1]])


def _fname(v: Value) -> str:
    return re.sub(r"\W", "_", v.name)


def _dtype(exe, v: Value) -> np.dtype:
    return exe.precision.storage if v.dtype.is_float else v.dtype.numpy


def _device_outputs(exe, values) -> dict | None:
    """The outputs the kernels' C++ computes on the sample input (fixed point, when g++ and the
    ap_types headers are there), else None."""
    from irc.targets.fpga_hls import toolchain

    if exe.precision.kind != "fixed" or toolchain.gxx() is None or \
            toolchain.find_ap_include(exe.options.get("ap_include")) is None:
        return None
    outs = exe.emulator().run([values[v] for v in exe.graph.inputs])
    return {exe.kernel_plan.buffer_of(v): o for v, o in zip(exe.graph.outputs, outs)}


def write_project(exe, path: Path) -> Path:
    """Write the whole project for executable ``exe`` at ``path``; returns ``path``."""
    from irc.targets.fpga_hls.accuracy import network_tolerance

    plan, prec, board, model = exe.kernel_plan, exe.precision, exe.board, exe.model_name
    clock = exe.options["clock_mhz"]
    values = exe.reference_values()
    buffers = _buffers(exe)
    index = {v: i for i, (v, _) in enumerate(buffers)}
    atol, rtol = network_tolerance(exe, values)
    expected: dict = {}
    device_exact = _device_outputs(exe, values)
    if device_exact is not None:
        # fixed point: the worst-case bound grows layer by layer; where g++ can run the kernels,
        # the board is held to what their C++ computes instead (one ulp of libm leeway)
        expected, atol, rtol = device_exact, 2 * prec.ulp, 0.0
    with atomic_dir(path) as root:
        (root / "kernels").mkdir()
        for name, text in exe.sources.headers.items():
            (root / "kernels" / name).write_text(text)
        for name, text in exe.sources.kernels.items():
            (root / "kernels" / f"{name}.cpp").write_text(text)
        (root / "tests").mkdir()
        for name, text in exe.sources.testbenches.items():
            (root / "tests" / f"{name}_tb.cpp").write_text(text)
        write_vectors(plan, prec, values, root / "vectors")
        # weights and the whole-network test
        (root / "weights").mkdir()
        manifest_buffers = []
        for v, role in buffers:
            entry = {"name": v.name, "shape": list(v.shape), "dtype": str(_dtype(exe, v)), "role": role,
                     "bytes": int(v.type.size * _dtype(exe, v).itemsize)}
            if role == "param":
                entry["file"] = f"weights/{_fname(v)}.bin"
                (root / entry["file"]).write_bytes(prec.to_device(values[v]).astype(_dtype(exe, v)).tobytes())
            elif role == "input":
                entry["file"] = f"vectors/input_{_fname(v)}.bin"
                (root / entry["file"]).write_bytes(prec.to_device(values[v]).tobytes())
            elif role == "output":
                entry["file"] = f"vectors/output_{_fname(v)}.expected.bin"
                want = expected.get(v, values[v])
                want = want.astype(np.int64 if v.dtype.name == "i64" else np.float32)
                (root / entry["file"]).write_bytes(np.ascontiguousarray(want).tobytes())
            manifest_buffers.append(entry)
        kernels_manifest = [{"name": k.name, "op": k.node.op, "node": k.label, "parallelism": k.parallelism,
                             "args": [index[plan.buffer_of(a.value)] for a in k.args]} for k in plan.kernels]
        fmt = {"name": prec.name, "kind": prec.kind, "width": prec.bits, "frac": prec.frac if prec.kind == "fixed" else 0,
               "storage": str(prec.storage)}
        inputs = [{"name": v.name, "buffer": index[plan.buffer_of(v)], "shape": list(v.shape),
                   "file": f"vectors/input_float_{_fname(v)}.bin"} for v in exe.graph.inputs]
        for v in exe.graph.inputs:
            (root / f"vectors/input_float_{_fname(v)}.bin").write_bytes(
                np.ascontiguousarray(values[v], np.float32).tobytes())
        outputs = [{"name": v.name, "buffer": index[plan.buffer_of(v)], "shape": list(v.shape),
                    "expected": f"vectors/output_{_fname(plan.buffer_of(v))}.expected.bin",
                    "expected_dtype": "int64" if v.dtype.name == "i64" else "float32",
                    "atol": atol, "rtol": rtol} for v in exe.graph.outputs]
        manifest = {"model": model, "board": board.name, "platform": exe.platform, "precision": fmt,
                    "buffers": manifest_buffers, "kernels": kernels_manifest, "inputs": inputs, "outputs": outputs}
        (root / "model.json").write_text(json.dumps(manifest, indent=1) + "\n")
        (root / "model.ir").write_text(print_graph(exe.graph))
        # host programs
        (root / "host").mkdir()
        kind = {"float32": "F32", "fixed": "FIXED", "int8": "F32"}[prec.kind]
        rows = []
        for (v, role), entry in zip(buffers, manifest_buffers):
            k = "I64" if v.dtype.name == "i64" else kind
            file = f'"{entry["file"]}"' if "file" in entry else "nullptr"
            rows.append(f'    {{"{v.name}", {entry["bytes"]}, {role.upper()}, {file}, {k}}},')
        krows = [f'    {{"{k["name"]}", {{{", ".join(map(str, k["args"]))}}}}},' for k in kernels_manifest]
        host_fields = dict(model=model, buffers="\n".join(rows), atol=repr(atol), rtol=repr(rtol),
                           fixed_scale=repr(2.0 ** -prec.frac) if prec.kind == "fixed" else "1.0",
                           raw_t=prec.c_storage if prec.kind == "fixed" else "int32_t")
        (root / "host" / "host.cpp").write_text(fill(
            "host.cpp.in", nkernels=len(plan.kernels), kernels="\n".join(krows), **host_fields))
        (root / "host" / "host_xrt.cpp").write_text(xrt_host.render(plan, buffers, index, fill, **host_fields))
        (root / "host" / "host.py").write_text(fill("host.py.in", model=model))
        # build files
        placement = place(plan, exe.estimates, board, exe.options["fraction"])
        (root / "connectivity.cfg").write_text(render_cfg(plan, placement, board, clock))
        (root / "Makefile").write_text(fill("Makefile.in", model=model, board=board.title, platform=exe.platform,
                                            kernels=" ".join(k.name for k in plan.kernels)))
        period = f"{1e3 / clock:.3f}"
        for k in plan.kernels:
            d = root / "hls" / k.name
            d.mkdir(parents=True)
            common = dict(kernel=k.name, op=k.node.op, label=k.label, part=board.part, period=period)
            (d / "csim.tcl").write_text(fill("hls.tcl.in", step="csim", step_title="C simulation",
                                             command=f"set vectors [file normalize vectors/{k.name}]\n"
                                                     "csim_design -argv $vectors", **common))
            (d / "csynth.tcl").write_text(fill("hls.tcl.in", step="csynth", step_title="synthesis",
                                               command="csynth_design", **common))
        # report and README
        report = exe.report()
        (root / "report.txt").write_text(report)
        (root / "report.json").write_text(json.dumps(
            {"board": board.name, "precision": prec.name, "fraction": exe.options["fraction"], "clock_mhz": clock,
             "device": board.totals,
             "kernels": [{"kernel": e.kernel, "op": e.op, "node": e.node, "parallelism": e.parallelism,
                          "slr": placement.slr[e.kernel], **{r: int(v) for r, v in e.cost.items()},
                          "cycles": e.cycles} for e in exe.estimates]}, indent=1) + "\n")
        if exe.csim_results is not None:
            (root / "csim.log").write_text(format_results(exe.csim_results))
        table = ["| kernel | op | node | P | pragmas |", "| --- | --- | --- | --- | --- |"]
        for k in plan.kernels:
            prag = "m_axi x" + str(len(k.args)) + ", PIPELINE II=1, UNROLL x" + str(k.parallelism)
            if k.kind in DATAFLOW_KINDS:
                prag += ", DATAFLOW"
            table.append(f"| `{k.name}` | {k.node.op} | {k.label} | {k.parallelism} | {prag} |")
        (root / "README.md").write_text(fill(
            "README.md.in", model=model, board=board.title, platform=exe.platform, part=board.part,
            precision=prec.name, nkernels=len(plan.kernels), clock=f"{clock:g}", kernel_table="\n".join(table),
            report=report, raw_t=prec.c_storage))
    return path
