"""The DNeuro flow of the FPGA target: an int8 dataflow accelerator built from a library of RTL
layer blocks, its parallelism tuned per layer to an Intel Arria 10 device.

Stages (each reported): float check -> quantize (the shared pass and arithmetic) -> int8 check
-> layer mapping -> parallelism tuning -> export (layer graph JSON, Verilog top and block
library, weight memories, test vectors), with a bit-accurate emulator to run the result.
"""
