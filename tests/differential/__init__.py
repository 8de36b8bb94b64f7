"""Random-graph differential testing: hypothesis draws well-formed graphs over the op registry
(graphs.py; the HLS flow's subset in hls_graphs.py) and every target that runs here must give the
interpreter's results (compare.py); random int8 networks (dneuro_graphs.py) on the DNeuro
emulator must equal the int8 CPU target bit for bit. ``python -m tests.differential --n 1000
--target cpu|cuda|fpga|dneuro`` is the long run (its help states each target's tolerance); the
test module runs a short one."""
