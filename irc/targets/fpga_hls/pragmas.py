"""The HLS pragmas of a kernel's top function, in one place.

Every pointer argument gets its own AXI4 master bundle (``gmem<i>``: separate ports, so a
kernel's inputs, weights and outputs stream in parallel and each can sit in its own memory
bank), its address as a register of the ``control`` AXI4-Lite slave (``offset=slave``), and a
``depth`` (its element count, which co-simulation needs). ``return`` on ``control`` gives the
kernel its start/done handshake. Loop pragmas (PIPELINE II=1, UNROLL over the P lanes,
ARRAY_PARTITION of the arrays those lanes read) are in the kernel library, irc_hls.h, keyed on
the parallelism factor P of each kernel's configuration; DATAFLOW is used where a kernel is a
pipeline of independent stages (element-wise kernels: read, compute, write).
"""

from __future__ import annotations

from irc.targets.fpga_hls.kernels import Arg, Kernel

#: kernel kinds whose top function is a DATAFLOW region
DATAFLOW_KINDS = frozenset({"elementwise"})


def bundle(kernel: Kernel, arg: Arg) -> str:
    """The m_axi bundle (memory port) of one argument."""
    return f"gmem{kernel.args.index(arg)}"


def interface_pragmas(kernel: Kernel) -> list[str]:
    lines = []
    for a in kernel.args:
        lines.append(f"#pragma HLS INTERFACE m_axi port={a.name} offset=slave bundle={bundle(kernel, a)} "
                     f"depth={a.value.type.size}")
    for a in kernel.args:
        lines.append(f"#pragma HLS INTERFACE s_axilite port={a.name} bundle=control")
    lines.append("#pragma HLS INTERFACE s_axilite port=return bundle=control")
    return lines
