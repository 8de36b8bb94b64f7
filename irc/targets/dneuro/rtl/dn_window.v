// irc DNeuro block library: the sliding window of the windowed blocks (conv, max pool).

`timescale 1ns/1ps

// The output-pixel walk of a windowed block (a KH-row window with strides (SH, SW) and padding
// (PT, PL) over a frame of H x W pixels of CB words, HO x WO output pixels) on a ring line buffer
// of NR = 2*KH + SH - PT rows: the window, the next SH rows, the next frame's first KH - PT rows,
// so nothing stalls at row or frame changes. Output row oh starts once the rows it needs are in,
// while the next SH rows stream in.
//
// The block walks the taps (kh, kw) and channel word cw of the current output pixel itself:
// issue says the rows of that pixel are in, tap_in that the tap lies inside the frame. On an edge
// where en is high, x_q takes the tap's word (an arbitrary word outside the frame), and when issue
// and done (the pixel's last tap) are both high the walk moves on to the next output pixel in
// raster order, frame after frame.
module dn_window #(
    parameter LANES = 1, parameter CB = 1, parameter H = 1, parameter W = 1,
    parameter HO = 1, parameter WO = 1, parameter KH = 1, parameter SH = 1, parameter SW = 1,
    parameter PT = 0, parameter PL = 0
) (
    input  wire               clk,
    input  wire               rst,
    input  wire               in_valid,
    output wire               in_ready,
    input  wire [LANES*8-1:0] in_data,
    input  wire               en,
    input  wire               done,
    input  wire [31:0]        kh,
    input  wire [31:0]        kw,
    input  wire [31:0]        cw,
    output wire               issue,
    output wire               tap_in,
    output wire [LANES*8-1:0] x_q
);
    localparam NR = 2 * KH + SH - PT;
    localparam LBD = NR * W * CB;
    localparam LAW = (LBD > 1) ? $clog2(LBD) : 1;
    localparam HM = H % NR;
    localparam PTM = PT % NR;

    integer oh, ow, top_slot, fbase_slot, ih_top, iw_left;
    reg [31:0] fbase;
    wire [31:0] rows_done;
    integer need_rows;
    always @* begin
        need_rows = ih_top + KH;
        if (need_rows > H) need_rows = H;
    end
    assign issue = $signed(rows_done - (fbase + need_rows)) >= 0;
    wire [31:0] free_row = fbase + ((ih_top > 0) ? ih_top : 0);

    wire signed [31:0] ih = ih_top + kh;
    wire signed [31:0] iw = iw_left + kw;
    assign tap_in = (ih >= 0) && (ih < H) && (iw >= 0) && (iw < W);
    wire [31:0] slot_raw = top_slot + kh;
    wire [31:0] slot = (slot_raw >= NR) ? slot_raw - NR : slot_raw;
    wire [31:0] lb_addr = tap_in ? (slot * (W * CB) + iw * CB + cw) : 0;

    dn_linebuf #(.LANES(LANES), .W(W), .CB(CB), .NR(NR), .AW(LAW)) lb (
        .clk(clk), .rst(rst), .in_valid(in_valid), .in_ready(in_ready), .in_data(in_data),
        .free_row(free_row), .rows_done(rows_done), .rd_en(en), .rd_addr(lb_addr[LAW-1:0]), .rd_data(x_q));

    // Modular slot arithmetic (all operands below NR).
    function integer add_mod(input integer a, input integer b);
        add_mod = (a + b >= NR) ? a + b - NR : a + b;
    endfunction
    function integer sub_mod(input integer a, input integer b);
        sub_mod = (a >= b) ? a - b : a + NR - b;
    endfunction

    always @(posedge clk) begin
        if (rst) begin
            oh <= 0; ow <= 0;
            ih_top <= -PT; iw_left <= -PL; fbase <= 0; fbase_slot <= 0; top_slot <= sub_mod(0, PTM);
        end else if (en && issue && done) begin
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
endmodule

// Line buffer: the last NR rows of a frame of W pixels x CB words (LANES codes each), as a
// ring. rows_done counts completed rows since reset (modulo 2**32); a row may be written while
// rows_done - free_row < NR, i.e. while it does not overwrite a row the reader still needs.
module dn_linebuf #(
    parameter LANES = 1,
    parameter W = 1,
    parameter CB = 1,
    parameter NR = 1,
    parameter AW = 1
) (
    input  wire              clk,
    input  wire              rst,
    input  wire              in_valid,
    output wire              in_ready,
    input  wire [LANES*8-1:0] in_data,
    input  wire [31:0]       free_row,
    output reg  [31:0]       rows_done,
    input  wire              rd_en,
    input  wire [AW-1:0]     rd_addr,
    output reg  [LANES*8-1:0] rd_data
);
    localparam ROWW = W * CB;
    localparam DEPTH = NR * ROWW;
    reg [LANES*8-1:0] mem [0:DEPTH-1];
    reg [AW-1:0] wptr;
    reg [31:0] wcnt;
    wire [31:0] ahead = rows_done - free_row;
    assign in_ready = ahead < NR;
    always @(posedge clk) begin
        if (rst) begin
            wptr <= 0;
            wcnt <= 0;
            rows_done <= 0;
        end else if (in_valid && in_ready) begin
            mem[wptr] <= in_data;
            wptr <= (wptr == DEPTH - 1) ? 0 : wptr + 1'b1;
            if (wcnt == ROWW - 1) begin
                wcnt <= 0;
                rows_done <= rows_done + 1;
            end else begin
                wcnt <= wcnt + 1;
            end
        end
        if (rd_en) rd_data <= mem[rd_addr];
    end
endmodule
