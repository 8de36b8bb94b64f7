// irc DNeuro block library: the generic convolution block.
//
// One block computes a whole conv layer of a frame (C x H x W in, M x HO x WO out): strided,
// padded (padding taps read as the zero point, i.e. contribute nothing), grouped, or depthwise
// (DW: each output channel reads its own input channel: partial connections). Fully connected
// layers are convolutions whose kernel covers the whole frame.
//
// Parallelism: PI input channels are read and multiplied at once against PO output channels
// (PI x PO multipliers; in depthwise mode PO lanes of one channel each); PO output channels are
// written per beat. A window takes KH*KW*CG/PI cycles, so a frame takes
// HO*WO*(M/PO)*KH*KW*(C/G)/PI cycles (DW: HO*WO*(M/PO)*KH*KW).
//
// Input rows go to the ring line buffer of dn_window (the window, the next SH rows, the next frame's
// first KH - PT rows: no stall at row or frame changes). Pipeline: issue (addresses) -> memories ->
// multiply-accumulate (32-bit wrap-around accumulators, started at the int32 bias) -> requantize
// (dn_requant) -> output register. The whole pipeline holds while the output is not taken.
//
// Weight ROM: word t = ((beat*KH + kh)*KW + kw)*(CG/PI) + cb holds w[beat*PO + o][cb*PI + i][kh][kw]
// in lane o*PI + i (DW: lane o). Parameter ROM: word = beat, lane o is {shift[7:0], mult[31:0],
// bias[31:0]} (72 bits) of output channel beat*PO + o.

`timescale 1ns/1ps

module dn_conv #(
    parameter C = 1, parameter H = 1, parameter W = 1,
    parameter M = 1, parameter HO = 1, parameter WO = 1,
    parameter KH = 1, parameter KW = 1, parameter SH = 1, parameter SW = 1,
    parameter PT = 0, parameter PL = 0, parameter G = 1,
    parameter PI = 1, parameter PO = 1, parameter DW = 0,
    parameter IN_SIGNED = 0, parameter XZP = 0,
    parameter YZP = 0, parameter YMIN = 0, parameter YMAX = 255,
    parameter WEIGHTS = "weights.mem", parameter PARAMS = "params.mem"
) (
    input  wire                             clk,
    input  wire                             rst,
    input  wire                             in_valid,
    output wire                             in_ready,
    input  wire [(DW ? PO : PI)*8-1:0]      in_data,
    output wire                             out_valid,
    input  wire                             out_ready,
    output wire [PO*8-1:0]                  out_data
);
    localparam LI = DW ? PO : PI;
    localparam NI = DW ? 1 : PI;
    localparam CB = C / LI;
    localparam CG = C / G;
    localparam MG = M / G;
    localparam CBG = DW ? 1 : CG / PI;
    localparam MGRP = M / PO;
    localparam WPG = DW ? 1 : MG / PO;
    localparam TERMS = KH * KW * CBG;
    localparam WDEPTH = MGRP * TERMS;
    localparam WBITS = PO * NI * 8;
    localparam WAW = (WDEPTH > 1) ? $clog2(WDEPTH) : 1;
    localparam PAW = (MGRP > 1) ? $clog2(MGRP) : 1;

    // ---- memories
    reg [WBITS-1:0] wrom [0:WDEPTH-1];
    reg [PO*72-1:0] prom [0:MGRP-1];
    initial begin
        $readmemh(WEIGHTS, wrom);
        $readmemh(PARAMS, prom);
    end

    // ---- issue stage: loop counters (beat, kh, kw, cb) of the output pixel dn_window walks
    integer mg, kh, kw, cb, mgi, wbase;
    reg [WAW-1:0] waddr;
    wire en, can_issue, tap_in;
    wire first = (kh == 0) && (kw == 0) && (cb == 0);
    wire last = (kh == KH - 1) && (kw == KW - 1) && (cb == CBG - 1);

    wire [LI*8-1:0] x_q;
    dn_window #(.LANES(LI), .CB(CB), .H(H), .W(W), .HO(HO), .WO(WO), .KH(KH), .SH(SH), .SW(SW),
                .PT(PT), .PL(PL)) win (
        .clk(clk), .rst(rst), .in_valid(in_valid), .in_ready(in_ready), .in_data(in_data),
        .en(en), .done(last && mg == MGRP - 1), .kh(kh), .kw(kw), .cw(wbase + cb),
        .issue(can_issue), .tap_in(tap_in), .x_q(x_q));

    reg [WBITS-1:0] w_q;
    reg [PO*72-1:0] p_q;
    reg s1_valid, s1_first, s1_last, s1_inside;

    always @(posedge clk) begin
        if (rst) begin
            mg <= 0; kh <= 0; kw <= 0; cb <= 0; mgi <= 0; wbase <= 0;
            waddr <= 0;
            s1_valid <= 0;
        end else if (en) begin
            w_q <= wrom[waddr];
            p_q <= prom[mg[PAW-1:0]];
            s1_valid <= can_issue;
            s1_first <= first;
            s1_last <= last;
            s1_inside <= tap_in;
            if (can_issue) begin
                if (!last) begin
                    waddr <= waddr + 1'b1;
                    if (cb != CBG - 1) cb <= cb + 1;
                    else begin
                        cb <= 0;
                        if (kw != KW - 1) kw <= kw + 1;
                        else begin
                            kw <= 0;
                            kh <= kh + 1;
                        end
                    end
                end else begin
                    cb <= 0; kw <= 0; kh <= 0;
                    if (mg != MGRP - 1) begin
                        mg <= mg + 1;
                        waddr <= waddr + 1'b1;
                        if (DW) wbase <= wbase + 1;
                        else if (mgi == WPG - 1) begin
                            mgi <= 0;
                            wbase <= wbase + CBG;
                        end else mgi <= mgi + 1;
                    end else begin
                        mg <= 0; mgi <= 0; wbase <= 0; waddr <= 0;
                    end
                end
            end
        end
    end

    // ---- multiply-accumulate stage
    // (x - XZP) fits 10 signed bits and a weight 8: each product is a small (DSP) multiply.
    function signed [9:0] xval(input [7:0] b);
        reg [31:0] t;
        begin
            t = (IN_SIGNED ? {{24{b[7]}}, b} : {24'd0, b}) - XZP;
            xval = t[9:0];
        end
    endfunction

    reg [PO*32-1:0] acc, acc_next, fin;
    reg [PO*32-1:0] s2_mult;
    reg [PO*8-1:0] s2_shift;
    reg s2_valid;
    integer o, i;
    reg signed [31:0] s;
    reg signed [9:0] xv;
    reg signed [7:0] wv;
    reg signed [17:0] pr;
    always @* begin
        for (o = 0; o < PO; o = o + 1) begin
            s = s1_first ? p_q[o*72 +: 32] : acc[o*32 +: 32];
            for (i = 0; i < NI; i = i + 1) begin
                xv = xval(x_q[(DW ? o : i)*8 +: 8]);
                wv = w_q[(o*NI + i)*8 +: 8];
                pr = xv * wv;
                if (s1_inside) s = s + pr;
            end
            acc_next[o*32 +: 32] = s;
        end
    end

    always @(posedge clk) begin
        if (rst) begin
            s2_valid <= 0;
        end else if (en) begin
            if (s1_valid) acc <= acc_next;
            s2_valid <= s1_valid && s1_last;
            if (s1_valid && s1_last) begin
                fin <= acc_next;
                for (o = 0; o < PO; o = o + 1) begin
                    s2_mult[o*32 +: 32] <= p_q[o*72 + 32 +: 32];
                    s2_shift[o*8 +: 8] <= p_q[o*72 + 64 +: 8];
                end
            end
        end
    end

    // ---- requantize and output
    wire [PO*8-1:0] y;
    genvar g;
    generate
        for (g = 0; g < PO; g = g + 1) begin : rq
            dn_requant #(.YZP(YZP), .YMIN(YMIN), .YMAX(YMAX)) u (
                .acc(fin[g*32 +: 32]), .mult(s2_mult[g*32 +: 32]), .shift(s2_shift[g*8 +: 8]), .y(y[g*8 +: 8]));
        end
    endgenerate

    dn_outreg #(.WIDTH(PO*8)) oreg (
        .clk(clk), .rst(rst), .valid(s2_valid), .data(y), .en(en),
        .out_valid(out_valid), .out_ready(out_ready), .out_data(out_data));
endmodule
