"""Help per target: ``irc compile --help`` lists the general flags and the targets;
``irc compile --target fpga --help`` (or ``irc help fpga``) adds that target's own flags and the
options ``--opt`` sets for it, so nobody reads twenty FPGA flags to compile for a CPU.

The target table is here, not imported from irc.targets, so that ``irc --help`` starts without
loading a target (tests check that it names every registered target).
"""

from __future__ import annotations

import click

from irc.cli.flag_groups import GROUPS

#: the target a command compiles for when --target is not given (irc.api.DEFAULT_TARGET)
DEFAULT_TARGET = "cpu"

#: target -> what it makes, one line each
TARGETS = {
    "cpu": "native code through LLVM: runs in process (JIT), -o model.so writes a library and C header",
    "interp": "the reference interpreter in numpy: slow and exact, always available",
    "cuda": "PTX kernels run through pycuda on an NVIDIA GPU (pip install 'irc[cuda]')",
    "fpga": "--flow hls: a Vitis HLS project (default); --flow dneuro: an int8 RTL accelerator for Arria 10",
}

_TARGET_META = "irc_help_target"


def _target_in(args: list[str]) -> str | None:
    """The value of --target/-t among a command's arguments, if any (for its help)."""
    for i, a in enumerate(args):
        if a == "--":
            break
        if a in ("--target", "-t") and i + 1 < len(args):
            return args[i + 1]
        if a.startswith("--target="):
            return a.split("=", 1)[1]
        if a.startswith("-t") and len(a) > 2 and not a.startswith("--"):
            return a[2:]
    return None


def _is_group_flag(param: click.Parameter) -> bool:
    return any(g.owns(param) for g in GROUPS)


def target_sections(target: str, params: list[click.Parameter], ctx: click.Context) -> list[tuple[str, list]]:
    """(title, rows) sections describing ``target``: its flags among ``params`` and its other
    options (for --opt), with their defaults. Imports the target (an unknown name is an InputError)."""
    from irc.targets import get_target

    options = get_target(target).options
    flags = []
    taken = set()
    for p in params:
        if _is_group_flag(p) and p.name in options:
            record = p.get_help_record(ctx)
            if record:
                flags.append(record)
                taken.add(p.name)
    rest = [(f"--opt {k}=...", f"default: {v!r}") for k, v in options.items() if k not in taken]
    sections = [(f"Target {target}", [(target, TARGETS.get(target, ""))])]
    if flags:
        sections.append((f"Flags of target {target}", flags))
    if rest:
        sections.append((f"Other options of target {target} (--opt KEY=VALUE)", rest))
    return sections


class TargetCommand(click.Command):
    """A command that compiles for a target (compile, run): its help shows the general flags and,
    with --target given, that target's flags; without it, the list of targets."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        ctx.meta[_TARGET_META] = _target_in(list(args))
        return super().parse_args(ctx, args)

    def format_options(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        params = self.get_params(ctx)
        general = [r for p in params if not _is_group_flag(p) and (r := p.get_help_record(ctx))]
        with formatter.section("Options"):
            formatter.write_dl(general)
        target = ctx.meta.get(_TARGET_META)
        if target is None:
            with formatter.section(f"Targets (--target NAME, default {DEFAULT_TARGET})"):
                formatter.write_dl(list(TARGETS.items()))
            formatter.write_paragraph()
            formatter.write_text(f"A target's own flags: {ctx.command_path} --target NAME --help, or irc help NAME.")
            return
        for title, rows in target_sections(target, params, ctx)[1:]:
            with formatter.section(title):
                formatter.write_dl(rows)


def print_target_help(target: str, command: click.Command, ctx: click.Context) -> None:
    """``irc help TARGET``: what the target makes, its flags (as ``command`` takes them) and options."""
    formatter = ctx.make_formatter()
    for title, rows in target_sections(target, command.get_params(ctx), ctx):
        with formatter.section(title):
            formatter.write_dl(rows)
    formatter.write_paragraph()
    formatter.write_text(f"Use them with: irc compile MODEL --target {target} ... (or irc run).")
    click.echo(formatter.getvalue(), nl=False)
