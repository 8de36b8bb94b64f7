// irc DNeuro block library: stream plumbing.
//
// Every tensor between blocks is a stream of beats, each beat LANES 8-bit codes (lane 0 in the
// low byte), pixels in raster order and the channels of a pixel in order, with valid/ready
// handshakes: a beat moves on a clock edge where valid and ready are both high. No block's
// ready depends combinationally on its own input valid, so joins and forks cannot loop.

`timescale 1ns/1ps

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
    wire [AW-1:0] rp_next = pop ? ((rp == DEPTH - 1) ? 0 : rp + 1'b1) : rp;
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
            if (push) wp <= (wp == DEPTH - 1) ? 0 : wp + 1'b1;
            rp <= rp_next;
            count <= count + push - pop;
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
            if (k == (sel ? NB : NA) - 1) begin
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

// The one requantize of irc.ir.quant_arith, per lane:
//   y = clamp(YZP + ((acc * mult + 2**(shift-1)) >>> shift), YMIN, YMAX)
// with a 64-bit product, an arithmetic shift, and saturation before narrowing to 8 bits.
module dn_requant #(
    parameter YZP = 0,
    parameter YMIN = 0,
    parameter YMAX = 255
) (
    input  wire signed [31:0] acc,
    input  wire [31:0]        mult,
    input  wire [7:0]         shift,
    output wire [7:0]         y
);
    wire signed [63:0] m64 = {32'd0, mult};
    wire signed [63:0] a64 = {{32{acc[31]}}, acc};
    wire signed [63:0] prod = a64 * m64;
    wire signed [63:0] rnd = 64'sd1 <<< (shift - 8'd1);
    wire signed [63:0] q = (prod + rnd) >>> shift;
    wire signed [63:0] z = q + YZP;
    wire signed [63:0] lo = YMIN;
    wire signed [63:0] hi = YMAX;
    assign y = (z < lo) ? lo[7:0] : (z > hi) ? hi[7:0] : z[7:0];
endmodule
