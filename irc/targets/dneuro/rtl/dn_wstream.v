// irc DNeuro block library: a conv layer's weights streamed from external memory.
//
// The layer's weight image (WDEPTH words of WBITS, the words its ROM would hold, in order) lies
// in external memory from byte address BASE, word k at BASE + k*WBITS/8, lane 0 in the lowest
// byte. An Avalon-MM read master reads it with bursts of at most BURST words that stop at the
// end of the image, then starts over: the conv reads the image once per output pixel group,
// frame after frame. The words go into a first-word-fall-through FIFO of FIFO words feeding the
// conv's w_* port. A burst is asked for only when the FIFO has room for all of it beside the
// words already asked for (reserved), so readdatavalid never finds it full: the master needs
// no backpressure on read data, as Avalon-MM requires. The command (address, burstcount, read)
// is held while waitrequest is high, through a reset too; one cycle separates two commands.
// A reset (the wrapper's soft reset) does not recall reads already asked for: the words still
// to come then (outstanding, and those of a command held at the reset) are dropped as they
// arrive (drain), so the next frame starts from word 0 of the image.

`timescale 1ns/1ps

module dn_wstream #(
    parameter WBITS = 8,
    parameter WDEPTH = 1,
    parameter BASE = 0,
    parameter FIFO = 256,
    parameter BURST = 64
) (
    input  wire                       clk,
    input  wire                       rst,
    output reg  [31:0]                avm_address,
    output reg  [$clog2(BURST):0]     avm_burstcount,
    output wire                       avm_read,
    input  wire                       avm_waitrequest,
    input  wire                       avm_readdatavalid,
    input  wire [WBITS-1:0]           avm_readdata,
    output wire                       w_valid,
    input  wire                       w_ready,
    output wire [WBITS-1:0]           w_data
);
    localparam BW = $clog2(BURST) + 1;
    localparam RW = $clog2(FIFO + 1) + 1;
    localparam integer WB = WBITS / 8;
    localparam integer DEPTH = WDEPTH;
    localparam integer BMAX = BURST;
    localparam integer FMAX = FIFO;
    localparam [31:0] BASE32 = BASE;

    reg [31:0] next;          // the next word of the image to ask for
    reg [RW-1:0] reserved;    // words in the FIFO or asked for and not yet returned
    reg rd = 1'b0;
    assign avm_read = rd;
    // Kept through resets (power-up values): every word asked for and not yet returned, those
    // to drop, and whether the command held now was asked for before a reset.
    reg [RW-1:0] outstanding = {RW{1'b0}};
    reg [RW-1:0] drain = {RW{1'b0}};
    reg stale = 1'b0;
    wire accept = rd && !avm_waitrequest;
    wire [RW-1:0] acc_len = accept ? {{(RW - BW){1'b0}}, avm_burstcount} : {RW{1'b0}};
    wire [RW-1:0] rdv = {{(RW - 1){1'b0}}, avm_readdatavalid};
    wire drop = avm_readdatavalid && (drain != 0);
    wire keep = avm_readdatavalid && (drain == 0);
    wire [31:0] left = DEPTH - next;
    wire [BW-1:0] len = (left < BMAX) ? left[BW-1:0] : BMAX[BW-1:0];
    wire room = ({{(32 - RW){1'b0}}, reserved} + {{(32 - BW){1'b0}}, len}) <= FMAX;
    wire start = !rd && room;
    wire pop = w_valid && w_ready;

    always @(posedge clk) begin
        outstanding <= outstanding + acc_len - rdv;
        if (rst) begin
            drain <= outstanding + acc_len - rdv;
            stale <= rd && !accept;
            rd <= rd && !accept;
            next <= 0;
            reserved <= {RW{1'b0}};
        end else begin
            drain <= drain + ((accept && stale) ? acc_len : {RW{1'b0}}) - {{(RW - 1){1'b0}}, drop};
            if (accept) stale <= 1'b0;
            if (start) begin
                rd <= 1'b1;
                avm_address <= BASE32 + next * WB;
                avm_burstcount <= len;
                next <= (next + {{(32 - BW){1'b0}}, len} == DEPTH) ? 0 : next + {{(32 - BW){1'b0}}, len};
            end else if (accept) begin
                rd <= 1'b0;
            end
            reserved <= reserved + (start ? {{(RW - BW){1'b0}}, len} : {RW{1'b0}}) - {{(RW - 1){1'b0}}, pop};
        end
    end

    /* verilator lint_off UNUSEDSIGNAL */
    wire fifo_room;  // always high when data arrives (see reserved)
    /* verilator lint_on UNUSEDSIGNAL */
    dn_fifo #(.WIDTH(WBITS), .DEPTH(FIFO)) q (
        .clk(clk), .rst(rst), .in_valid(keep), .in_ready(fifo_room), .in_data(avm_readdata),
        .out_valid(w_valid), .out_ready(w_ready), .out_data(w_data));
endmodule
