// irc DNeuro block library: the sliding window of the windowed blocks (conv, max pool).

`timescale 1ns/1ps
/* verilator lint_off DECLFILENAME */  // several modules per file: the library's layout

// The output-pixel walk of a windowed block (a KH-row window with strides (SH, SW) and padding
// (PT, PL) over a frame of H x W pixels of CB words, HO x WO output pixels) on a ring line buffer
// of NR = 2*KH + SH - PT rows: the window, the next SH rows, the next frame's first KH - PT rows,
// so nothing stalls at row or frame changes. Output row oh starts once the rows it needs are in,
// while the next SH rows stream in.
//
// PP output pixels of a row are walked at once (PP divides WO): tap p of the group reads the line
// buffer at its own address (one read port per pixel). With Q > 1 (CB = 1, Q divides W) an input
// beat and a line-buffer word hold Q whole pixels of LANES codes, and a tap selects its pixel.
//
// The block walks the taps (kh, kw) and channel word cw of the current output pixels itself:
// issue says the rows of those pixels are in. Reading is two steps, so that the address
// arithmetic and the memory each have a cycle: on an edge where en is high the tap's addresses
// and tap_in[p] (pixel p's tap lies inside the frame) are registered, and on the next such edge
// x_q takes each pixel's tap word (an arbitrary word outside the frame). When issue and done
// (the pixels' last tap) are both high the walk moves on to the next PP output pixels in raster
// order, frame after frame; the rows it frees are released to the writer one en edge later,
// after the last read of them.
module dn_window #(
    parameter LANES = 1, parameter CB = 1, parameter H = 1, parameter W = 1,
    parameter HO = 1, parameter WO = 1, parameter KH = 1, parameter SH = 1, parameter SW = 1,
    parameter PT = 0, parameter PL = 0, parameter PP = 1, parameter Q = 1
) (
    input  wire                    clk,
    input  wire                    rst,
    input  wire                    in_valid,
    output wire                    in_ready,
    input  wire [LANES*Q*8-1:0]    in_data,
    input  wire                    en,
    input  wire                    done,
    input  wire [31:0]             kh,
    input  wire [31:0]             kw,
    input  wire [31:0]             cw,
    output wire                    issue,
    output reg  [PP-1:0]           tap_in,
    output wire [PP*LANES*8-1:0]   x_q
);
    localparam NR = 2 * KH + SH - PT;
    localparam ROWW = (W / Q) * CB;
    localparam LBD = NR * ROWW;
    localparam LAW = (LBD > 1) ? $clog2(LBD) : 1;
    localparam HM = H % NR;
    localparam PTM = PT % NR;
    localparam WORD = LANES * Q * 8;

    integer oh, ow, top_slot, fbase_slot, ih_top, iw_left;
    reg [31:0] fbase;
    wire [31:0] rows_done;
    integer need_rows;
    always @* begin
        need_rows = ih_top + KH;
        if (need_rows > H) need_rows = H;
    end
    assign issue = $signed(rows_done - (fbase + need_rows)) >= 0;
    wire [31:0] free_now = fbase + ((ih_top > 0) ? ih_top : 0);
    reg [31:0] free_row;
    always @(posedge clk) begin
        if (rst) free_row <= 0;
        else if (en) free_row <= free_now;
    end

    wire signed [31:0] ih = ih_top + kh;
    wire row_in = (ih >= 0) && (ih < H);
    wire [31:0] slot_raw = top_slot + kh;
    wire [31:0] slot = (slot_raw >= NR) ? slot_raw - NR : slot_raw;
    reg [PP*LAW-1:0] lb_addr;
    wire [PP*WORD-1:0] words;

    genvar p;
    generate
        for (p = 0; p < PP; p = p + 1) begin : tap
            wire signed [31:0] iw = iw_left + p * SW + kw;
            wire in_frame = row_in && (iw >= 0) && (iw < W);
            wire [31:0] col = in_frame ? iw : 0;
            /* verilator lint_off UNUSEDSIGNAL */
            wire [31:0] addr = in_frame ? (cmul(slot, ROWW) + cmul(col / Q, CB) + cw) : 0;  // the low LAW bits address
            /* verilator lint_on UNUSEDSIGNAL */
            always @(posedge clk) begin
                if (en) begin
                    lb_addr[p*LAW +: LAW] <= addr[LAW-1:0];
                    tap_in[p] <= in_frame;
                end
            end
            if (Q > 1) begin : pick
                reg [31:0] sel_a, sel;  // the pixel within the word, beside the address, then the data
                always @(posedge clk) begin
                    if (en) begin
                        sel_a <= col % Q;
                        sel <= sel_a;
                    end
                end
                assign x_q[p*LANES*8 +: LANES*8] = words[p*WORD + sel*LANES*8 +: LANES*8];
            end else begin : whole
                assign x_q[p*LANES*8 +: LANES*8] = words[p*WORD +: WORD];
            end
        end
    endgenerate

    dn_linebuf #(.WIDTH(WORD), .ROWW(ROWW), .NR(NR), .AW(LAW), .PORTS(PP)) lb (
        .clk(clk), .rst(rst), .in_valid(in_valid), .in_ready(in_ready), .in_data(in_data),
        .free_row(free_row), .rows_done(rows_done), .rd_en(en), .rd_addr(lb_addr), .rd_data(words));

    // x * c for a constant c as shifts and adds (no DSP block for address arithmetic).
    function [31:0] cmul(input [31:0] x, input integer c);
        integer k;
        begin
            cmul = 0;
            for (k = 0; k < 31; k = k + 1)
                if (c[k]) cmul = cmul + (x << k);
        end
    endfunction

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
            if (ow != WO - PP) begin
                ow <= ow + PP;
                iw_left <= iw_left + SW * PP;
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

// Line buffer: the last NR rows of a frame, ROWW words of WIDTH bits per row, as a ring, read
// at PORTS addresses per edge (a copy of the memory per read port on an FPGA). rows_done counts
// completed rows since reset (modulo 2**32); a row may be written while rows_done - free_row < NR,
// i.e. while it does not overwrite a row the reader still needs.
module dn_linebuf #(
    parameter WIDTH = 8,
    parameter ROWW = 1,
    parameter NR = 1,
    parameter AW = 1,
    parameter PORTS = 1
) (
    input  wire                  clk,
    input  wire                  rst,
    input  wire                  in_valid,
    output wire                  in_ready,
    input  wire [WIDTH-1:0]      in_data,
    input  wire [31:0]           free_row,
    output reg  [31:0]           rows_done,
    input  wire                  rd_en,
    input  wire [PORTS*AW-1:0]   rd_addr,
    output reg  [PORTS*WIDTH-1:0] rd_data
);
    localparam DEPTH = NR * ROWW;
    localparam integer LAST = DEPTH - 1;
    reg [WIDTH-1:0] mem [0:DEPTH-1];
    reg [AW-1:0] wptr;
    reg [31:0] wcnt;
    wire [31:0] ahead = rows_done - free_row;
    assign in_ready = ahead < NR;
    integer j;
    always @(posedge clk) begin
        if (rst) begin
            wptr <= 0;
            wcnt <= 0;
            rows_done <= 0;
        end else if (in_valid && in_ready) begin
            mem[wptr] <= in_data;
            wptr <= (wptr == LAST[AW-1:0]) ? {AW{1'b0}} : wptr + 1'b1;
            if (wcnt == ROWW - 1) begin
                wcnt <= 0;
                rows_done <= rows_done + 1;
            end else begin
                wcnt <= wcnt + 1;
            end
        end
        if (rd_en)
            for (j = 0; j < PORTS; j = j + 1)
                rd_data[j*WIDTH +: WIDTH] <= mem[rd_addr[j*AW +: AW]];
    end
endmodule
