"""The int8 flags of ``irc info``, ``irc compile`` and ``irc run``: --quantize, --calib,
--calib-method, --activation-scheme. Each is the target option of the same name (``--opt`` sets
them too); a target without that option refuses it. ``irc info`` prints the quantize pass's
report: per-layer scales and expected error, and the layers left in float with the reason."""

from __future__ import annotations

import click

from irc.errors import InputError

_KEY = "irc_quant_flags"


def _keep(ctx: click.Context, param: click.Parameter, value):
    if value is not None:
        ctx.meta.setdefault(_KEY, {})[param.name] = value
    return value


def _flag(*decls: str, **kw):
    return click.option(*decls, expose_value=False, callback=_keep, **kw)


_FLAGS = [
    _flag("--quantize", type=click.Choice(["int8"]), help="Quantize to int8 after calibrating on --calib."),
    _flag("--calib", metavar="DATA.npz", help="Calibration inputs for --quantize (.npz, keys are input names; "
                                              "arrays may hold several batches along axis 0)."),
    _flag("--calib-method", "calib_method", type=click.Choice(["minmax", "percentile", "entropy"]),
          help="How activation ranges are chosen from the calibration data (default minmax)."),
    _flag("--activation-scheme", "activation_scheme", type=click.Choice(["asym", "sym"]),
          help="int8 activations: asym (u8 with a zero point, default) or sym (i8, zero point 0)."),
]


def quant_flags(f):
    """Adds the flags to a click command."""
    for opt in reversed(_FLAGS):
        f = opt(f)
    return f


def given() -> dict:
    return dict(click.get_current_context().meta.get(_KEY, {}))


def quant_options(target: str) -> dict:
    """The flags given on the command line, as options of ``target``."""
    from irc.targets import get_target

    flags = given()
    if not flags:
        return {}
    known = get_target(target).options
    bad = [k for k in flags if k not in known]
    if bad:
        names = ", ".join("--" + k.replace("_", "-") for k in bad)
        raise InputError(f"{names}: not an option of target '{target}'")
    if "quantize" not in flags and any(k in flags for k in ("calib_method", "activation_scheme")) \
            and "quantize" in known:
        raise InputError("--calib-method and --activation-scheme need --quantize int8")
    return flags


def quantized_for_info(g):
    """``g`` (an imported float graph) quantized as the flags ask, or None without --quantize."""
    from irc.passes.pipeline import run_pipeline

    flags = given()
    if not flags:
        return None
    if "quantize" not in flags:
        raise InputError("--calib, --calib-method and --activation-scheme need --quantize int8")
    passes = ["dead_code", "fold_constants", "fold_batchnorm", "calibrate", "quantize"]
    return run_pipeline(g, passes, options=flags)


def print_report(g, echo) -> None:
    """The quantize pass's report on ``g``: one line per layer, then the float layers and the
    measured output error."""
    from irc.passes.quantize import quant_report

    rep = quant_report(g)
    dt = "u8" if rep["activation_scheme"] == "asym" else "i8"
    echo(f"quantization int8: weights i8 per output channel, activations {dt} per tensor "
         f"({rep['activation_scheme']}), ranges by {rep['calibration']}")
    echo(f"  {'layer':<24}{'op':<10}{'x scale':>11}{'y scale':>11}{'y zp':>6}  {'w scales':<19}{'SQNR dB':>8}"
         f"{'w err':>8}  act")
    for e in rep["layers"]:
        ws = f"{e['w_scale_min']:.3g}..{e['w_scale_max']:.3g}" if "w_scale_min" in e else "-"
        werr = f"{100 * e['w_rel_err']:.2f}%" if "w_rel_err" in e else "-"
        sqnr = f"{e['sqnr_db']:.1f}" if e.get("sqnr_db") is not None else "-"
        echo(f"  {e['node'][:23]:<24}{e['op']:<10}{e['x_scale']:>11.4g}{e['y_scale']:>11.4g}{e['y_zero_point']:>6}  "
             f"{ws:<19}{sqnr:>8}{werr:>8}  {e['act']}")
    for e in rep["float_layers"]:
        echo(f"  float: {e['node']} ({e['op']}): {e['reason']}")
    for name, err in rep.get("output_error", {}).items():
        echo(f"  expected error of output {name} (int8 vs float, first calibration batch): "
             f"max abs {err['max_abs']:.4g}, relative RMS {100 * err['rel_rms']:.2f}%")
