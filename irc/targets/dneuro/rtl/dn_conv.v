// irc DNeuro block library: the generic convolution block.
//
// One block computes a whole conv layer of a frame (C x H x W in, M x HO x WO out): strided,
// padded (padding taps read as the zero point, i.e. contribute nothing), grouped, or depthwise
// (DW: each output channel reads its own input channel: partial connections). Fully connected
// layers are convolutions whose kernel covers the whole frame.
//
// Parallelism: PI input channels are read and multiplied at once against PO output channels
// (PI x PO multipliers; in depthwise mode PO lanes of one channel each), for PP output pixels of
// a row at once (PP > 1 only with PO = M: a result beat is PP whole pixels, lane p*PO + o). A
// window takes KH*KW*CG/PI cycles, so a frame takes HO*(WO/PP)*(M/PO)*KH*KW*(C/G)/PI cycles
// (DW: HO*(WO/PP)*(M/PO)*KH*KW). With Q > 1 (the input lanes cover every channel) an input beat
// holds Q whole pixels.
//
// Input rows go to the ring line buffer of dn_window (the window, the next SH rows, the next frame's
// first KH - PT rows: no stall at row or frame changes). Pipeline, one register per step so no
// path holds more than one adder or one multiplier: issue (counters) -> addresses -> memories ->
// products (DSP) -> a pipelined adder tree over the NI products of a lane (clog2(NI) stages) ->
// accumulate (32-bit wrap-around accumulators, started at the int32 bias) -> requantize
// (dn_requant's stages) -> output register (resources.conv_depth counts the edges). The whole
// pipeline holds while the output is not taken.
//
// Weight ROM: word t = ((beat*KH + kh)*KW + kw)*(CG/PI) + cb holds w[beat*PO + o][cb*PI + i][kh][kw]
// in lane o*PI + i (DW: lane o); the PP pixels share it. Parameter ROM: word = beat, lane o is
// {shift[7:0], mult[31:0], bias[31:0]} (72 bits) of output channel beat*PO + o.
//
// STREAM = 1: no weight ROM; the words come in that order, once per output pixel group, from the
// w_* stream (dn_wstream's FIFO of external-memory bursts). A step issues only when its word is
// there, and pops it; with STREAM = 0 the w_* ports are unused (tie w_valid low).

`timescale 1ns/1ps

module dn_conv #(
    parameter C = 1, parameter H = 1, parameter W = 1,
    parameter M = 1, parameter HO = 1, parameter WO = 1,
    parameter KH = 1, parameter KW = 1, parameter SH = 1, parameter SW = 1,
    parameter PT = 0, parameter PL = 0, parameter G = 1,
    parameter PI = 1, parameter PO = 1, parameter PP = 1, parameter Q = 1, parameter DW = 0,
    parameter IN_SIGNED = 0, parameter XZP = 0, parameter STREAM = 0,
    parameter YZP = 0, parameter YMIN = 0, parameter YMAX = 255,
    parameter WEIGHTS = "weights.mem", parameter PARAMS = "params.mem"
) (
    input  wire                             clk,
    input  wire                             rst,
    input  wire                             in_valid,
    output wire                             in_ready,
    input  wire [(DW ? PO : PI)*Q*8-1:0]    in_data,
    output wire                             out_valid,
    input  wire                             out_ready,
    output wire [PP*PO*8-1:0]               out_data,
    /* verilator lint_off UNUSEDSIGNAL */
    input  wire                             w_valid,
    input  wire [(DW ? PO : PO*PI)*8-1:0]   w_data,
    /* verilator lint_on UNUSEDSIGNAL */
    output wire                             w_ready
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
    localparam LANES = PP * PO;
    localparam TD = (NI > 1) ? $clog2(NI) : 0;       // adder-tree stages
    localparam SW_ = 18 + TD;                          // width of a lane's tree sum

    // ---- memories
    reg [PO*72-1:0] prom [0:MGRP-1];
    initial $readmemh(PARAMS, prom);

    // ---- issue stage: loop counters (beat, kh, kw, cb) of the output pixels dn_window walks
    integer mg, kh, kw, cb, mgi, wbase;
    reg [WAW-1:0] waddr;
    wire en, can_issue;
    wire wok = (STREAM == 0) || w_valid;   // the step's weight word is there
    wire go = can_issue && wok;
    assign w_ready = (STREAM != 0) && en && go;
    wire [PP-1:0] tap_in;
    wire first = (kh == 0) && (kw == 0) && (cb == 0);
    wire last = (kh == KH - 1) && (kw == KW - 1) && (cb == CBG - 1);

    wire [PP*LI*8-1:0] x_q;
    dn_window #(.LANES(LI), .CB(CB), .H(H), .W(W), .HO(HO), .WO(WO), .KH(KH), .SH(SH), .SW(SW),
                .PT(PT), .PL(PL), .PP(PP), .Q(Q)) win (
        .clk(clk), .rst(rst), .in_valid(in_valid), .in_ready(in_ready), .in_data(in_data),
        .en(en), .done(last && mg == MGRP - 1 && wok), .kh(kh), .kw(kw), .cw(wbase + cb),
        .issue(can_issue), .tap_in(tap_in), .x_q(x_q));

    // Addresses are registered (s0) beside dn_window's; the memories read them (s1).
    reg [WBITS-1:0] w_q;
    reg [PO*72-1:0] p_q;
    /* verilator lint_off UNUSEDSIGNAL */
    reg [WAW-1:0] s0_waddr;   // (the ROM's address: unused when the weights stream)
    /* verilator lint_on UNUSEDSIGNAL */
    reg [PAW-1:0] s0_paddr;
    reg s0_valid, s0_first, s0_last;
    reg s1_valid, s1_first, s1_last;
    reg [PP-1:0] s1_inside;

    always @(posedge clk) begin
        if (rst) begin
            mg <= 0; kh <= 0; kw <= 0; cb <= 0; mgi <= 0; wbase <= 0;
            waddr <= 0;
            s0_valid <= 0;
            s1_valid <= 0;
        end else if (en) begin
            s0_waddr <= waddr;
            s0_paddr <= mg[PAW-1:0];
            s0_valid <= go;
            s0_first <= first;
            s0_last <= last;
            p_q <= prom[s0_paddr];
            s1_valid <= s0_valid;
            s1_first <= s0_first;
            s1_last <= s0_last;
            s1_inside <= tap_in;
            if (go) begin
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

    // The weight word of each step, beside the other memories' outputs (s1).
    generate
        if (STREAM != 0) begin : wstream
            reg [WBITS-1:0] s0_w;
            always @(posedge clk) if (en) begin
                s0_w <= w_data;
                w_q <= s0_w;
            end
        end else begin : wrom_g
            reg [WBITS-1:0] wrom [0:WDEPTH-1];
            initial $readmemh(WEIGHTS, wrom);
            always @(posedge clk) if (en) w_q <= wrom[s0_waddr];
        end
    endgenerate

    // ---- products: (x - XZP) fits 10 signed bits and a weight 8, so each product is one small
    // (DSP) multiply into 18 bits; a tap outside the frame (padding) contributes zero.
    localparam integer XZP32 = XZP;
    function signed [9:0] xval(input [7:0] b);
        xval = (IN_SIGNED ? {b[7], b[7], b} : {2'b00, b}) - XZP32[9:0];
    endfunction

    reg [LANES*NI*18-1:0] pr_next, s2_pr;
    reg s2_valid, s2_first, s2_last;
    reg [PO*72-1:0] s2_p;
    integer pm, om, im;
    reg signed [9:0] xv;
    reg signed [7:0] wv;
    reg signed [17:0] pr;
    always @* begin
        for (pm = 0; pm < PP; pm = pm + 1)
            for (om = 0; om < PO; om = om + 1)
                for (im = 0; im < NI; im = im + 1) begin
                    xv = xval(x_q[(pm*LI + (DW ? om : im))*8 +: 8]);
                    wv = w_q[(om*NI + im)*8 +: 8];
                    pr = xv * wv;
                    pr_next[((pm*PO + om)*NI + im)*18 +: 18] = s1_inside[pm] ? pr : 18'sd0;
                end
    end
    always @(posedge clk) begin
        if (rst) s2_valid <= 0;
        else if (en) begin
            s2_valid <= s1_valid;
            s2_first <= s1_first;
            s2_last <= s1_last;
            s2_p <= p_q;
            s2_pr <= pr_next;
        end
    end

    // ---- adder trees (one per lane) and the flags and parameters beside them
    wire [LANES*SW_-1:0] sums;
    genvar g;
    generate
        for (g = 0; g < LANES; g = g + 1) begin : tree
            dn_addtree #(.N(NI), .WIN(18)) t (.clk(clk), .en(en), .in(s2_pr[g*NI*18 +: NI*18]),
                                              .out(sums[g*SW_ +: SW_]));
        end
    endgenerate
    wire t_valid, t_first, t_last;
    wire [PO*72-1:0] t_p;
    dn_delay #(.WIDTH(3 + PO*72), .DEPTH(TD)) tflags (.clk(clk), .rst(rst), .en(en),
        .in({s2_first, s2_last, s2_p, s2_valid}), .out({t_first, t_last, t_p, t_valid}));

    // ---- accumulate (32-bit wrap-around), then hand the last sum of a window to requantize
    reg [LANES*32-1:0] acc, acc_next, fin;
    reg [LANES*32-1:0] rq_mult;
    reg [LANES*8-1:0] rq_shift;
    reg rq_valid;
    reg signed [31:0] s;
    integer pa, oa;
    always @* begin
        for (pa = 0; pa < PP; pa = pa + 1)
            for (oa = 0; oa < PO; oa = oa + 1) begin
                s = t_first ? t_p[oa*72 +: 32] : acc[(pa*PO + oa)*32 +: 32];
                acc_next[(pa*PO + oa)*32 +: 32] = s + {{(32 - SW_){sums[(pa*PO + oa)*SW_ + SW_ - 1]}},
                                                       sums[(pa*PO + oa)*SW_ +: SW_]};
            end
    end
    // Every lane of channel o takes that channel's multiplier and shift.
    wire [LANES*32-1:0] lane_mult;
    wire [LANES*8-1:0] lane_shift;
    generate
        for (g = 0; g < LANES; g = g + 1) begin : lanep
            assign lane_mult[g*32 +: 32] = t_p[(g % PO)*72 + 32 +: 32];
            assign lane_shift[g*8 +: 8] = t_p[(g % PO)*72 + 64 +: 8];
        end
    endgenerate
    always @(posedge clk) begin
        if (rst) begin
            rq_valid <= 0;
        end else if (en) begin
            if (t_valid) acc <= acc_next;
            rq_valid <= t_valid && t_last;
            if (t_valid && t_last) begin
                fin <= acc_next;
                rq_mult <= lane_mult;
                rq_shift <= lane_shift;
            end
        end
    end

    // ---- requantize and output
    wire [LANES*8-1:0] y;
    wire [LANES-1:0] y_valid;
    generate
        for (g = 0; g < LANES; g = g + 1) begin : rq
            dn_requant #(.YZP(YZP), .YMIN(YMIN), .YMAX(YMAX)) u (
                .clk(clk), .rst(rst), .en(en), .in_valid(rq_valid),
                .acc(fin[g*32 +: 32]), .mult(rq_mult[g*32 +: 32]), .shift(rq_shift[g*8 +: 8]),
                .out_valid(y_valid[g]), .y(y[g*8 +: 8]));
        end
    endgenerate

    dn_outreg #(.WIDTH(LANES*8)) oreg (
        .clk(clk), .rst(rst), .valid(&y_valid), .data(y), .en(en),
        .out_valid(out_valid), .out_ready(out_ready), .out_data(out_data));
endmodule
