// irc DNeuro block library: per-element blocks (P lanes each, one beat per cycle).

`timescale 1ns/1ps
/* verilator lint_off DECLFILENAME */  // several modules per file: the library's layout

// Element-wise sum: acc = AM*(a - AZP) + BM*(b - BZP), requantized (irc.ir.quant_arith).
// Pipelined: the two offsets are registered, the weighted sum is registered (two small DSP
// products), then dn_requant's stages; the pipeline holds while the output is not taken.
module dn_eltwise #(
    parameter P = 1, parameter A_SIGNED = 0, parameter B_SIGNED = 0,
    parameter AZP = 0, parameter BZP = 0, parameter AM = 1, parameter BM = 1,
    parameter MULT = 1073741824, parameter SHIFT = 31,
    parameter YZP = 0, parameter YMIN = 0, parameter YMAX = 255
) (
    input  wire           clk,
    input  wire           rst,
    input  wire           a_valid,
    output wire           a_ready,
    input  wire [P*8-1:0] a_data,
    input  wire           b_valid,
    output wire           b_ready,
    input  wire [P*8-1:0] b_data,
    output wire           out_valid,
    input  wire           out_ready,
    output wire [P*8-1:0] out_data
);
    localparam [31:0] MULT32 = MULT;
    localparam [7:0] SHIFT8 = SHIFT;
    localparam signed [31:0] AM32 = AM;
    localparam signed [31:0] BM32 = BM;
    wire en;
    wire fire = en && a_valid && b_valid;
    assign a_ready = en && b_valid;
    assign b_ready = en && a_valid;
    reg v1, v2;
    always @(posedge clk) begin
        if (rst) begin
            v1 <= 1'b0;
            v2 <= 1'b0;
        end else if (en) begin
            v1 <= fire;
            v2 <= v1;
        end
    end
    wire [P*8-1:0] y;
    wire [P-1:0] y_valid;
    genvar g;
    generate
        for (g = 0; g < P; g = g + 1) begin : lane
            wire [7:0] ab = a_data[g*8 +: 8];
            wire [7:0] bb = b_data[g*8 +: 8];
            wire [31:0] ae = A_SIGNED ? {{24{ab[7]}}, ab} : {24'd0, ab};
            wire [31:0] be = B_SIGNED ? {{24{bb[7]}}, bb} : {24'd0, bb};
            reg signed [31:0] av, bv, acc;
            always @(posedge clk) begin
                if (en) begin
                    av <= ae - AZP;
                    bv <= be - BZP;
                    acc <= av * AM32 + bv * BM32;
                end
            end
            dn_requant #(.YZP(YZP), .YMIN(YMIN), .YMAX(YMAX)) u (
                .clk(clk), .rst(rst), .en(en), .in_valid(v2), .acc(acc), .mult(MULT32), .shift(SHIFT8),
                .out_valid(y_valid[g]), .y(y[g*8 +: 8]));
        end
    endgenerate
    dn_outreg #(.WIDTH(P*8)) oreg (
        .clk(clk), .rst(rst), .valid(&y_valid), .data(y), .en(en),
        .out_valid(out_valid), .out_ready(out_ready), .out_data(out_data));
endmodule

// A table of 256 codes applied to every lane (activations such as the logistic function).
module dn_lut #(
    parameter P = 1, parameter IN_SIGNED = 0, parameter TABLE = "table.mem"
) (
    input  wire           clk,
    input  wire           rst,
    input  wire           in_valid,
    output wire           in_ready,
    input  wire [P*8-1:0] in_data,
    output reg            out_valid,
    input  wire           out_ready,
    output reg  [P*8-1:0] out_data
);
    reg [7:0] rom [0:255];
    initial $readmemh(TABLE, rom);
    wire en = !(out_valid && !out_ready);
    assign in_ready = en;
    integer j;
    always @(posedge clk) begin
        if (rst) out_valid <= 0;
        else if (en) begin
            out_valid <= in_valid;
            if (in_valid)
                for (j = 0; j < P; j = j + 1)
                    out_data[j*8 +: 8] <= rom[in_data[j*8 +: 8] ^ (IN_SIGNED ? 8'h80 : 8'h00)];
        end
    end
endmodule

// Nearest-neighbour upsampling by whole factors (FH, FW): input rows go to two row buffers in
// turn; while one row is written FH times (every pixel repeated FW times), the next one fills.
// The buffers are one dn_ram: each edge reads the word the emitter will show next.
module dn_upsample #(
    parameter C = 1, parameter W = 1, parameter FH = 1, parameter FW = 1, parameter P = 1
) (
    input  wire           clk,
    input  wire           rst,
    input  wire           in_valid,
    output wire           in_ready,
    input  wire [P*8-1:0] in_data,
    output wire           out_valid,
    input  wire           out_ready,
    output wire [P*8-1:0] out_data
);
    localparam CB = C / P;
    localparam ROWW = W * CB;
    reg [1:0] full;
    reg wsel, rsel;
    integer wcnt, r, c, f, cb;
    integer r_n, c_n, f_n, cb_n;
    reg rsel_n;
    wire push = in_valid && in_ready;
    wire pop = out_valid && out_ready;
    assign in_ready = !full[wsel];
    assign out_valid = full[rsel];
    wire wdone = push && (wcnt == ROWW - 1);
    wire rdone = pop && (cb == CB - 1) && (f == FW - 1) && (c == W - 1) && (r == FH - 1);
    wire [31:0] waddr = (wsel ? ROWW : 0) + wcnt;
    always @* begin
        r_n = r; c_n = c; f_n = f; cb_n = cb; rsel_n = rsel;
        if (pop) begin
            if (cb != CB - 1) cb_n = cb + 1;
            else begin
                cb_n = 0;
                if (f != FW - 1) f_n = f + 1;
                else begin
                    f_n = 0;
                    if (c != W - 1) c_n = c + 1;
                    else begin
                        c_n = 0;
                        if (r != FH - 1) r_n = r + 1;
                        else begin
                            r_n = 0;
                            rsel_n = !rsel;
                        end
                    end
                end
            end
        end
    end
    wire [31:0] raddr_n = (rsel_n ? ROWW : 0) + c_n * CB + cb_n;
    dn_ram #(.WIDTH(P*8), .DEPTH(2*ROWW), .AW(32)) rows (
        .clk(clk), .we(push), .waddr(waddr), .wdata(in_data), .raddr(raddr_n), .rdata(out_data));
    always @(posedge clk) begin
        if (rst) begin
            full <= 2'b00;
            wsel <= 0; rsel <= 0;
            wcnt <= 0; r <= 0; c <= 0; f <= 0; cb <= 0;
        end else begin
            if (push) begin
                if (wcnt == ROWW - 1) begin
                    wcnt <= 0;
                    wsel <= !wsel;
                end else wcnt <= wcnt + 1;
            end
            r <= r_n; c <= c_n; f <= f_n; cb <= cb_n; rsel <= rsel_n;
            full <= (full | (wdone ? (wsel ? 2'b10 : 2'b01) : 2'b00)) & ~(rdone ? (rsel ? 2'b10 : 2'b01) : 2'b00);
        end
    end
endmodule

// Top-1 class: the index of the largest of C codes (the first of equal ones), as 16 bits.
module dn_argmax #(
    parameter C = 1, parameter P = 1, parameter IN_SIGNED = 1
) (
    input  wire           clk,
    input  wire           rst,
    input  wire           in_valid,
    output wire           in_ready,
    input  wire [P*8-1:0] in_data,
    output reg            out_valid,
    input  wire           out_ready,
    output reg  [15:0]    out_data
);
    localparam NB = C / P;
    integer beat, j;
    /* verilator lint_off UNUSEDSIGNAL */
    integer idx;  // a class index, below C < 2**16
    /* verilator lint_on UNUSEDSIGNAL */
    reg signed [9:0] best, nbest, v;
    reg [15:0] besti, nbesti;
    assign in_ready = !out_valid;
    always @* begin
        nbest = best;
        nbesti = besti;
        idx = 0;
        for (j = 0; j < P; j = j + 1) begin
            v = IN_SIGNED ? {{2{in_data[j*8 + 7]}}, in_data[j*8 +: 8]} : {2'b00, in_data[j*8 +: 8]};
            if ((beat == 0 && j == 0) || v > nbest) begin
                nbest = v;
                idx = beat * P + j;
                nbesti = idx[15:0];
            end
        end
    end
    always @(posedge clk) begin
        if (rst) begin
            out_valid <= 0;
            beat <= 0;
        end else begin
            if (out_valid && out_ready) out_valid <= 0;
            if (in_valid && in_ready) begin
                best <= nbest;
                besti <= nbesti;
                if (beat == NB - 1) begin
                    beat <= 0;
                    out_valid <= 1;
                    out_data <= nbesti;
                end else beat <= beat + 1;
            end
        end
    end
endmodule
