// irc DNeuro block library: max pooling.
//
// A KH x KW window with strides (SH, SW) and padding (PT, PL; bottom/right follow from HO, WO):
// taps outside the frame are skipped (padding never wins). P channels (lanes) are compared at
// once; a frame takes HO*WO*(C/P)*KH*KW cycles. The same ring line buffer as the conv block.

`timescale 1ns/1ps

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
    output reg            out_valid,
    input  wire           out_ready,
    output reg  [P*8-1:0] out_data
);
    localparam CB = C / P;
    localparam NR = 2 * KH + SH - PT;
    localparam LBD = NR * W * CB;
    localparam LAW = (LBD > 1) ? $clog2(LBD) : 1;
    localparam HM = H % NR;
    localparam PTM = PT % NR;

    integer oh, ow, cb, kh, kw, top_slot, fbase_slot, ih_top, iw_left;
    reg [31:0] fbase;
    wire en = !(out_valid && !out_ready);
    wire [31:0] rows_done;
    integer need_rows;
    always @* begin
        need_rows = ih_top + KH;
        if (need_rows > H) need_rows = H;
    end
    wire can_issue = $signed(rows_done - (fbase + need_rows)) >= 0;
    wire [31:0] free_row = fbase + ((ih_top > 0) ? ih_top : 0);
    wire signed [31:0] ih = ih_top + kh;
    wire signed [31:0] iw = iw_left + kw;
    wire tap_in = (ih >= 0) && (ih < H) && (iw >= 0) && (iw < W);
    wire [31:0] slot_raw = top_slot + kh;
    wire [31:0] slot = (slot_raw >= NR) ? slot_raw - NR : slot_raw;
    wire [31:0] lb_addr = tap_in ? (slot * (W * CB) + iw * CB + cb) : 0;
    wire first = (kh == 0) && (kw == 0);
    wire last = (kh == KH - 1) && (kw == KW - 1);

    wire [P*8-1:0] x_q;
    dn_linebuf #(.LANES(P), .W(W), .CB(CB), .NR(NR), .AW(LAW)) lb (
        .clk(clk), .rst(rst), .in_valid(in_valid), .in_ready(in_ready), .in_data(in_data),
        .free_row(free_row), .rows_done(rows_done), .rd_en(en), .rd_addr(lb_addr[LAW-1:0]), .rd_data(x_q));

    function integer add_mod(input integer a, input integer b);
        add_mod = (a + b >= NR) ? a + b - NR : a + b;
    endfunction
    function integer sub_mod(input integer a, input integer b);
        sub_mod = (a >= b) ? a - b : a + NR - b;
    endfunction

    reg s1_valid, s1_first, s1_last, s1_inside;
    always @(posedge clk) begin
        if (rst) begin
            oh <= 0; ow <= 0; cb <= 0; kh <= 0; kw <= 0;
            ih_top <= -PT; iw_left <= -PL; fbase <= 0; fbase_slot <= 0; top_slot <= sub_mod(0, PTM);
            s1_valid <= 0;
        end else if (en) begin
            s1_valid <= can_issue;
            s1_first <= first;
            s1_last <= last;
            s1_inside <= tap_in;
            if (can_issue) begin
                if (kw != KW - 1) kw <= kw + 1;
                else begin
                    kw <= 0;
                    if (kh != KH - 1) kh <= kh + 1;
                    else begin
                        kh <= 0;
                        if (cb != CB - 1) cb <= cb + 1;
                        else begin
                            cb <= 0;
                            if (ow != WO - 1) begin
                                ow <= ow + 1;
                                iw_left <= iw_left + SW;
                            end else begin
                                ow <= 0;
                                iw_left <= -PL;
                                if (oh != HO - 1) begin
                                    oh <= oh + 1;
                                    ih_top <= ih_top + SH;
                                    top_slot <= add_mod(top_slot, SH);
                                end else begin
                                    oh <= 0;
                                    ih_top <= -PT;
                                    fbase <= fbase + H;
                                    fbase_slot <= add_mod(fbase_slot, HM);
                                    top_slot <= sub_mod(add_mod(fbase_slot, HM), PTM);
                                end
                            end
                        end
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
        if (rst) begin
            s2_valid <= 0;
            out_valid <= 0;
        end else if (en) begin
            if (s1_valid) cur <= nxt;
            s2_valid <= s1_valid && s1_last;
            out_valid <= s2_valid;
            if (s2_valid)
                for (j = 0; j < P; j = j + 1) out_data[j*8 +: 8] <= cur[j*10 +: 8];
        end
    end
endmodule
