"""Test vectors and the testbench of an accelerator.

The input frames (codes, as the host quantizes them) become the beats of the top's input stream,
and the emulator's outputs the beats expected on its output stream; one hex word per line,
lane 0 in the least significant byte. The testbench (plain Verilog, for Icarus Verilog or
Verilator) streams the input beats into the top, with optional random gaps on both handshakes
(``+STALL=1``), writes every output beat to ``sim_output.hex``, and the cycle of the first input
beat, of the first output beat and of the end of each output frame to ``sim_stats.txt``. Layers
whose weights stream from external memory read them from one dn_ddr_model each (tb/, loaded
from ``mem/ddr.mem``; with ``+STALL=1`` it also stalls and delays at random).
"""

from __future__ import annotations

import numpy as np

from irc.targets.dneuro.ddr import IMAGE, image_size, masters
from irc.targets.dneuro.layers import LayerGraph
from irc.targets.dneuro.render import MEM_DIR, RTL_DIR, lanes_hex, top_name
from irc.targets.dneuro.resources import WSTREAM_BURST, out_lanes
from irc.targets.dneuro.tune import Design

VECTORS = "vectors"


def stream_beats(frames: np.ndarray, lanes: int) -> np.ndarray:
    """Frames [N, C, H, W] of codes -> beats [N * H * W * C / lanes, lanes] (raster order,
    channels of a pixel in order)."""
    n, c, h, w = frames.shape
    return frames.transpose(0, 2, 3, 1).reshape(-1, lanes)


def beats_to_frames(words: list[int], lanes: int, shape: tuple[int, int, int], signed: bool) -> np.ndarray:
    """Output beats read back from a simulation -> frames [N, C, H, W] of codes."""
    c, h, w = shape
    raw = np.array([[(v >> (8 * k)) & 0xFF for k in range(lanes)] for v in words], np.int64)
    if signed:
        raw = np.where(raw >= 128, raw - 256, raw)
    return raw.reshape(-1, h, w, c).transpose(0, 3, 1, 2)


def output_words(design: Design, out: np.ndarray) -> list[str]:
    """Expected output beats (hex) for the emulator's final output [N, C, H, W]."""
    ly = design.lg.output
    if ly.kind == "argmax":
        return [f"{int(v):04x}" for v in out.reshape(-1)]
    return lanes_hex(stream_beats(out, out_lanes(ly, *design.par[ly.name])))


def model_files(design: Design) -> dict[str, str]:
    """{relative path: text}: the external-memory model, when some weights stream."""
    return {"tb/dn_ddr_model.v": (RTL_DIR / "dn_ddr_model.v").read_text()} if design.streamed else {}


def vector_files(design: Design, codes: np.ndarray, outputs: dict[str, np.ndarray]) -> dict[str, str]:
    """{relative path: text}: input beats, expected output beats, and every layer's expected
    output frames (codes, one per line in stream order) for debugging a block."""
    lg = design.lg
    lanes_in = out_lanes(lg.input, *design.par[lg.input.name])
    files = {f"{VECTORS}/input.hex": "\n".join(lanes_hex(stream_beats(codes, lanes_in))) + "\n",
             f"{VECTORS}/output.hex": "\n".join(output_words(design, outputs[lg.output.name])) + "\n"}
    for k, ly in enumerate(lg):
        y = outputs.get(ly.name)
        if y is None or ly.kind == "argmax":
            continue
        vals = y.transpose(0, 2, 3, 1).reshape(-1)
        files[f"{VECTORS}/l{k}.codes.txt"] = "\n".join(str(int(v)) for v in vals) + "\n"
    return files


def ddr_models(design: Design, rst: str = "rst") -> tuple[str, str]:
    """Declarations and instances of the memory models of the streamed layers, and the ports
    that connect them to the top."""
    lines, ports = [], []
    size = image_size(design)
    for k, m in enumerate(masters(design)):
        p = f"{m.lid}_avm"
        lines += [f"    wire [31:0] {p}_address;", f"    wire [{WSTREAM_BURST.bit_length() - 1}:0] {p}_burstcount;",
                  f"    wire {p}_read, {p}_waitrequest, {p}_readdatavalid;",
                  f"    wire [{m.wbits - 1}:0] {p}_readdata;",
                  f"    dn_ddr_model #(.DBITS({m.wbits}), .BYTES({size}), .IMAGE(\"{MEM_DIR}/{IMAGE}\"), "
                  f".BCW({WSTREAM_BURST.bit_length()}), .SEED({k + 3})) {p}_mem (.clk(clk), .rst({rst}), "
                  f".stall(stall != 0), .address({p}_address), .burstcount({p}_burstcount), .read({p}_read), "
                  f".waitrequest({p}_waitrequest), .readdatavalid({p}_readdatavalid), .readdata({p}_readdata));"]
        ports += [f".{p}_{s}({p}_{s})" for s in ("address", "burstcount", "read", "waitrequest", "readdatavalid",
                                                  "readdata")]
    return "\n".join(lines), "".join(f",\n        {x}" for x in ports)


def testbench(design: Design, frames: int) -> str:
    """The testbench module ``tb`` for ``frames`` input frames."""
    lg: LayerGraph = design.lg
    inp, out = lg.input, lg.output
    lin = out_lanes(inp, *design.par[inp.name])
    in_beats = frames * inp.shape.size // lin
    if out.kind == "argmax":
        out_w, per_frame = 16, 1
    else:
        lo = out_lanes(out, *design.par[out.name])
        out_w, per_frame = lo * 8, out.shape.size // lo
    out_beats = frames * per_frame
    ddr, ports = ddr_models(design)
    timeout = 50 * (design.cycles * (frames + 2) + design.latency_cycles) + 100_000
    return f"""// Testbench of {top_name(lg)}: {frames} frame(s), {in_beats} input beats, {out_beats} output beats.
`timescale 1ns/1ps

module tb;
    reg clk = 1'b0;
    always #5 clk = ~clk;
    reg rst = 1'b1;
    reg [{lin * 8 - 1}:0] in_mem [0:{in_beats - 1}];
    integer idx = 0, nout = 0, cyc = 0, stall = 0, fo, fs;
    reg [31:0] lfsr = 32'h1;
    wire gate_in = (stall == 0) || lfsr[0] || lfsr[3];
    wire gate_out = (stall == 0) || lfsr[7] || lfsr[12];
    wire in_valid = !rst && (idx < {in_beats}) && gate_in;
    wire in_ready;
    wire [{lin * 8 - 1}:0] in_data = in_mem[idx < {in_beats} ? idx : 0];
    wire out_valid;
    wire out_ready = !rst && gate_out;
    wire [{out_w - 1}:0] out_data;

{ddr}
    {top_name(lg)} dut (.clk(clk), .rst(rst), .in_valid(in_valid), .in_ready(in_ready), .in_data(in_data),
        .out_valid(out_valid), .out_ready(out_ready), .out_data(out_data){ports});

    initial begin
        if (!$value$plusargs("STALL=%d", stall)) stall = 0;
        $readmemh("{VECTORS}/input.hex", in_mem);
        fo = $fopen("sim_output.hex", "w");
        fs = $fopen("sim_stats.txt", "w");
        repeat (4) @(posedge clk);
        rst <= 1'b0;
    end

    always @(posedge clk) begin
        cyc <= cyc + 1;
        lfsr <= {{lfsr[30:0], lfsr[31] ^ lfsr[21] ^ lfsr[1] ^ lfsr[0]}};
        if (in_valid && in_ready) begin
            if (idx == 0) $fdisplay(fs, "first_input %0d", cyc);
            idx <= idx + 1;
        end
        if (out_valid && out_ready) begin
            $fdisplay(fo, "%h", out_data);
            if (nout == 0) $fdisplay(fs, "first_output %0d", cyc);
            if ((nout + 1) % {per_frame} == 0) $fdisplay(fs, "frame_done %0d", cyc);
            nout <= nout + 1;
            if (nout + 1 == {out_beats}) begin
                $fclose(fo);
                $fclose(fs);
                $finish;
            end
        end
        if (cyc > {timeout}) begin
            $fdisplay(fs, "timeout %0d after %0d input and %0d output beats", cyc, idx, nout);
            $fclose(fo);
            $fclose(fs);
            $finish;
        end
    end
endmodule
"""
