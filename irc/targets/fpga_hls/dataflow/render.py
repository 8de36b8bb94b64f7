"""C++ of a dataflow design: one configuration struct and one function per stage (its weights
as ROM arrays partitioned to its PE x SIMD folding), and the DATAFLOW top that joins them with
FIFOs of the depths fifos.py computed. The loops are irc_dataflow.h's templates; the numbers
they iterate over (trip counts, PE, SIMD, FIFO depths) are written here as constants, which is
what the model (model.py) counts and what the tests read back from the text.
"""

from __future__ import annotations

import numpy as np

from irc.errors import UnsupportedOpError
from irc.targets.fpga_hls.dataflow.fifos import walk_ticks, window_geometry
from irc.targets.fpga_hls.dataflow.plan import Network, Stage, hwc, is_depthwise
from irc.targets.fpga_hls.kernels import c_name, op_list
from irc.targets.fpga_hls.precision import FADD_LATENCY, Precision
from irc.targets.fpga_hls.render import TEMPLATES, c_float, epilogue_body, op_expr

LIBRARY = "irc_dataflow.h"

#: bits of one m_axi beat once Vitis widens a sequential burst (max_widen_bitwidth)
PORT_BITS = 512


def library_source() -> str:
    return (TEMPLATES / "dataflow" / LIBRARY).read_text()


def top_name(model: str) -> str:
    return f"{c_name(model)}_top"


def pack_t(ctype: str, channels: int) -> str:
    return f"irc::pack<{ctype}, {channels}>"


def fifo_t(net: Network, fi: int) -> str:
    f = net.fifos[fi]
    return f"irc::fifo<{pack_t(f.ctype, f.channels)} >"


def mem_type(v, precision: Precision) -> str:
    """C type of a graph input/output element in device memory."""
    if v.dtype.is_float:
        return "store_t"
    return {"u8": "uint8_t", "i8": "int8_t", "i32": "int32_t", "i64": "int64_t"}[v.dtype.value]


def mem_bits(v, precision: Precision) -> int:
    if v.dtype.is_float:
        return 32 if precision.kind in ("float32", "int8") else (16 if precision.width <= 16 else 32)
    return {"u8": 8, "i8": 8, "i32": 32, "i64": 64}[v.dtype.value]


def beats(v, precision: Precision, channels: int) -> int:
    """Cycles one pixel takes through a PORT_BITS-wide port."""
    return max(1, -(-channels * mem_bits(v, precision) // PORT_BITS))


def _consts(pairs: dict) -> str:
    return "    static const int " + ", ".join(f"{k} = {int(v)}" for k, v in pairs.items()) + ";"


def _array(ctype: str, name: str, a: np.ndarray) -> str:
    dims = "".join(f"[{d}]" for d in a.shape)
    flat = a.reshape(-1)
    if ctype == "float":
        items = [c_float(x) for x in flat.tolist()]
    else:
        items = [str(int(x)) for x in flat.tolist()]
    rows = [", ".join(items[i:i + 16]) for i in range(0, len(items), 16)]
    return f"    static const {ctype} {name}{dims} = {{\n        " + ",\n        ".join(rows) + "};"


# ---------------------------------------------------------------------------- weights in ROM order

def rom(w_rows: np.ndarray, pe: int, simd: int) -> np.ndarray:
    """Weights (outputs x terms, in the stage's tap order) as [NF][SF][PE][SIMD]."""
    co, t = w_rows.shape
    return np.ascontiguousarray(w_rows.reshape(co // pe, pe, t // simd, simd).transpose(0, 2, 1, 3))


def weight_shape(net: Network, s: Stage) -> tuple[int, int]:
    """(outputs, terms) of a MAC stage's weights."""
    k = s.kernel
    w = k.node.inputs[1].shape
    if s.kind in ("conv", "qconv"):
        return w[0], int(np.prod(w[1:]))
    return w[1], w[0]


def weight_rows(net: Network, s: Stage, w: np.ndarray) -> np.ndarray:
    """A layer's weights as (outputs, terms) in the order the stage meets its inputs: a
    convolution's taps (kh, kw, ci) (depthwise: (kh, kw)); a dense layer's inputs in stream
    order, pixel-major, where the graph flattened channel-major."""
    if s.kind in ("conv", "qconv"):
        if is_depthwise(s):
            return w.reshape(w.shape[0], -1)
        return w.transpose(0, 2, 3, 1).reshape(w.shape[0], -1)
    h, wd, c = net.fifo_in(s).shape
    rows = w.T  # (N, K), K channel-major
    return np.ascontiguousarray(rows.reshape(rows.shape[0], c, h * wd).transpose(0, 2, 1).reshape(rows.shape[0], -1))


# ---------------------------------------------------------------------------- configurations

def _mac_cfg(net: Network, s: Stage, precision: Precision, values) -> tuple[str, list[str], str]:
    """(struct body, ROM array definitions, call arguments) of a convolution or dense stage."""
    k = s.kernel
    q = k.params
    fin, fout = net.fifo_in(s), net.fifo_out(s)
    int8 = s.kind in ("qconv", "qdense")
    conv = s.kind in ("conv", "qconv")
    w = values[k.node.inputs[1]]
    rows = weight_rows(net, s, np.asarray(w))
    co, terms = rows.shape
    nf, sf = co // s.pe, terms // s.simd
    consts = {"CI": fin.channels, "CO": co, "PE": s.pe, "SIMD": s.simd, "NF": nf, "SF": sf}
    if conv:
        consts.update(H=q["H"], W=q["W"], KH=q["KH"], KW=q["KW"], SH=q["SH"], SW=q["SW"], PT=q["PT"], PL=q["PL"],
                      **window_geometry(s), OH=q["OH"], OW=q["OW"], DEPTHWISE=int(is_depthwise(s)),
                      OVERLAP=s.overlap, TICKS=walk_ticks(s, nf * sf, s.overlap))
    else:
        consts.update(HW=fin.pixels)
    consts["QN"] = co if int8 else 1
    res_port = len(s.ins) > 1
    lines = [_consts(consts)]
    arrays = []
    if int8:
        lines.append(f"    static const int SPLIT = 1, XZP = {q['XZP']}, YZP = {q['YZP']}, YMIN = {q['YMIN']}, "
                     f"YMAX = {q['YMAX']};")
        lines.append("    static const bool HAS_RES = false;")
        lines += [f"    typedef {fin.ctype} in_t;", f"    typedef {fout.ctype} out_t;", "    typedef out_t res_t;",
                  "    typedef int8_t wraw_t;", "    typedef int32_t braw_t;", "    typedef int32_t acc_t;",
                  "    static in_t pad() { return in_t(XZP); }",
                  "    static int8_t wload(int8_t v) { return v; }",
                  "    static acc_t start(braw_t b) { return b; }",
                  "    static acc_t product(in_t x, int8_t w) { return int32_t(int(x) - XZP) * int32_t(w); }",
                  "    static acc_t add(acc_t a, acc_t b) { return irc::wrap_add(a, b); }",
                  "    static acc_t residual(acc_t v, res_t) { return v; }",
                  "    static out_t finish(acc_t v, int32_t m, int32_t s) {",
                  "        return out_t(irc::requantize(v, m, s, YZP, YMIN, YMAX));", "    }"]
        arrays.append(_array("int8_t", "w", rom(rows.astype(np.int8), s.pe, s.simd)) if s.rom != "uram"
                      else _loaded("int8_t", nf, sf, s.pe, s.simd))
        arrays.append(_array("int32_t", "b", np.asarray(values[k.node.inputs[2]], np.int64).reshape(-1)))
        arrays.append(_array("int32_t", "m", np.asarray(values[k.node.inputs[3]], np.int64).reshape(-1)))
        arrays.append(_array("int32_t", "s", np.asarray(values[k.node.inputs[4]], np.int64).reshape(-1)))
    else:
        names = [a.name for a in k.args]
        has_bias = "bias" in names
        acc = precision.c_acc(terms + 2)
        lines.append(f"    static const int SPLIT = {precision.acc_split};")
        lines.append(f"    static const bool HAS_BIAS = {str(has_bias).lower()}, HAS_RES = {str(res_port).lower()};")
        lines += ["    typedef data_t in_t;", "    typedef data_t out_t;", "    typedef data_t res_t;",
                  "    typedef store_t wraw_t;", "    typedef store_t braw_t;", f"    typedef {acc} acc_t;",
                  "    static in_t pad() { return data_t(0); }",
                  "    static data_t wload(store_t v) { return irc_precision::load(v); }",
                  "    static acc_t start(braw_t b) { return HAS_BIAS ? acc_t(irc_precision::load(b)) : acc_t(0); }",
                  "    static acc_t product(in_t x, data_t w) { return acc_t(x * w); }",
                  "    static acc_t add(acc_t a, acc_t b) { return acc_t(a + b); }",
                  "    static acc_t residual(acc_t v, res_t r) { return acc_t(v + acc_t(r)); }",
                  f"    static data_t out(acc_t v) {{\n        {epilogue_body(k.extra['act'])}\n    }}",
                  "    static out_t finish(acc_t v, int32_t, int32_t) { return out(v); }"]
        raw = "float" if precision.kind in ("float32", "int8") else precision.c_storage
        arrays.append(_array(raw, "w", rom(precision.to_device(rows), s.pe, s.simd)) if s.rom != "uram"
                      else _loaded("wraw_t", nf, sf, s.pe, s.simd))
        bias = values[k.node.inputs[2]] if has_bias else np.zeros(co, np.float32)
        arrays.append(_array(raw, "b", precision.to_device(np.asarray(bias, np.float32).reshape(-1))))
        arrays += ["    static const int32_t m[1] = {0};", "    static const int32_t s[1] = {0};"]
    if s.rom:
        kind = "ram_1p" if s.rom == "uram" else "rom_1p"
        arrays.append(f"#pragma HLS BIND_STORAGE variable=w type={kind} impl={s.rom}")
    arrays += ["#pragma HLS ARRAY_PARTITION variable=w dim=3 complete",
               "#pragma HLS ARRAY_PARTITION variable=w dim=4 complete",
               f"#pragma HLS ARRAY_PARTITION variable=b cyclic factor={s.pe}"]
    if int8:
        arrays += [f"#pragma HLS ARRAY_PARTITION variable=m cyclic factor={s.pe}",
                   f"#pragma HLS ARRAY_PARTITION variable=s cyclic factor={s.pe}"]
    return "\n".join(lines), arrays, "w, b, m, s"


def _loaded(ctype: str, nf: int, sf: int, pe: int, simd: int) -> str:
    """Weights in URAM: a static RAM (it keeps its contents between calls of the top), filled
    from device memory (``wsrc``, in the same [NF][SF][PE][SIMD] order) when ``load`` is set."""
    n = nf * sf * pe * simd
    return (f"    static {ctype} w[{nf}][{sf}][{pe}][{simd}];\n"
            f"    if (load) {{\n    load_w:\n        for (int i = 0; i < {n}; i++) {{\n"
            f"#pragma HLS PIPELINE II=1\n"
            f"            w[i / {sf * pe * simd}][(i / {pe * simd}) % {sf}][(i / {simd}) % {pe}][i % {simd}] = wsrc[i];\n"
            f"        }}\n    }}")


def loaded_type(s: Stage, precision: Precision) -> str:
    """C type (at file scope) of a URAM stage's weights in device memory."""
    if s.kind in ("qconv", "qdense"):
        return "int8_t"
    return "float" if precision.kind in ("float32", "int8") else "store_t"


def weight_data(net: Network, s: Stage, precision: Precision, values) -> np.ndarray:
    """A stage's weights in device format, in ROM order (what a URAM stage loads)."""
    rows = weight_rows(net, s, np.asarray(values[s.kernel.node.inputs[1]]))
    data = rows.astype(np.int8) if s.kind in ("qconv", "qdense") else precision.to_device(rows)
    return rom(data, s.pe, s.simd).reshape(-1)


def _pool_cfg(net: Network, s: Stage, precision: Precision) -> str:
    q = s.kernel.params
    f = net.fifo_in(s)
    consts = dict(H=q["H"], W=q["W"], CI=f.channels, KH=q["KH"], KW=q["KW"], SH=q["SH"], SW=q["SW"], PT=q["PT"],
                  PL=q["PL"], **window_geometry(s), OH=q["OH"], OW=q["OW"], PE=s.pe, NF=f.channels // s.pe,
                  OVERLAP=s.overlap, TICKS=walk_ticks(s, f.channels // s.pe, s.overlap))
    lowest = {"uint8_t": "0", "int8_t": "-128"}.get(f.ctype, "irc_precision::lowest()")
    return "\n".join([_consts(consts), f"    typedef {f.ctype} in_t;",
                      f"    static in_t pad() {{ return in_t({lowest}); }}"])


def _gpool_cfg(net: Network, s: Stage, precision: Precision) -> str:
    k = s.kernel
    q = k.params
    fin, fout = net.fifo_in(s), net.fifo_out(s)
    nf = fin.channels // s.pe
    ii = gpool_ii(fin.ctype, bool(q.get("AVG")) and s.kind == "global_pool", nf)
    lines = [_consts(dict(HW=fin.pixels, CI=fin.channels, PE=s.pe, NF=nf, II=ii)),
             f"    typedef {fin.ctype} in_t;", f"    typedef {fout.ctype} out_t;"]
    if s.kind == "qgpool":
        lines += [f"    static const int XZP = {q['XZP']}, M0 = {q['M0']}, SHIFT = {q['SH']}, YZP = {q['YZP']}, "
                  f"YMIN = {q['YMIN']}, YMAX = {q['YMAX']};",
                  "    typedef int64_t state_t;",
                  "    static state_t gstart(in_t x) { return int64_t(int(x) - XZP); }",
                  "    static void fold(state_t& s, in_t x) { s += int(x) - XZP; }",
                  "    static out_t gfinish(state_t s) { return out_t(irc::requantize(s, M0, SHIFT, YZP, YMIN, YMAX)); }"]
    elif q["AVG"] and fin.ctype != "uint8_t":
        lines += [f"    typedef {precision.c_acc(fin.pixels)} state_t;",
                  "    static state_t gstart(in_t x) { return state_t(x); }",
                  "    static void fold(state_t& s, in_t x) { s = state_t(s + state_t(x)); }",
                  f"    static out_t gfinish(state_t s) {{ return irc_precision::mean(s, {fin.pixels}); }}"]
    elif not q["AVG"]:
        lines += ["    typedef in_t state_t;", "    static state_t gstart(in_t x) { return x; }",
                  "    static void fold(state_t& s, in_t x) { s = x > s ? x : s; }",
                  "    static out_t gfinish(state_t s) { return s; }"]
    else:
        raise UnsupportedOpError("global average pooling of an integer tensor outside an int8 layer",
                                 node=s.label, op=k.node.op)
    return "\n".join(lines)


def gpool_ii(ctype: str, average: bool, nf: int) -> int:
    """II of the global pooling loop: a float running sum is back at its channel every NF
    steps, and its adder takes FADD_LATENCY cycles."""
    return max(1, -(-FADD_LATENCY // nf)) if ctype == "float" and average else 1


def _map_cfg(net: Network, s: Stage, precision: Precision) -> str:
    k = s.kernel
    q = k.params
    fa, fout = net.fifo_in(s), net.fifo_out(s)
    lines = [_consts(dict(CI=fa.channels, PIX=fa.pixels, PE=s.pe, NF=fa.channels // s.pe)),
             f"    typedef {fa.ctype} a_t;", f"    typedef {fout.ctype} out_t;"]
    if len(s.ins) > 1:
        lines.append(f"    typedef {net.fifo_in(s, 1).ctype} b_t;")
    if s.kind == "quantize":
        lines += [f"    static const int ZP = {q['ZP']}, LO = {q['LO']}, HI = {q['HI']};",
                  "    static out_t calc(a_t x, int) {",
                  f"        float r = std::nearbyint(x / {c_float(k.extra['scale'])});",
                  "        if (std::isnan(r)) r = 0.0f;", "        r += float(ZP);",
                  "        return out_t(r < float(LO) ? LO : (r > float(HI) ? HI : r));", "    }"]
    elif s.kind == "dequantize":
        lines += [f"    static const int ZP = {q['ZP']};",
                  f"    static out_t calc(a_t x, int) {{ return float(int64_t(x) - ZP) * {c_float(k.extra['scale'])}; }}"]
    elif s.kind == "qadd":
        lines += [f"    static const int AZP = {q['AZP']}, BZP = {q['BZP']}, SHIFT = {q['SH']}, YZP = {q['YZP']}, "
                  f"YMIN = {q['YMIN']}, YMAX = {q['YMAX']};",
                  f"    static const int64_t AM = {q['AM']}, BM = {q['BM']}, M0 = {q['M0']};",
                  "    static out_t calc(a_t a, b_t b, int) {",
                  "        const int64_t acc = AM * (int(a) - AZP) + BM * (int(b) - BZP);",
                  "        return out_t(irc::requantize(acc, M0, SHIFT, YZP, YMIN, YMAX));", "    }"]
    else:  # an element-wise op or chain, in float (as the per-layer kernels compute it)
        n = k.node
        env = {}
        if n.op == "elementwise_chain":
            env.update({v: f"f{i}" for i, v in enumerate(n.attrs["body"].inputs)})
        else:
            env.update({v: f"f{i}" for i, v in enumerate(n.inputs)})
        body = []
        for j, m in enumerate(op_list(n)):
            body.append(f"        const float t{j} = {op_expr(m.op, [env[v] for v in m.inputs], m.attrs, n)};")
            env[m.outputs[0]] = f"t{j}"
        args = ["a_t a", "b_t b"][:len(s.ins)]
        conv = [f"        const float f{i} = irc_precision::to_f({x});" for i, x in enumerate("ab"[:len(s.ins)])]
        lines += [f"    static out_t calc({', '.join(args)}, int) {{", *conv, *body,
                  f"        return irc_precision::from_f(t{len(body) - 1});", "    }"]
    return "\n".join(lines)


def _io_cfg(net: Network, s: Stage, precision: Precision) -> str:
    v = s.value
    if s.kind == "read":
        f = net.fifo_out(s)
        conv = "irc_precision::load(v)" if v.dtype.is_float and precision.kind == "fixed" else "v"
        return "\n".join([_consts(dict(C=f.channels, PIX=f.pixels, BEATS=beats(v, precision, f.channels))),
                          f"    typedef {mem_type(v, precision)} mem_t;", f"    typedef {f.ctype} out_t;",
                          f"    static out_t load(mem_t v) {{ return {conv}; }}"])
    f = net.fifo_in(s)
    conv = "irc_precision::store(v)" if v.dtype.is_float and precision.kind == "fixed" else "mem_t(v)"
    return "\n".join([_consts(dict(C=f.channels, PIX=f.pixels, BEATS=beats(v, precision, f.channels))),
                      f"    typedef {f.ctype} in_t;", f"    typedef {mem_type(v, precision)} mem_t;",
                      f"    static mem_t store(in_t v) {{ return {conv}; }}"])


# ---------------------------------------------------------------------------- stage functions

def _ports(net: Network, s: Stage) -> list[str]:
    return ([f"{fifo_t(net, fi)}& in{i}" for i, fi in enumerate(s.ins)]
            + [f"{fifo_t(net, fi)}& out{i}" for i, fi in enumerate(s.outs)])


def io_name(v) -> str:
    return c_name(v.name)


def render_stage(net: Network, s: Stage, precision: Precision, values) -> str:
    """The configuration struct and the function of one stage."""
    cfg = f"{s.name}_cfg"
    head = f"// stage {s.index}: {s.kind} '{s.label}', PE {s.pe} x SIMD {s.simd}" + (", overlapped walk" if s.overlap
                                                                                    else "")
    ins = ", ".join(f"in{i}" for i in range(len(s.ins)))
    outs = ", ".join(f"out{i}" for i in range(len(s.outs)))
    if s.kind == "fork":
        params = ", ".join(_ports(net, s) + ["int frames"])
        pix = net.fifo_in(s).pixels
        return (f"{head}\nstatic void {s.name}({params}) {{\n    irc::fork_stage<{pix}>(in0, frames, {outs});\n}}\n")
    if s.kind == "read":
        body = _io_cfg(net, s, precision)
        params = f"const {mem_type(s.value, precision)}* x, {_ports(net, s)[0]}, int frames"
        call = f"irc::read_stage<{cfg}>(x, out0, frames);"
    elif s.kind == "write":
        body, params = _io_cfg(net, s, precision), f"{_ports(net, s)[0]}, {mem_type(s.value, precision)}* y, int frames"
        call = f"irc::write_stage<{cfg}>(in0, y, frames);"
    else:
        loads = [f"const {loaded_type(s, precision)}* wsrc", "int load"] if s.rom == "uram" else []
        params = ", ".join(_ports(net, s) + loads + ["int frames"])
        arrays = []
        if s.kind in ("conv", "qconv", "dense", "qdense"):
            body, arrays, extra = _mac_cfg(net, s, precision, values)
            fn = "conv_stage" if s.kind in ("conv", "qconv") else "dense_stage"
            call = f"irc::{fn}<{cfg}>({ins}, {outs}, {extra}, frames);"
        elif s.kind == "pool":
            body, call = _pool_cfg(net, s, precision), f"irc::pool_stage<{cfg}>({ins}, {outs}, frames);"
        elif s.kind in ("global_pool", "qgpool"):
            body, call = _gpool_cfg(net, s, precision), f"irc::global_pool_stage<{cfg}>({ins}, {outs}, frames);"
        else:
            body, call = _map_cfg(net, s, precision), f"irc::map_stage<{cfg}>({ins}, {outs}, frames);"
        call = "\n".join(arrays + ["    " + call]).lstrip()
    return (f"{head}\nstruct {cfg} : irc_precision {{\n{body}\n}};\n\n"
            f"static void {s.name}({params}) {{\n    {call}\n}}\n")


def top_params(net: Network, precision: Precision) -> str:
    g = net.graph
    ps = [f"const {mem_type(v, precision)}* in_{io_name(v)}" for v in g.inputs]
    ps += [f"{mem_type(v, precision)}* out_{io_name(v)}" for v in g.outputs]
    ps += [f"const {loaded_type(s, precision)}* w_{s.name}" for s in loaded_stages(net)]
    return ", ".join(ps + (["int load_weights"] if loaded_stages(net) else []) + ["int frames"])


def loaded_stages(net: Network) -> list[Stage]:
    """The stages whose weights the top loads into URAM."""
    return [s for s in net.stages if s.rom == "uram"]


def render_top(net: Network, precision: Precision, model: str, values) -> str:
    """kernels/<model>_top.cpp: every stage and the DATAFLOW top function."""
    g = net.graph
    top = top_name(model)
    parts = [f"// Dataflow design of model '{model}' (generated by irc): {len(net.stages)} stages joined by "
             f"{len(net.fifos)} FIFOs; precision {precision.name}.",
             "// Memory layout of every input and output: frames one after another, each pixel-major (N, H, W, C).",
             '#include "irc_types.h"', f'#include "{LIBRARY}"', ""]
    parts += [render_stage(net, s, precision, values) for s in net.stages]
    body = []
    ports = [(f"in_{io_name(v)}", int(np.prod(hwc(v.shape)))) for v in g.inputs]
    ports += [(f"out_{io_name(v)}", int(np.prod(hwc(v.shape)))) for v in g.outputs]
    ports += [(f"w_{s.name}", int(np.prod(weight_shape(net, s)))) for s in loaded_stages(net)]
    for i, (name, depth) in enumerate(ports):
        body.append(f"#pragma HLS INTERFACE m_axi port={name} offset=slave bundle=gmem{i} "
                    f"depth={depth} max_widen_bitwidth={PORT_BITS}")
    for name, _ in ports:
        body.append(f"#pragma HLS INTERFACE s_axilite port={name} bundle=control")
    if loaded_stages(net):
        body.append("#pragma HLS INTERFACE s_axilite port=load_weights bundle=control")
    body += ["#pragma HLS INTERFACE s_axilite port=frames bundle=control",
             "#pragma HLS INTERFACE s_axilite port=return bundle=control", "#pragma HLS DATAFLOW"]
    for f in net.fifos:
        body.append(f'    {fifo_t(net, f.index)} {f.name}("{f.name}", {f.depth});')
        body.append(f"#pragma HLS STREAM variable={f.name} depth={f.depth}")
    body.append("    IRC_DATAFLOW_BEGIN")
    for s in net.stages:
        fifos = [net.fifos[i].name for i in s.ins + s.outs]
        if s.kind == "read":
            args = [f"in_{io_name(s.value)}", *fifos]
        elif s.kind == "write":
            args = [*fifos, f"out_{io_name(s.value)}"]
        else:
            args = fifos + ([f"w_{s.name}", "load_weights"] if s.rom == "uram" else [])
        body.append(f"    IRC_STAGE({s.name}({', '.join(args + ['frames'])}))")
    body.append("    IRC_DATAFLOW_END")
    parts.append(f'extern "C" void {top}({top_params(net, precision)}) {{\n' + "\n".join(body) + "\n}\n")
    return "\n".join(parts)


def render_testbench(net: Network, precision: Precision, model: str, frames: int, atol: float, rtol: float) -> str:
    """A testbench that runs the top on ``frames`` frames of the vectors and checks every output
    (within atol + rtol * |want|), that no FIFO deadlocked and that none holds data at the end."""
    g = net.graph
    decl, reads, call, compare = [], [], [], []
    for v in g.inputs:
        n = io_name(v)
        size = int(np.prod(hwc(v.shape)))
        decl.append(f"    std::vector<{mem_type(v, precision)}> in_{n}(frames * {size});")
        reads.append(f'read_vec(dir + "/in_{n}.bin", in_{n})')
        call.append(f"in_{n}.data()")
    for s in loaded_stages(net):
        decl.append(f"    std::vector<{loaded_type(s, precision)}> w_{s.name}({int(np.prod(weight_shape(net, s)))});")
        reads.append(f'read_vec(dir + "/w_{s.name}.bin", w_{s.name})')
    for v in g.outputs:
        n = io_name(v)
        size = int(np.prod(hwc(v.shape)))
        decl.append(f"    std::vector<{mem_type(v, precision)}> out_{n}(frames * {size});")
        decl.append(f"    std::vector<double> want_{n}(frames * {size});")
        reads.append(f'read_vec(dir + "/out_{n}.expected.bin", want_{n})')
        call.append(f"out_{n}.data()")
        scale = f" * {2.0 ** -precision.frac!r}" if v.dtype.is_float and precision.kind == "fixed" else ""
        compare.append(f"    std::vector<double> got_{n}(out_{n}.size());\n"
                       f"    for (size_t i = 0; i < out_{n}.size(); i++) {{\n"
                       f"        const double got = got_{n}[i] = double(out_{n}[i]){scale};\n"
                       f"        const double d = std::fabs(got - want_{n}[i]);\n"
                       f"        worst = d > worst ? d : worst;\n"
                       f"        if (!(d <= ATOL + RTOL * std::fabs(want_{n}[i]))) bad++;\n    }}\n"
                       f'    write_vec(dir + "/out_{n}.got.bin", got_{n});')
    text = (TEMPLATES / "dataflow" / "testbench.cpp.in").read_text()
    return (text.replace("{{model}}", model).replace("{{top}}", top_name(model))
            .replace("{{params}}", top_params(net, precision)).replace("{{frames}}", str(frames))
            .replace("{{atol}}", repr(float(atol))).replace("{{rtol}}", repr(float(rtol)))
            .replace("{{declare}}", "\n".join(decl)).replace("{{reads}}", " && ".join(reads))
            .replace("{{call}}", ", ".join(call + [f"w_{s.name}.data()" for s in loaded_stages(net)]
                                           + (["1"] if loaded_stages(net) else []) + ["frames"]))
            .replace("{{compare}}", "\n".join(compare)))
