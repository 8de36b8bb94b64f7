"""C++ for the kernels: a configuration struct and a top function per kernel, filled into the
templates in templates/; the loop nests themselves are the library templates of irc_hls.h.

The epilogue activation and the element-wise ops are each one C++ expression over floats (the
table below, one line per op); fixed-point kernels convert to float for them, except where
they are exact in fixed point (no activation, relu).
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from string import Template

import numpy as np

from irc.errors import UnsupportedOpError
from irc.ir.graph import Node
from irc.targets.fpga_hls.kernels import Kernel, Plan, op_list
from irc.targets.fpga_hls.pragmas import interface_pragmas
from irc.targets.fpga_hls.precision import Precision

TEMPLATES = Path(__file__).with_name("templates")
LIBRARY = "irc_hls.h"
TYPES = "irc_types.h"


def template(name: str) -> Template:
    return Template((TEMPLATES / name).read_text())


def library_source() -> str:
    return (TEMPLATES / LIBRARY).read_text()


def c_float(x: float) -> str:
    """A float32 constant as C++ (the value the reference uses: float32(x))."""
    x = float(np.float32(x))
    if math.isinf(x):
        return "INFINITY" if x > 0 else "-INFINITY"
    if math.isnan(x):
        return "NAN"
    return f"{x!r}f"


# op -> C++ float expression of operands a (and b) and attributes (formatted by c_float)
_UNARY = {
    "relu": "{a} > 0.0f ? {a} : 0.0f",
    "leaky_relu": "{a} >= 0.0f ? {a} : {a} * {alpha}",
    "clip": "std::fmin(std::fmax({a}, {min}), {max})",
    "sigmoid": "{a} >= 0.0f ? 1.0f / (1.0f + std::exp(-{a})) : std::exp({a}) / (1.0f + std::exp({a}))",
    "tanh": "std::tanh({a})",
    "hard_sigmoid": "std::fmin(std::fmax({alpha} * {a} + {beta}, 0.0f), 1.0f)",
    "hard_swish": "{a} * std::fmin(std::fmax({a} * 0.166666672f + 0.5f, 0.0f), 1.0f)",
    "elu": "{a} > 0.0f ? {a} : {alpha} * std::expm1(std::fmin({a}, 0.0f))",
    "softplus": "{a} > 0.0f ? {a} + std::log1p(std::exp(-std::fabs({a}))) : std::log1p(std::exp(std::fmin({a}, 0.0f)))",
    "gelu": "0.5f * {a} * std::erfc({a} * -0.707106781f)",
    "gelu_tanh": "{a} / (1.0f + std::exp(-1.595769122f * ({a} + 0.044715f * {a} * {a} * {a})))",
    "silu": "{a} >= 0.0f ? {a} / (1.0f + std::exp(-{a})) : {a} * std::exp({a}) / (1.0f + std::exp({a}))",
    "exp": "std::exp({a})",
    "log": "std::log({a})",
    "sqrt": "std::sqrt({a})",
    "neg": "-{a}",
    "abs": "std::fabs({a})",
    "reciprocal": "1.0f / {a}",
    "identity": "{a}",
}
_BINARY = {
    "add": "{a} + {b}",
    "sub": "{a} - {b}",
    "mul": "{a} * {b}",
    "div": "{a} / {b}",
    "max": "std::isnan({a}) || std::isnan({b}) ? {a} + {b} : ({a} > {b} ? {a} : {b})",
    "min": "std::isnan({a}) || std::isnan({b}) ? {a} + {b} : ({a} < {b} ? {a} : {b})",
    "prelu": "{a} >= 0.0f ? {a} : {a} * {b}",
}


def op_expr(op: str, operands: list[str], attrs: dict, node: Node | None = None) -> str:
    """The C++ float expression of one element-wise op."""
    fmt = {k: c_float(v) for k, v in attrs.items() if isinstance(v, (int, float))}
    if op in _UNARY and len(operands) == 1:
        return "(" + _UNARY[op].format(a=operands[0], **fmt) + ")"
    if op in _BINARY and len(operands) == 2:
        return "(" + _BINARY[op].format(a=operands[0], b=operands[1], **fmt) + ")"
    label = node.label if node is not None else None
    raise UnsupportedOpError("no HLS expression for this element-wise op", node=label, op=op)


def epilogue_body(act: tuple[str, float, float]) -> str:
    """Body of ``static data_t out(acc_t v)``: the activation on the accumulator, rounded once."""
    name, alpha, beta = act
    if name == "none":
        return "return data_t(v);"
    if name == "relu":
        return "return data_t(v > 0 ? v : acc_t(0));"
    attrs = {"leaky_relu": {"alpha": alpha}, "clip": {"min": alpha, "max": beta},
             "hard_sigmoid": {"alpha": alpha, "beta": beta}}.get(name, {})
    return f"const float f = float(v);\n        return from_f({op_expr(name, ['f'], attrs)});"


# ---------------------------------------------------------------------------- the kernel sources

_TEMPLATES = {"dense": "dense", "conv": "conv2d", "pool": "pool2d", "global_pool": "global_pool",
              "softmax": "softmax", "argmax": "argmax", "qdense": "dense", "qconv": "conv2d", "qadd": "qadd",
              "qgpool": "global_pool", "quantize": "quantize", "dequantize": "dequantize"}

#: the numeric policy (irc_hls.h) of the templates one number format does not own, by kernel kind
_POLICIES = {"dense": "real_policy", "conv": "real_policy", "global_pool": "real_policy",
             "qdense": "int8_policy", "qconv": "int8_policy", "qgpool": "int8_policy"}


_C_TYPES = {"f32": "store_t", "u8": "uint8_t", "i8": "int8_t", "i32": "int32_t", "i64": "int64_t"}


def c_type(v) -> str:
    """The C type of a tensor's elements in device memory."""
    return _C_TYPES[v.dtype.value]


def params_of(k: Kernel, precision: Precision) -> str:
    """The C parameter list of a kernel's top function."""
    return ", ".join(f"{'' if a.output else 'const '}{c_type(a.value)}* {a.name}" for a in k.args)


def _int_traits(v, acc: bool = True) -> list[str]:
    """Shadows irc_precision's types with an integer tensor's (for pools on int8 data)."""
    t = c_type(v)
    lo = {"uint8_t": 0, "int8_t": -128}[t]
    return [f"    typedef {t} data_t;", f"    typedef {t} store_t;", "    typedef int32_t acc_t;" if acc else "",
            "    static data_t load(store_t v) { return v; }", "    static store_t store(data_t v) { return v; }",
            f"    static data_t lowest() {{ return {lo}; }}", "    static bool is_nan(data_t) { return false; }",
            "    template <class A>", "    static data_t mean(A sum, int n) { return data_t(sum / n); }"]


def _cfg(k: Kernel, precision: Precision) -> str:
    p = dict(k.params, P=k.parallelism)
    lines = [f"    static const int {', '.join(f'{n} = {v}' for n, v in p.items())};"]
    if k.kind in ("dense", "conv"):
        names = {a.name for a in k.args}
        terms = k.params["K"] if k.kind == "dense" else (
            k.params["CI"] // k.params["G"] * k.params["KH"] * k.params["KW"])
        lines.append(f"    static const bool HAS_BIAS = {str('bias' in names).lower()}, "
                     f"HAS_RES = {str('res' in names).lower()};")
        lines.append(f"    typedef {precision.c_acc(terms + 2)} acc_t;")
        lines.append(f"    static const int ACC_SPLIT = {precision.acc_split};")
        lines.append(f"    static data_t out(acc_t v) {{\n        {epilogue_body(k.extra['act'])}\n    }}")
    elif k.kind in ("pool", "global_pool"):
        x = k.inputs[0].value
        if not x.dtype.is_float:
            lines += [ln for ln in _int_traits(x) if ln]
        else:
            taps = k.params["KH"] * k.params["KW"] if k.kind == "pool" else k.params["HW"]
            lines.append(f"    typedef {precision.c_acc(taps)} acc_t;")
    elif k.kind in ("qdense", "qconv", "qgpool"):
        lines.append(f"    typedef {c_type(k.inputs[0].value)} x_t;")
        lines.append(f"    typedef {c_type(k.outputs[0].value)} y_t;")
    elif k.kind == "qadd":
        lines += [f"    typedef {c_type(k.inputs[0].value)} a_t;", f"    typedef {c_type(k.inputs[1].value)} b_t;",
                  f"    typedef {c_type(k.outputs[0].value)} y_t;"]
    elif k.kind in ("quantize", "dequantize"):
        v = k.outputs[0].value if k.kind == "quantize" else k.inputs[0].value
        lines.append(f"    typedef {c_type(v)} {'y_t' if k.kind == 'quantize' else 'x_t'};")
        lines.append(f"    static float scale() {{ return {c_float(k.extra['scale'])}; }}")
    return "\n".join(lines)


def _config(k: Kernel) -> str:
    """The template argument: the kernel's configuration, in its numeric policy where the template
    serves several number formats."""
    policy = _POLICIES.get(k.kind)
    return f"irc::{policy}<{k.name}_cfg>" if policy else f"{k.name}_cfg"


def _call_args(k: Kernel) -> str:
    names = [a.name for a in k.args]
    if k.kind in ("dense", "conv"):
        # the output comes before the epilogue's operands (dense and conv2d take those as a pack)
        return ", ".join(n if n in names else "nullptr" for n in ("x", "w", "bias", "y", "res"))
    if k.kind in ("qdense", "qconv"):
        return "x, w, bias, y, mult, shift"
    return ", ".join(names)


def render_kernel(k: Kernel, precision: Precision, model: str) -> str:
    """The .cpp of one kernel."""
    common = dict(name=k.name, op=k.node.op, label=k.label, model=model, parallelism=k.parallelism,
                  precision=precision.name, params=params_of(k, precision),
                  pragmas="\n".join(interface_pragmas(k)))
    if k.kind == "elementwise":
        return _render_elementwise(k, precision, common)
    return template("kernel.cpp.in").substitute(common, cfg=_cfg(k, precision), template=_TEMPLATES[k.kind],
                                                config=_config(k), call=_call_args(k))


def _render_elementwise(k: Kernel, precision: Precision, common: dict) -> str:
    name = k.name
    ins = k.inputs
    # calc(): the op (or the chain's program) on floats, rounded once to data_t
    nodes = op_list(k.node)
    env: dict = {}
    body = []
    if k.node.op == "elementwise_chain":
        prog = k.node.attrs["body"]
        for i, v in enumerate(prog.inputs):
            env[v] = f"f{i}"
    else:
        for i, v in enumerate(k.node.inputs):
            env.setdefault(v, f"f{i}")
    for j, n in enumerate(nodes):
        expr = op_expr(n.op, [env[v] for v in n.inputs], n.attrs, k.node)
        body.append(f"        const float t{j} = {expr};")
        env[n.outputs[0]] = f"t{j}"
    used = " ".join(body)
    convert = [f"        const float f{i} = to_f(a{i});" for i in range(len(ins)) if re.search(rf"\bf{i}\b", used)]
    body = convert + body + [f"        return from_f(t{len(nodes) - 1});"]
    index_structs = []
    reads, streams = [], []
    for i, (a, terms) in enumerate(zip(ins, k.extra["index"])):
        if terms is None:
            expr = "j"
        elif not terms:
            expr = "0"
        else:
            expr = " + ".join(f"((j / {d}) % {m}) * {s}" for d, m, s in terms)
        index_structs.append(f"struct {name}_idx{i} {{\n    static int at(int j) {{ return {expr}; }}\n}};")
        streams.append(f"    irc::stream<{name}_pack> s{i};")
        reads.append(f"    irc::read_stream<{name}_cfg, {name}_idx{i}>({a.name}, s{i});")
    streams.append(f"    irc::stream<{name}_pack> out;")
    n_in = len(ins)
    return template("elementwise.cpp.in").substitute(
        common,
        total=k.params["TOTAL"],
        calc_params=", ".join(f"data_t a{i}" for i in range(n_in)),
        calc_body="\n".join(body),
        index_structs="\n\n".join(index_structs),
        compute_params=", ".join([f"irc::stream<{name}_pack>& s{i}" for i in range(n_in)]
                                 + [f"irc::stream<{name}_pack>& out"]),
        compute_reads="\n".join(f"        const {name}_pack a{i} = s{i}.read();" for i in range(n_in)),
        calc_args=", ".join(f"a{i}.v[p]" for i in range(n_in)),
        streams="\n".join(streams),
        reads="\n".join(reads),
        compute_call=", ".join([f"s{i}" for i in range(n_in)] + ["out"]),
    )


def render_types(precision: Precision, model: str) -> str:
    if precision.kind == "float32":
        return template("types_float.h.in").substitute(model=model)
    if precision.kind == "int8":
        return template("types_float.h.in").substitute(model=model)
    if precision.kind == "fixed":
        return template("types_fixed.h.in").substitute(
            model=model, name=precision.name, width=precision.width, data_t=precision.c_data,
            store_t=precision.c_storage, msb=precision.width - 1, integer=precision.integer)
    raise UnsupportedOpError(f"precision {precision.name} has no HLS kernels yet")


def header_name(model: str) -> str:
    return f"{model}.h"


def render_header(plan: Plan, precision: Precision, model: str) -> str:
    """kernels/<model>.h: every kernel's declaration, for testbenches and C/C++ callers."""
    guard = f"IRC_{model.upper()}_H"
    lines = [f"// Kernels of model '{model}' (generated by irc), in execution order.", f"#ifndef {guard}",
             f"#define {guard}", "", "#include <cstdint>", "", f'#include "{TYPES}"', "",
]
    for k in plan.kernels:
        lines.append(f"// {k.node.op} '{k.label}', parallelism {k.parallelism}")
        lines.append(f'extern "C" void {k.name}({params_of(k, precision)});')
    lines += ["", f"#endif  // {guard}", ""]
    return "\n".join(lines)


def render_testbench(k: Kernel, precision: Precision, model: str, atol: float, rtol: float) -> str:
    declare, reads, compare, call = [], [], [], []
    for a in k.args:
        ctype = c_type(a.value)
        size = a.value.type.size
        declare.append(f"    std::vector<{ctype}> {a.name}({size});")
        call.append(f"{a.name}.data()")
        if a.output:
            want = "float" if a.value.dtype.is_float else "int64_t"
            declare.append(f"    std::vector<{want}> {a.name}_want({size});")
            reads.append(f'read_vec(dir + "/{a.name}.expected.bin", {a.name}_want)')
            compare.append(f'    bad += compare("{a.name}", {a.name}, {a.name}_want, worst);')
        else:
            reads.append(f'read_vec(dir + "/{a.name}.bin", {a.name})')
    return template("testbench.cpp.in").substitute(
        name=k.name, header=header_name(model), default_dir=f"vectors/{k.name}", atol=repr(float(atol)),
        rtol=repr(float(rtol)), declare="\n".join(declare), reads=" && ".join(reads), call=", ".join(call),
        compare="\n".join(compare))
