"""The pipelined requantize (dn_requant) and adder tree (dn_addtree), alone in Icarus Verilog:
bit for bit equal to irc.ir.quant_arith.requantize and to integer sums on random and extreme
operands, with the pipeline's enable dropped at random (values and valid flags travel together),
and with the latency the cycle model counts (RQ_STAGES; tree_stages)."""

from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest

from irc.ir import quant_arith as qa
from irc.targets.dneuro.render import RTL_DIR
from irc.targets.dneuro.resources import RQ_STAGES, tree_stages
from tests.support.marks import params

pytestmark = pytest.mark.skipif(shutil.which("iverilog") is None or shutil.which("vvp") is None,
                                reason="Icarus Verilog is not installed (apt-get install iverilog)")


def _run(tmp_path, tb: str, vectors: list[str]) -> list[str]:
    (tmp_path / "vec.hex").write_text("\n".join(vectors) + "\n")
    (tmp_path / "tb.v").write_text(tb)
    subprocess.run(["iverilog", "-g2012", "-s", "tb", "-o", "tb.vvp", str(RTL_DIR / "dn_stream.v"), "tb.v"],
                   cwd=tmp_path, check=True, capture_output=True, timeout=120)
    r = subprocess.run(["vvp", "-n", "tb.vvp"], cwd=tmp_path, check=True, capture_output=True, text=True, timeout=120)
    return r.stdout.split()


_TB = """`timescale 1ns/1ps
module tb;
    reg clk = 0;
    always #5 clk = ~clk;
    reg rst = 1;
    reg [{W}-1:0] vec [0:{N}-1];
    integer k = 0, n = 0, cyc = 0, first = -1, first_in = -1;
    reg [31:0] lfsr = 32'h5eed;
    wire en = {EN};
    wire in_valid = !rst && k < {N};
    wire [{W}-1:0] v = vec[k < {N} ? k : 0];
    {DUT}
    initial begin
        $readmemh("vec.hex", vec);
        repeat (2) @(posedge clk);
        rst <= 0;
    end
    always @(posedge clk) begin
        cyc <= cyc + 1;
        lfsr <= {{lfsr[30:0], lfsr[31] ^ lfsr[21] ^ lfsr[1] ^ lfsr[0]}};
        if (in_valid && en) k <= k + 1;
        if (out_valid && en) begin
            $display("%h", y);
            if (first < 0) $display("latency %0d", cyc - first_in);
            n = n + 1;
            first = 0;
            if (n == {N}) $finish;
        end
        if (cyc > 100000) $finish;
    end
    always @(posedge clk) if (in_valid && en && first_in < 0) first_in <= cyc;
endmodule
"""


@pytest.mark.parametrize("zp, lo, hi, stall", params([(-3, -128, 127, False), (7, 7, 255, True), (0, 0, 255, True)],
                                                     fast={"-3--128-127-False", "7-7-255-True"}))
def test_requant_pipeline_equals_quant_arith(tmp_path, zp, lo, hi, stall):
    rng = np.random.default_rng(zp + 100)
    n = 400
    acc = rng.integers(-2**31, 2**31, n, dtype=np.int64)
    acc[:8] = [-2**31, 2**31 - 1, 0, -1, 1, 12345, -54321, 2**20]
    acc[8:200] //= 2 ** rng.integers(0, 31, 192)  # small accumulators, as most are
    mult = rng.integers(0, 2**31, n, dtype=np.int64)
    mult[:4] = [2**31 - 1, 2**30, 0, 1]
    shift = rng.integers(1, 63, n, dtype=np.int64)
    shift[:6] = [1, 62, 31, 32, 8, 40]
    want = qa.requantize(acc, mult, shift, zp, lo, hi)
    vectors = [f"{int(s):02x}{int(m):08x}{int(a) & 0xFFFFFFFF:08x}" for a, m, s in zip(acc, mult, shift)]
    dut = (f"wire out_valid; wire [7:0] y;\n    dn_requant #(.YZP({zp}), .YMIN({lo}), .YMAX({hi})) dut (.clk(clk), "
           ".rst(rst), .en(en), .in_valid(in_valid), .acc(v[31:0]), .mult(v[63:32]), .shift(v[71:64]), "
           ".out_valid(out_valid), .y(y));")
    tb = _TB.format(W=72, N=n, EN="lfsr[2] | lfsr[9]" if stall else "1'b1", DUT=dut)
    out = _run(tmp_path, tb, vectors)
    latency = int(out[out.index("latency") + 1])
    codes = [int(w, 16) for k, w in enumerate(out) if w != "latency" and (k == 0 or out[k - 1] != "latency")]
    got = np.array([(c - 256 if lo < 0 and c >= 128 else c) for c in codes])
    np.testing.assert_array_equal(got, want)
    if not stall:
        assert latency == RQ_STAGES


@pytest.mark.parametrize("n", params([1, 2, 3, 5, 16], fast={"5"}))
def test_adder_tree_sums_with_its_latency(tmp_path, n):
    rng = np.random.default_rng(n)
    rows = 200
    x = rng.integers(-2**17, 2**17, (rows, n))
    x[0] = -2**17
    x[1] = 2**17 - 1
    d = tree_stages(n)
    width = 18 + d
    vectors = [f"{sum((int(v) & 0x3FFFF) << (18 * k) for k, v in enumerate(row)):0{(18 * n + 3) // 4}x}" for row in x]
    dut = (f"wire [{width - 1}:0] y; wire out_valid;\n    dn_addtree #(.N({n}), .WIN(18)) dut (.clk(clk), .en(en), "
           f".in(v), .out(y));\n    dn_delay #(.WIDTH(1), .DEPTH({d})) dv (.clk(clk), .rst(rst), .en(en), "
           f".in(in_valid), .out(out_valid));")
    tb = _TB.format(W=18 * n, N=rows, EN="lfsr[4] | lfsr[11]", DUT=dut)
    out = _run(tmp_path, tb, vectors)
    words = [w for k, w in enumerate(out) if w != "latency" and (k == 0 or out[k - 1] != "latency")]
    got = np.array([int(w, 16) for w in words], np.int64)
    got = np.where(got >= 2 ** (width - 1), got - 2 ** width, got)
    np.testing.assert_array_equal(got, x.sum(axis=1))
