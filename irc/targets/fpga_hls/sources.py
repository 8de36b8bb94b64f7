"""The C++ sources of a design, as a set of named texts: the kernel library, the types header,
the model header, one .cpp per kernel and one testbench per kernel. The project writer puts
them on disk; C simulation and emulation compile them from memory (see toolchain.py)."""

from __future__ import annotations

from dataclasses import dataclass

from irc.targets.fpga_hls import render
from irc.targets.fpga_hls.kernels import Plan
from irc.targets.fpga_hls.precision import Precision
from irc.targets.fpga_hls.vectors import tolerance


@dataclass(slots=True)
class Sources:
    headers: dict[str, str]        # file name -> text (kernels/)
    kernels: dict[str, str]        # kernel name -> its .cpp
    testbenches: dict[str, str]    # kernel name -> its testbench .cpp

    @staticmethod
    def of(plan: Plan, precision: Precision, model: str) -> Sources:
        headers = {
            render.LIBRARY: render.library_source(),
            render.TYPES: render.render_types(precision, model),
            render.header_name(model): render.render_header(plan, precision, model),
        }
        kernels = {k.name: render.render_kernel(k, precision, model) for k in plan.kernels}
        tbs = {k.name: render.render_testbench(k, precision, model, *tolerance(k, precision)) for k in plan.kernels}
        return Sources(headers, kernels, tbs)
