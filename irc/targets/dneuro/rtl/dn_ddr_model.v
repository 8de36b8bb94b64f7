// irc DNeuro simulation model of external memory (testbench only, not synthesizable): an
// Avalon-MM burst read slave over a byte image loaded with $readmemh from IMAGE (one byte per
// line, the exported mem/ddr.mem). A burst (address, burstcount) is taken when read is high and
// waitrequest low, queued (QUEUE commands), and answered LATENCY or more cycles later, one
// DBITS-bit word per readdatavalid (the bytes from the word's address, the lowest byte in the
// lowest bits). With STALL (+STALL=1 in the testbench) waitrequest is raised and returned words
// are held back on random cycles (SEED seeds the pattern).

`timescale 1ns/1ps

module dn_ddr_model #(
    parameter DBITS = 8,
    parameter BYTES = 1,
    parameter IMAGE = "ddr.mem",
    parameter LATENCY = 8,
    parameter QUEUE = 4,
    parameter BCW = 7,
    parameter SEED = 1
) (
    input  wire              clk,
    input  wire              rst,
    input  wire              stall,
    input  wire [31:0]       address,
    input  wire [BCW-1:0]    burstcount,
    input  wire              read,
    output wire              waitrequest,
    output reg               readdatavalid = 1'b0,
    output reg  [DBITS-1:0]  readdata
);
    reg [7:0] mem [0:BYTES-1];
    initial $readmemh(IMAGE, mem);

    reg [31:0] lfsr = SEED;
    integer cyc = 0;
    reg [31:0] q_addr [0:QUEUE-1];
    integer q_len [0:QUEUE-1];
    integer q_due [0:QUEUE-1];
    integer head = 0, tail = 0, count = 0, beat = 0, k;

    assign waitrequest = rst || count == QUEUE || (stall && lfsr[2] && lfsr[9]);
    wire take = read && !waitrequest;
    wire give = count > 0 && cyc >= q_due[head] && !(stall && lfsr[5] && lfsr[17]);

    always @(posedge clk) begin
        cyc <= cyc + 1;
        lfsr <= {lfsr[30:0], lfsr[31] ^ lfsr[21] ^ lfsr[1] ^ lfsr[0]};
        readdatavalid <= 1'b0;
        if (rst) begin
            head <= 0; tail <= 0; count <= 0; beat <= 0;
        end else begin
            if (take) begin
                q_addr[tail] <= address;
                q_len[tail] <= burstcount;
                q_due[tail] <= cyc + LATENCY + (stall ? lfsr[11:8] : 0);
                tail <= (tail + 1) % QUEUE;
            end
            if (give) begin
                readdatavalid <= 1'b1;
                for (k = 0; k < DBITS / 8; k = k + 1)
                    readdata[k*8 +: 8] <= mem[q_addr[head] + beat * (DBITS / 8) + k];
                if (beat + 1 == q_len[head]) begin
                    beat <= 0;
                    head <= (head + 1) % QUEUE;
                end else beat <= beat + 1;
            end
            count <= count + (take ? 1 : 0) - ((give && beat + 1 == q_len[head]) ? 1 : 0);
        end
    end
endmodule
