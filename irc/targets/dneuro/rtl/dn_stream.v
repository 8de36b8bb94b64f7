// irc DNeuro block library: stream plumbing.
//
// Every tensor between blocks is a stream of beats, each beat LANES 8-bit codes (lane 0 in the
// low byte), pixels in raster order and the channels of a pixel in order, with valid/ready
// handshakes: a beat moves on a clock edge where valid and ready are both high. No block's
// ready depends combinationally on its own input valid, so joins and forks cannot loop.

`timescale 1ns/1ps
/* verilator lint_off DECLFILENAME */  // several modules per file: the library's layout

// Simple dual-port RAM read synchronously (M20K): each edge reads the word at raddr, and a word
// written to that very address on the same edge is forwarded from a bypass register.
module dn_ram #(
    parameter WIDTH = 8,
    parameter DEPTH = 4,
    parameter AW = 2
) (
    input  wire             clk,
    input  wire             we,
    input  wire [AW-1:0]    waddr,
    input  wire [WIDTH-1:0] wdata,
    input  wire [AW-1:0]    raddr,
    output wire [WIDTH-1:0] rdata
);
    reg [WIDTH-1:0] mem [0:DEPTH-1];
    reg [WIDTH-1:0] q, fwd;
    reg bypass;
    assign rdata = bypass ? fwd : q;
    always @(posedge clk) begin
        q <= mem[raddr];
        bypass <= we && (waddr == raddr);
        fwd <= wdata;
        if (we) mem[waddr] <= wdata;
    end
endmodule

// First-word-fall-through FIFO (join balancing on reconvergent paths): the RAM reads, on each
// edge, the entry at the read pointer that edge leaves.
module dn_fifo #(
    parameter WIDTH = 8,
    parameter DEPTH = 4
) (
    input  wire             clk,
    input  wire             rst,
    input  wire             in_valid,
    output wire             in_ready,
    input  wire [WIDTH-1:0] in_data,
    output wire             out_valid,
    input  wire             out_ready,
    output wire [WIDTH-1:0] out_data
);
    localparam AW = (DEPTH > 1) ? $clog2(DEPTH) : 1;
    reg [AW-1:0] rp, wp;
    reg [AW:0] count;
    wire push = in_valid && in_ready;
    wire pop = out_valid && out_ready;
    localparam integer LAST = DEPTH - 1;
    wire [AW-1:0] rp_next = pop ? ((rp == LAST[AW-1:0]) ? {AW{1'b0}} : rp + 1'b1) : rp;
    assign in_ready = count < DEPTH;
    assign out_valid = count != 0;
    dn_ram #(.WIDTH(WIDTH), .DEPTH(DEPTH), .AW(AW)) ram (
        .clk(clk), .we(push), .waddr(wp), .wdata(in_data), .raddr(rp_next), .rdata(out_data));
    always @(posedge clk) begin
        if (rst) begin
            rp <= 0;
            wp <= 0;
            count <= 0;
        end else begin
            if (push) wp <= (wp == LAST[AW-1:0]) ? {AW{1'b0}} : wp + 1'b1;
            rp <= rp_next;
            count <= count + {{AW{1'b0}}, push} - {{AW{1'b0}}, pop};
        end
    end
endmodule

// Lane-width converter: IN lanes per beat in, OUT lanes per beat out (the same codes in the
// same order). Both widths divide the channel count, so beats never straddle two pixels.
module dn_gearbox #(
    parameter IN = 1,
    parameter OUT = 1
) (
    input  wire            clk,
    input  wire            rst,
    input  wire            in_valid,
    output wire            in_ready,
    input  wire [IN*8-1:0] in_data,
    output wire            out_valid,
    input  wire            out_ready,
    output wire [OUT*8-1:0] out_data
);
    localparam CAP = IN + OUT;
    localparam CW = $clog2(CAP + 1);
    reg [CAP*8-1:0] buffer;
    reg [CW-1:0] count;
    reg [CAP*8-1:0] nbuf;
    reg [CW-1:0] ncount;
    assign in_ready = count <= OUT;
    assign out_valid = count >= OUT;
    assign out_data = buffer[OUT*8-1:0];
    always @* begin
        nbuf = buffer;
        ncount = count;
        if (out_valid && out_ready) begin
            nbuf = nbuf >> (OUT * 8);
            ncount = ncount - OUT;
        end
        if (in_valid && in_ready) begin
            nbuf = nbuf | ({{(CAP*8-IN*8){1'b0}}, in_data} << (ncount * 8));
            ncount = ncount + IN;
        end
    end
    always @(posedge clk) begin
        if (rst) begin
            buffer <= 0;
            count <= 0;
        end else begin
            buffer <= nbuf;
            count <= ncount;
        end
    end
endmodule

// Broadcast to N consumers; each takes the beat in its own time (eager fork).
module dn_fork #(
    parameter N = 2,
    parameter WIDTH = 8
) (
    input  wire             clk,
    input  wire             rst,
    input  wire             in_valid,
    output wire             in_ready,
    input  wire [WIDTH-1:0] in_data,
    output wire [N-1:0]     out_valid,
    input  wire [N-1:0]     out_ready,
    output wire [WIDTH-1:0] out_data
);
    reg [N-1:0] taken;
    assign out_valid = {N{in_valid}} & ~taken;
    assign in_ready = &(taken | out_ready);
    assign out_data = in_data;
    always @(posedge clk) begin
        if (rst) taken <= 0;
        else if (in_valid) taken <= in_ready ? {N{1'b0}} : (taken | (out_ready & out_valid));
    end
endmodule

// Channel concatenation of two streams of one frame size: per pixel, the CA channels of a,
// then the CB channels of b. No storage: a stream merge (the "implicit" concat).
module dn_concat #(
    parameter CA = 1,
    parameter CB = 1,
    parameter L = 1
) (
    input  wire          clk,
    input  wire          rst,
    input  wire          a_valid,
    output wire          a_ready,
    input  wire [L*8-1:0] a_data,
    input  wire          b_valid,
    output wire          b_ready,
    input  wire [L*8-1:0] b_data,
    output wire          out_valid,
    input  wire          out_ready,
    output wire [L*8-1:0] out_data
);
    localparam NA = CA / L;
    localparam NB = CB / L;
    localparam KW = $clog2((NA > NB ? NA : NB) + 1);
    localparam integer LA = NA - 1;
    localparam integer LB = NB - 1;
    reg sel;
    reg [KW-1:0] k;
    assign out_valid = sel ? b_valid : a_valid;
    assign out_data = sel ? b_data : a_data;
    assign a_ready = !sel && out_ready;
    assign b_ready = sel && out_ready;
    always @(posedge clk) begin
        if (rst) begin
            sel <= 0;
            k <= 0;
        end else if (out_valid && out_ready) begin
            if (k == (sel ? LB[KW-1:0] : LA[KW-1:0])) begin
                k <= 0;
                sel <= !sel;
            end else begin
                k <= k + 1'b1;
            end
        end
    end
endmodule

// The output register of a pipelined block: it takes the beat (valid, data) on every edge where
// it is empty or its beat is taken, which en says; the block's pipeline moves only then.
module dn_outreg #(
    parameter WIDTH = 8
) (
    input  wire             clk,
    input  wire             rst,
    input  wire             valid,
    input  wire [WIDTH-1:0] data,
    output wire             en,
    output reg              out_valid,
    input  wire             out_ready,
    output reg  [WIDTH-1:0] out_data
);
    assign en = !(out_valid && !out_ready);
    always @(posedge clk) begin
        if (rst) out_valid <= 0;
        else if (en) begin
            out_valid <= valid;
            if (valid) out_data <= data;
        end
    end
endmodule

// A pipelined adder tree: the sum of N signed WIN-bit inputs, clog2(N) edges of en later (one
// adder level per stage; the inputs are padded with zeros to a power of two, nodes kept in heap
// order: node n adds nodes 2n+1 and 2n+2, the leaves come last).
module dn_addtree #(
    parameter N = 1,
    parameter WIN = 18
) (
    input  wire                              clk,
    input  wire                              en,
    input  wire [N*WIN-1:0]                  in,
    output wire [WIN+((N > 1) ? $clog2(N) : 0)-1:0] out
);
    localparam D = (N > 1) ? $clog2(N) : 0;
    localparam NP = 1 << D;
    localparam WO = WIN + D;
    wire [(2*NP-1)*WO-1:0] nodes;
    genvar n;
    generate
        if (D == 0) begin : single
            /* verilator lint_off UNUSEDSIGNAL */
            wire unused_ok = clk ^ en;  // one input: no stage
            /* verilator lint_on UNUSEDSIGNAL */
        end
        for (n = 0; n < NP; n = n + 1) begin : leaf
            if (n < N) begin : used
                if (D > 0) begin : ext
                    assign nodes[(NP - 1 + n)*WO +: WO] = {{D{in[n*WIN + WIN - 1]}}, in[n*WIN +: WIN]};
                end else begin : same
                    assign nodes[(NP - 1 + n)*WO +: WO] = in[n*WIN +: WIN];
                end
            end else begin : pad
                assign nodes[(NP - 1 + n)*WO +: WO] = {WO{1'b0}};
            end
        end
        for (n = 0; n < NP - 1; n = n + 1) begin : node
            reg [WO-1:0] r;
            always @(posedge clk) if (en) r <= nodes[(2*n + 1)*WO +: WO] + nodes[(2*n + 2)*WO +: WO];
            assign nodes[n*WO +: WO] = r;
        end
    endgenerate
    assign out = nodes[WO-1:0];
endmodule

// DEPTH registers moved on en (DEPTH = 0: a wire); rst clears the low bit of every stage (a
// valid flag travels there).
module dn_delay #(
    parameter WIDTH = 1,
    parameter DEPTH = 1
) (
    input  wire             clk,
    input  wire             rst,
    input  wire             en,
    input  wire [WIDTH-1:0] in,
    output wire [WIDTH-1:0] out
);
    generate
        if (DEPTH == 0) begin : wire_
            /* verilator lint_off UNUSEDSIGNAL */
            wire unused_ok = clk ^ rst ^ en;  // no stage
            /* verilator lint_on UNUSEDSIGNAL */
            assign out = in;
        end else begin : regs
            reg [WIDTH*DEPTH-1:0] r;
            integer k;
            always @(posedge clk) begin
                if (en) begin
                    r[WIDTH-1:0] <= in;
                    for (k = 1; k < DEPTH; k = k + 1) r[k*WIDTH +: WIDTH] <= r[(k-1)*WIDTH +: WIDTH];
                end
                if (rst) for (k = 0; k < DEPTH; k = k + 1) r[k*WIDTH] <= 1'b0;
            end
            assign out = r[(DEPTH-1)*WIDTH +: WIDTH];
        end
    endgenerate
endmodule

// The one requantize of irc.ir.quant_arith, per lane:
//   y = clamp(YZP + ((acc * mult + 2**(shift-1)) >>> shift), YMIN, YMAX)
// with a 64-bit product, an arithmetic shift, and saturation before narrowing to 8 bits
// (mult < 2**31, shift in [1, 62]). Pipelined, one step per edge of en (RQ_STAGES = 8): input
// registers; four partial products of 16-bit halves (each fits an 18x19 multiplier: two DSP blocks
// in all, as Arria 10 builds a 32-bit product); the middle products summed beside the high and low
// ones side by side; the 64-bit product; the rounding add; the shift by whole bytes; the shift by
// the remaining bits; the saturation (compared before the zero point is added, so no adder
// precedes the comparators). in_valid travels beside the data.
module dn_requant #(
    parameter YZP = 0,
    parameter YMIN = 0,
    parameter YMAX = 255
) (
    input  wire               clk,
    input  wire               rst,
    input  wire               en,
    input  wire               in_valid,
    input  wire signed [31:0] acc,
    input  wire [31:0]        mult,
    input  wire [7:0]         shift,
    output wire               out_valid,
    output reg  [7:0]         y
);
    localparam integer LO32 = YMIN - YZP;
    localparam integer HI32 = YMAX - YZP;
    localparam integer ZP32 = YZP;
    localparam integer MIN32 = YMIN;
    localparam integer MAX32 = YMAX;
    wire signed [63:0] lo = {{32{LO32[31]}}, LO32[31:0]};
    wire signed [63:0] hi = {{32{HI32[31]}}, HI32[31:0]};
    /* verilator lint_off UNUSEDSIGNAL */
    wire unused_ok = ^{shift[7:6], mult[31]};  // shift is below 64 and mult below 2**31 (quant_arith)
    /* verilator lint_on UNUSEDSIGNAL */
    reg signed [31:0] a0;
    reg [30:0] m0;
    reg [5:0] s0, s1, s2, s3, s4;
    reg [2:0] s5;
    reg signed [31:0] p_hh;
    reg signed [32:0] p_hl, p_lh;
    reg [31:0] p_ll;
    reg signed [33:0] mid;
    reg [63:0] hl;
    reg signed [63:0] prod, sum, q5, q6;
    reg [7:0] v;
    assign out_valid = v[7];
    always @(posedge clk) begin
        if (rst) v <= 8'd0;
        else if (en) v <= {v[6:0], in_valid};
        if (en) begin
            a0 <= acc;
            m0 <= mult[30:0];
            s0 <= shift[5:0];
            p_hh <= $signed(a0[31:16]) * $signed({1'b0, m0[30:16]});
            p_hl <= $signed(a0[31:16]) * $signed({1'b0, m0[15:0]});
            p_lh <= $signed({1'b0, a0[15:0]}) * $signed({1'b0, m0[30:16]});
            p_ll <= a0[15:0] * m0[15:0];
            s1 <= s0;
            mid <= p_hl + p_lh;
            hl <= {p_hh, p_ll};
            s2 <= s1;
            prod <= hl + {{14{mid[33]}}, mid, 16'd0};
            s3 <= s2;
            sum <= prod + (64'sd1 <<< (s3 - 6'd1));
            s4 <= s3;
            q5 <= sum >>> {s4[5:3], 3'b000};
            s5 <= s4[2:0];
            q6 <= q5 >>> s5;
            y <= (q6 < lo) ? MIN32[7:0] : (q6 > hi) ? MAX32[7:0] : q6[7:0] + ZP32[7:0];
        end
    end
endmodule
