"""The fpga target's flags on ``irc compile`` and ``irc run``: --flow, --board, --platform,
--precision, --parallelism, --fraction, --csim, --emulate. Each is the target option of the same
name (``--opt KEY=VALUE`` sets them too); given with another target they are an error."""

from __future__ import annotations

import click

from irc.errors import InputError

_KEY = "irc_fpga_flags"


def _keep(ctx: click.Context, param: click.Parameter, value):
    if value is not None and value is not False:
        ctx.meta.setdefault(_KEY, {})[param.name] = value
    return value


def _flag(*decls: str, **kw):
    return click.option(*decls, expose_value=False, callback=_keep, **kw)


_FLAGS = [
    _flag("--flow", metavar="FLOW", help="fpga: the flow: hls (a Vitis HLS project, default) or dneuro."),
    _flag("--board", metavar="NAME", help="fpga: the board (u200 [default], u250, u280, vck5000)."),
    _flag("--platform", metavar="NAME", help="fpga: the Vitis platform (default: the board's)."),
    _flag("--precision", metavar="P", help="fpga: float32 [default], ap_fixed<W,I> (e.g. ap_fixed<16,6>) or int8."),
    _flag("--parallelism", metavar="auto|N", help="fpga: per-kernel parallelism, auto [default] or a factor."),
    _flag("--fraction", type=float, metavar="F", help="fpga: share of the board --parallelism auto may fill (0.8)."),
    _flag("--csim", is_flag=True, default=False, help="fpga: C-simulate every kernel with g++ against the interpreter."),
    _flag("--emulate", is_flag=True, default=False, help="fpga: run through the kernels' compiled C++ (no board)."),
]


def fpga_flags(f):
    """Adds the flags to a click command."""
    for opt in reversed(_FLAGS):
        f = opt(f)
    return f


def flag_options(target: str) -> dict:
    """The flags given on the current command line, as target options."""
    given = dict(click.get_current_context().meta.get(_KEY, {}))
    if given and target != "fpga":
        names = ", ".join(f"--{k}" for k in given)
        raise InputError(f"{names} belong to the fpga target; the command compiles for '{target}'")
    return given
