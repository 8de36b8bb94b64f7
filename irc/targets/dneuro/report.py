"""Reports of a DNeuro design: the per-layer table, totals, latency and throughput."""

from __future__ import annotations

from irc.targets.dneuro.devices import M20K_BITS
from irc.targets.dneuro.tune import Design, Tuning


def _count(n: float) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.2f}{unit}"
    return str(int(n))


def layer_table(d: Design) -> str:
    """One row per block: kind, shape, parallelism, MACs, cycles per frame, DSP, M20K (blocks and
    Kbit), the slowest marked with '*', a block whose weights stream from external memory with
    'ddr'."""
    lg = d.lg
    slow = d.slowest.name
    head = (f"{'layer':<28}{'block':<9}{'output':>12}{'PI':>5}{'PO':>5}{'PP':>4}{'MACs':>10}{'cycles':>11}"
            f"{'DSP':>6}{'M20K':>6}{'Kbit':>9}")
    rows = [head, "-" * len(head)]
    fifo_blocks = {}
    for (name, _k), f in d.fifos.items():
        fifo_blocks[name] = fifo_blocks.get(name, 0) + f.m20k
    for ly in lg:
        c = d.costs[ly.name]
        m20k = c.m20k + fifo_blocks.get(ly.name, 0)
        kbit = (c.bits + sum(f.bits for (n, _), f in d.fifos.items() if n == ly.name)) / 1024
        name = ly.name if len(ly.name) <= 26 else ly.name[:12] + ".." + ly.name[-12:]
        mark = "*" if ly.name == slow else " "
        rows.append(f"{mark}{name:<27}{ly.kind:<9}{str(ly.shape):>12}{c.pi:>5}{c.po:>5}{c.pp:>4}{_count(c.macs):>10}"
                    f"{c.cycles:>11}{c.dsp:>6}{m20k:>6}{kbit:>9.1f}" + ("  ddr" if ly.name in d.streamed else ""))
    return "\n".join(rows) + "\n"


def totals(d: Design) -> str:
    dev = d.device
    lines = [
        f"device      {dev.title} ({dev.name}): {dev.dsp} DSP blocks, {dev.macs_per_cycle} MAC/cycle, "
        f"{dev.m20k_blocks} M20K ({dev.m20k_mb} MB)",
        f"DSP         {d.dsp} of {dev.dsp} ({100 * d.dsp / dev.dsp:.1f}%), {d.multipliers} int8 multipliers",
        f"M20K        {d.m20k} of {dev.m20k_blocks} ({100 * d.m20k / dev.m20k_blocks:.1f}%), "
        f"{d.m20k * M20K_BITS / 8 / (1 << 20):.2f} MB of blocks for {d.memory_bits / 8 / (1 << 20):.2f} MB of data",
        f"work        {_count(d.macs)} MACs per frame",
        f"clock       {d.clock_mhz:g} MHz",
        f"throughput  {d.fps:,.1f} frames/s ({d.cycles} cycles per frame, set by "
        + (f"the external memory: {_count(d.ddr_bytes)}B of weights per frame)" if d.ddr_cycles > d.slowest.cycles
           else f"'{d.slowest.name}')"),
        f"latency     {d.latency_ms:.3f} ms ({d.latency_cycles} cycles: one frame period to fill the pipeline, "
        f"then the last rows through each block)",
        *([f"external    {len(d.streamed)} layer(s) stream their weights: {_count(d.ddr_bytes)}B per frame "
           f"at {d.ddr_bpc:.1f} bytes per cycle ({dev.ddr_interfaces} x {dev.ddr_gbps:g} GB/s DDR4, "
           f"{d.ddr_cycles} cycles)"] if d.streamed else []),
        f"compute     {d.macs * d.fps / 1e9:.1f} GMAC/s, {100 * d.macs / (d.cycles * max(1, d.multipliers)):.0f}% "
        f"of the multipliers busy",
    ]
    return "\n".join(lines) + "\n"


def tuning_text(t: Tuning) -> str:
    d = t.design
    if not t.fits:
        return (f"tuning      does not fit: {t.stop} (needs {d.dsp} DSP and {d.m20k} M20K; budget {t.dsp_budget} DSP, "
                f"{t.m20k_budget} M20K)\n")
    return (f"tuning      {len(t.steps)} steps within {t.dsp_budget} DSP and {t.m20k_budget} M20K; stopped: "
            f"{t.stop}\n")


def design_report(t: Tuning, stages: list[str] | None = None) -> str:
    """The whole text report: stages of the flow, the layer table, totals and tuning."""
    parts = []
    if stages:
        parts.append("flow\n" + "".join(f"  {s}\n" for s in stages))
    parts.append(layer_table(t.design))
    parts.append(totals(t.design) + tuning_text(t))
    return "\n".join(parts)
