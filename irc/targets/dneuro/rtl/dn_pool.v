// irc DNeuro block library: max pooling.
//
// A KH x KW window with strides (SH, SW) and padding (PT, PL; bottom/right follow from HO, WO):
// taps outside the frame are skipped (padding never wins). P channels (lanes) are compared at
// once; a frame takes HO*WO*(C/P)*KH*KW cycles. The same sliding window (dn_window) as the conv block.

`timescale 1ns/1ps
/* verilator lint_off DECLFILENAME */  // files are named after the block kinds

module dn_maxpool #(
    parameter C = 1, parameter H = 1, parameter W = 1, parameter HO = 1, parameter WO = 1,
    parameter KH = 1, parameter KW = 1, parameter SH = 1, parameter SW = 1,
    parameter PT = 0, parameter PL = 0, parameter P = 1, parameter IN_SIGNED = 0
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

    // Taps (kh, kw) and channel word cb of the output pixel dn_window walks.
    integer cb, kh, kw;
    wire en, can_issue, tap_in;
    wire first = (kh == 0) && (kw == 0);
    wire last = (kh == KH - 1) && (kw == KW - 1);

    wire [P*8-1:0] x_q;
    dn_window #(.LANES(P), .CB(CB), .H(H), .W(W), .HO(HO), .WO(WO), .KH(KH), .SH(SH), .SW(SW),
                .PT(PT), .PL(PL)) win (
        .clk(clk), .rst(rst), .in_valid(in_valid), .in_ready(in_ready), .in_data(in_data),
        .en(en), .done(last && cb == CB - 1), .kh(kh), .kw(kw), .cw(cb),
        .issue(can_issue), .tap_in(tap_in), .x_q(x_q));

    // Flags registered beside dn_window's addresses (s0), then beside its data (s1).
    reg s0_valid, s0_first, s0_last;
    reg s1_valid, s1_first, s1_last, s1_inside;
    always @(posedge clk) begin
        if (rst) begin
            cb <= 0; kh <= 0; kw <= 0;
            s0_valid <= 0;
            s1_valid <= 0;
        end else if (en) begin
            s0_valid <= can_issue;
            s0_first <= first;
            s0_last <= last;
            s1_valid <= s0_valid;
            s1_first <= s0_first;
            s1_last <= s0_last;
            s1_inside <= tap_in;
            if (can_issue) begin
                if (kw != KW - 1) kw <= kw + 1;
                else begin
                    kw <= 0;
                    if (kh != KH - 1) kh <= kh + 1;
                    else begin
                        kh <= 0;
                        cb <= (cb != CB - 1) ? cb + 1 : 0;
                    end
                end
            end
        end
    end

    // Running maximum per lane, as 10-bit signed values (below every code until a tap is in).
    reg [P*10-1:0] cur, nxt;
    reg s2_valid;
    integer j;
    reg signed [9:0] v, c0;
    always @* begin
        for (j = 0; j < P; j = j + 1) begin
            v = IN_SIGNED ? {{2{x_q[j*8 + 7]}}, x_q[j*8 +: 8]} : {2'b00, x_q[j*8 +: 8]};
            c0 = s1_first ? -10'sd512 : cur[j*10 +: 10];
            nxt[j*10 +: 10] = (s1_inside && v > c0) ? v : c0;
        end
    end
    always @(posedge clk) begin
        if (rst) s2_valid <= 0;
        else if (en) begin
            if (s1_valid) cur <= nxt;
            s2_valid <= s1_valid && s1_last;
        end
    end

    wire [P*8-1:0] y;
    genvar g;
    generate
        for (g = 0; g < P; g = g + 1) begin : lane
            assign y[g*8 +: 8] = cur[g*10 +: 8];
        end
    endgenerate
    dn_outreg #(.WIDTH(P*8)) oreg (
        .clk(clk), .rst(rst), .valid(s2_valid), .data(y), .en(en),
        .out_valid(out_valid), .out_ready(out_ready), .out_data(out_data));
endmodule
