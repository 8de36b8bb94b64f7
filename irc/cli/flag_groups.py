"""Flag groups: named command-line flags that are target options under another spelling.

``irc compile`` and ``irc run`` take the int8 flags (``--quantize``, ``--calib`` ...), the fpga
flags (``--flow``, ``--board`` ...) and the DNeuro flags (``--device``, ``--max-dsp`` ...). Each
flag sets the target option of the same name, as ``--opt KEY=VALUE`` would, so all three groups
are one :class:`FlagGroup`: it adds its flags to a click command, remembers the ones given, and
hands them over as options after checking that the chosen target takes every one of them.
"""

from __future__ import annotations

from collections.abc import Callable

import click

from irc.errors import InputError


class FlagGroup:
    """Flags that become target options. ``owner`` names who takes them, for the error when the
    command's target does not; ``check(given, known)`` adds the group's own rules."""

    def __init__(self, key: str, owner: str, flags: list[tuple[tuple[str, ...], dict]],
                 check: Callable[[dict, dict], None] | None = None):
        self.key = f"irc_flags_{key}"
        self.owner = owner
        self.check = check
        self._options = [click.option(*decls, expose_value=False, callback=self._keep, **kw) for decls, kw in flags]

    def owns(self, param: click.Parameter) -> bool:
        """Whether ``param`` is one of this group's flags."""
        return getattr(param.callback, "__self__", None) is self

    def _keep(self, ctx: click.Context, param: click.Parameter, value):
        if value is not None and value is not False:
            ctx.meta.setdefault(self.key, {})[param.name] = value
        return value

    def __call__(self, f):
        """Adds the group's flags to a click command."""
        for opt in reversed(self._options):
            f = opt(f)
        return f

    def given(self) -> dict:
        """The group's flags given on the current command line, by option name."""
        return dict(click.get_current_context().meta.get(self.key, {}))

    def options(self, target: str) -> dict:
        """The given flags as options of ``target``; InputError for a flag it does not take."""
        from irc.targets import get_target

        given = self.given()
        if not given:
            return {}
        known = get_target(target).options
        stray = [k for k in given if k not in known]
        if stray:
            names = ", ".join(f"--{k.replace('_', '-')}" for k in stray)
            raise InputError(f"{names}: {'an option' if len(stray) == 1 else 'options'} of {self.owner}; "
                             f"the command compiles for '{target}'")
        if self.check is not None:
            self.check(given, known)
        return given


def _flag(*decls: str, **kw) -> tuple[tuple[str, ...], dict]:
    return decls, kw


def _quant_rules(given: dict, known: dict) -> None:
    if "quantize" not in given and "quantize" in known and any(k in given for k in ("calib_method",
                                                                                      "activation_scheme")):
        raise InputError("--calib-method and --activation-scheme need --quantize int8")


def _dneuro_rules(given: dict, known: dict) -> None:
    if given.get("simulate") == "any":
        given["simulate"] = True


QUANT = FlagGroup("quant", "the targets that quantize (cpu, interp; fpga: --precision int8 or --flow dneuro)", [
    _flag("--quantize", type=click.Choice(["int8"]), help="Quantize to int8 after calibrating on --calib."),
    _flag("--calib", metavar="DATA.npz", help="Calibration inputs for --quantize int8, fpga --precision int8 and "
                                              "the fpga dneuro flow (.npz, keys are input names; arrays may hold "
                                              "several batches along axis 0)."),
    _flag("--calib-method", "calib_method", type=click.Choice(["minmax", "percentile", "entropy"]),
          help="How activation ranges are chosen from the calibration data (default minmax)."),
    _flag("--activation-scheme", "activation_scheme", type=click.Choice(["asym", "sym"]),
          help="int8 activations: asym (u8 with a zero point, default) or sym (i8, zero point 0)."),
], _quant_rules)

FPGA = FlagGroup("fpga", "the fpga target", [
    _flag("--flow", metavar="FLOW", help="fpga: the flow: hls (a Vitis HLS project, default) or dneuro."),
    _flag("--board", metavar="NAME", help="fpga: the board (u200 [default], u250, u280, vck5000)."),
    _flag("--platform", metavar="NAME", help="fpga: the Vitis platform (default: the board's)."),
    _flag("--precision", metavar="P", help="fpga: float32 [default], ap_fixed<W,I> (e.g. ap_fixed<16,6>) or int8."),
    _flag("--parallelism", metavar="auto|N", help="fpga: per-kernel parallelism, auto [default] or a factor."),
    _flag("--fraction", type=float, metavar="F", help="fpga: share of the board --parallelism auto may fill (0.8)."),
    _flag("--csim", is_flag=True, default=False, help="fpga: C-simulate every kernel with g++ against the interpreter."),
    _flag("--emulate", is_flag=True, default=False, help="fpga: run through the kernels' compiled C++ (no board)."),
])

DNEURO = FlagGroup("dneuro", "the fpga target (--flow dneuro)", [
    _flag("--device", metavar="NAME", help="fpga dneuro: the Arria 10 device (arria10-gx1150 [default], ...)."),
    _flag("--max-dsp", "max_dsp", type=float, metavar="F", help="fpga dneuro: share of the DSP blocks to use (1.0)."),
    _flag("--max-m20k", "max_m20k", type=float, metavar="F", help="fpga dneuro: share of the M20K blocks to use (1.0)."),
    _flag("--clock-mhz", "clock_mhz", type=float, metavar="MHZ", help="fpga: the clock (dneuro: 200 MHz)."),
    _flag("--target-fps", "target_fps", type=float, metavar="FPS",
          help="fpga dneuro: stop raising parallelism at this frame rate."),
    _flag("--frames", type=int, metavar="N", help="fpga dneuro: frames in the exported test vectors (1)."),
    _flag("--simulate", metavar="SIM", type=click.Choice(["verilator", "iverilog", "any"]),
          help="fpga dneuro: simulate the exported RTL on its test vectors before writing it."),
], _dneuro_rules)


class _NoCache(FlagGroup):
    """``--no-cache``: the target option ``cache=False`` (irc/targets/cpu/compile_cache.py)."""

    def options(self, target: str) -> dict:
        from irc.targets import get_target

        if not self.given():
            return {}
        if "cache" not in get_target(target).options:
            raise InputError(f"--no-cache: an option of {self.owner}; the command compiles for '{target}'")
        return {"cache": False}


CACHE = _NoCache("cache", "the cpu target", [
    # named after the option it sets (cache=False), so that the cpu target's help lists it
    _flag("--no-cache", "cache", is_flag=True, default=False,
          help="cpu: compile without the compile cache (neither read nor write it; see `irc cache info`)."),
])

#: every group, in the order their flags are listed in ``--help``
GROUPS = (FPGA, DNEURO, QUANT, CACHE)


def target_flags(f):
    """All groups' flags on one command (compile, run)."""
    for group in reversed(GROUPS):
        f = group(f)
    return f


def flag_options(target: str) -> dict:
    """Every group's given flags as options of ``target``."""
    options: dict = {}
    for group in GROUPS:
        options.update(group.options(target))
    return options


def _flag_name(key: str) -> str:
    """How the user gave option ``key``: its flag if it has one, else --opt."""
    flags = {p.name for g in GROUPS for p in _params(g)}
    return f"--{key.replace('_', '-')}" if key in flags else f"--opt {key}"


def _params(group: FlagGroup) -> list[click.Parameter]:
    def probe() -> None: ...

    return group(click.command()(probe)).params


def check_combination(target: str, options: dict) -> None:
    """Rules across the options given (flags and --opt, by option name) that no single flag can
    check: calibration data without anything that uses it, a flow's flag given to the other flow,
    and the DNeuro flow (always int8) without calibration inputs."""
    if target in ("cpu", "interp") and options.get("calib") is not None and not options.get("quantize"):
        raise InputError("--calib gives calibration inputs for --quantize int8: add --quantize int8 or drop --calib")
    if target != "fpga":
        return
    from irc.targets import get_target
    from irc.targets.fpga import DEFAULT_FLOW

    fpga = get_target("fpga")
    flows = fpga.flows
    flow = str(options.get("flow") or DEFAULT_FLOW).lower()
    if flow not in flows:
        raise InputError(f"--flow {options.get('flow')}: the fpga target has the flows {', '.join(flows)}")
    for key in options:
        if key in fpga.options and key not in flows[flow].options:  # (a pass's option is the pass's to check)
            owners = " and ".join(f for f, t in flows.items() if key in t.options)
            raise InputError(f"{_flag_name(key)} is for the fpga flow {owners}, and this command builds the "
                             f"{flow} flow" + ("" if flow != "hls" else f" (add --flow {owners} to build that one)"))
    if flow == "dneuro" and options.get("calib") is None:
        raise InputError("the fpga dneuro flow builds an int8 accelerator and needs calibration inputs: give "
                         "--calib DATA.npz (an .npz with one array of sample inputs per input name, samples "
                         "stacked along axis 0)")
    if flow == "hls" and options.get("calib") is not None and "int8" not in str(options.get("precision") or ""):
        raise InputError("--calib gives calibration inputs for --precision int8: add --precision int8 or drop --calib")
