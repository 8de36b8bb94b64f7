"""The DNeuro flow of the FPGA target: an int8 dataflow accelerator built from a library of RTL
layer blocks, its parallelism tuned per layer to an Intel Arria 10 device.

    irc compile model.onnx --target fpga --flow dneuro --device arria10-gx1150 --calib data.npz -o build/
    irc dneuro fit a.onnx b.onnx ...         # which models fit which devices, and why
    irc dneuro curve a.onnx -o curve          # DSP budget -> frames/s, DSP, M20K (CSV, PNG)

Stages (each reported): float check -> quantize (the shared pass and arithmetic) -> int8 check
(emulator == interpreter, bit for bit) -> layer mapping -> parallelism tuning -> export (layer
graph JSON, Verilog top and block library, weight memories, test vectors, testbench).

Modules: devices (the device table), layers (the layer graph), mapping + islands (graph -> blocks),
refusals (unsupported layers and their replacements), emulator (bit-accurate), resources (cycles,
DSP, M20K per block), tune (the greedy tuner), render (Verilog top, .mem/.mif), vectors (test
vectors, testbench), export (the build directory), sim (Verilator / Icarus Verilog), report, fit
(model x device table, trade-off curve), flow (the target), cli (flags and ``irc dneuro``);
rtl/ holds the block library.
"""
