"""``irc info --quantize int8 --calib DATA.npz``: the quantize pass's report on a model: per-layer
scales and expected error, and the layers left in float with the reason."""

from __future__ import annotations

from irc.cli.flag_groups import QUANT
from irc.errors import InputError


def quantized_for_info(g):
    """``g`` (an imported float graph) quantized as the flags ask, or None without --quantize."""
    from irc.passes.pipeline import run_pipeline

    flags = QUANT.given()
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
