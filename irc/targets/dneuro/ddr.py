"""The external-memory side of streamed weights (offchip.py chooses the layers): where each
streamed layer's weight image lies, the byte image the host loads into the board's memory (the
simulation model reads the same file), and the Avalon-MM read master each such layer adds to
the top-level module (``<lid>_avm_*``, one per layer; an interconnect such as Platform Designer's
joins them to the memory controller and adapts the data widths)."""

from __future__ import annotations

from dataclasses import dataclass

from irc.targets.dneuro.offchip import passes
from irc.targets.dneuro.resources import WSTREAM_BURST, WSTREAM_FIFO
from irc.targets.dneuro.tune import Design

#: Byte alignment of each layer's image (a DDR4 burst of a 64-bit interface).
ALIGN = 64
#: The image file, one byte per line in hex (``$readmemh``), under the export's mem/ folder.
IMAGE = "ddr.mem"


@dataclass(frozen=True, slots=True)
class Master:
    """One streamed layer's weight image: block id, byte address, words and word width."""

    layer: str
    lid: str
    base: int
    words: int
    wbits: int

    @property
    def nbytes(self) -> int:
        return self.words * self.wbits // 8


def masters(design: Design) -> list[Master]:
    """The streamed layers in graph order, their images packed from address 0, ALIGN apart."""
    out, base = [], 0
    for k, ly in enumerate(design.lg):
        if ly.name not in design.streamed:
            continue
        rom = design.costs[ly.name].memories[0]
        words = design.costs[ly.name].ddr_bytes // (rom.width // 8) // passes(design, ly.name)
        out.append(Master(ly.name, f"l{k}", base, words, rom.width))
        base += -(-words * rom.width // 8 // ALIGN) * ALIGN
    return out


def image_size(design: Design) -> int:
    ms = masters(design)
    return ms[-1].base + ms[-1].nbytes if ms else 0


def image_text(design: Design, words_hex: dict[str, list[str]]) -> str:
    """The byte image (one hex byte per line, zeros between images) from each streamed layer's
    weight words (hex, lane 0 in the lowest byte: the ROM file's lines)."""
    out: list[str] = []
    for m in masters(design):
        out += ["00"] * (m.base - len(out))
        for w in words_hex[m.layer]:
            out += [w[j:j + 2] for j in range(len(w) - 2, -2, -2)]
    return "\n".join(out) + "\n"


def master_ports(m: Master) -> list[str]:
    """The top-level port declarations of one master."""
    p = f"{m.lid}_avm"
    return [f"output wire [31:0] {p}_address", f"output wire [{WSTREAM_BURST.bit_length() - 1}:0] {p}_burstcount",
            f"output wire {p}_read", f"input  wire {p}_waitrequest", f"input  wire {p}_readdatavalid",
            f"input  wire [{m.wbits - 1}:0] {p}_readdata"]


def master_instance(m: Master) -> list[str]:
    """dn_wstream for one layer, feeding wires ``<lid>_w_*``."""
    p, w = f"{m.lid}_avm", m.lid
    return [f"    wire {w}_w_valid, {w}_w_ready;", f"    wire [{m.wbits - 1}:0] {w}_w_data;",
            f"    dn_wstream #(.WBITS({m.wbits}), .WDEPTH({m.words}), .BASE({m.base}), .FIFO({WSTREAM_FIFO}), "
            f".BURST({WSTREAM_BURST})) {w}_ws (.clk(clk), .rst(rst), .avm_address({p}_address), "
            f".avm_burstcount({p}_burstcount), .avm_read({p}_read), .avm_waitrequest({p}_waitrequest), "
            f".avm_readdatavalid({p}_readdatavalid), .avm_readdata({p}_readdata), .w_valid({w}_w_valid), "
            f".w_ready({w}_w_ready), .w_data({w}_w_data));"]
