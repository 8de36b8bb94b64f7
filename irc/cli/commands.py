"""The ``irc`` command: ``info``, ``compile``, ``run`` and ``bench`` on ONNX models.

Every mistake in what the user gave (a bad file, an unsupported op, a wrong shape, a bad flag)
is one line ``irc: error: ...`` on stderr and exit status 2; anything else is a bug in irc and
says so (``irc: internal error: ...``, status 1). ``--debug`` shows the traceback. Output files
are written whole or not at all, and a TERM signal unwinds like an interrupt so that nothing
temporary is left behind. Importing this module loads neither LLVM nor onnx (nor the IR):
``irc --version`` and ``irc --help`` answer at once; each command imports what it uses.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import traceback
import warnings
from collections.abc import Sequence

import click

from irc import __version__
from irc.cli import progress
from irc.cli.args import (
    SHAPE_HELP,
    bind_dynamic,
    format_bytes,
    format_count,
    load_inputs,
    parse_options,
    parse_shapes,
    random_inputs,
    summarize,
    x_dims,
)
from irc.cli.cache import cache
from irc.cli.dneuro import dneuro
from irc.cli.flag_groups import QUANT, check_combination, flag_options, target_flags
from irc.cli.fpga import fpga
from irc.cli.target_help import DEFAULT_TARGET, TargetCommand, print_target_help
from irc.errors import InputError, IRCError, TargetError

_debug_option = click.option("--debug", is_flag=True, help="Show the traceback of an error; compile with debug=True.")
_shape_option = click.option("--shape", "shapes", multiple=True, metavar="NAME=DIMS", help=SHAPE_HELP)
_opt_option = click.option("--opt", "opts", multiple=True, metavar="KEY=VALUE",
                           help="A target option (an irc.compile keyword), e.g. --opt threads=2. Repeatable.")
_progress_option = click.option("--progress/--no-progress", "show_progress", default=None,
                                help="Show the progress of a compile that takes over 2 s on stderr "
                                     "(default: when stderr is a terminal).")
_quiet_option = click.option("--quiet", "-q", is_flag=True, expose_value=False, is_eager=True,
                             callback=lambda ctx, _, value: _set_quiet(ctx, value),
                             help="No notes and no progress on stderr (errors still show).")


class Notes(list):
    """Remarks a command leaves for stderr, shown once it has succeeded (``ctx.obj``)."""

    quiet = False


def _set_quiet(ctx: click.Context, value: bool) -> None:
    notes = ctx.find_root().obj
    if value and isinstance(notes, Notes):
        notes.quiet = True


def _target_option(f):
    return click.option("--target", "-t", default=None, metavar="TARGET",
                        help=f"Target to compile for (default: {DEFAULT_TARGET}; see the list below).")(f)


def note(message: str) -> None:
    """A remark for stderr, shown once the command has succeeded (an error stays one line)."""
    click.get_current_context().find_root().obj.append(message)


def _quiet() -> bool:
    return bool(getattr(click.get_current_context().find_root().obj, "quiet", False))


def _compile_progress(target: str, options: dict, passes: list[str] | None, flag: bool | None):
    """A CompileProgress for a compile of MODEL for ``target`` (see irc.cli.progress)."""
    enabled = progress.wanted(flag, _quiet())
    count = None
    if enabled:
        if passes is not None:
            count = len(passes)
        else:
            from irc.targets import get_target

            tgt = get_target(target)
            try:
                count = len(tgt.pipeline({**tgt.options, **options}))
            except IRCError:
                count = None  # the compile itself will say what is wrong
    return progress.CompileProgress(count, enabled)


def _check_runs_here(target: str, options: dict) -> None:
    """Code for a CPU this machine lacks can be written (-o) but not run: refuse before compiling."""
    if target == "cpu" and options.get("cpu", "host") != "host":
        from irc.targets.cpu.llvm_env import check_runs_here

        check_runs_here(options["cpu"])


def _bind(specs, given: dict) -> dict:
    """Shapes of every input (see bind_dynamic), noting each dynamic dimension bound to 1."""
    shapes, notes = bind_dynamic(specs, given)
    for n in notes:
        note(n)
    return shapes


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, "--version", prog_name="irc", message="%(prog)s %(version)s")
@_debug_option
@_quiet_option
def cli(debug: bool) -> None:
    """irc: a neural-network compiler. MODEL is an ONNX file.

    A target's flags: irc compile --target TARGET --help, or irc help TARGET.
    """


@cli.command(short_help="Describe MODEL: inputs, outputs, ops, parameters, MACs, memory.")
@click.argument("model")
@_shape_option
@_debug_option
@_quiet_option
@QUANT
def info(model: str, shapes: tuple[str, ...], debug: bool) -> None:
    """Inputs, outputs, ops, parameters, MACs/FLOPs and activation memory of MODEL."""
    from irc.frontend.onnx import import_onnx, input_specs, load_model
    from irc.frontend.onnx.opset import default_opset
    from irc.ir.cost import activation_memory, graph_cost

    proto = load_model(model)
    specs = input_specs(proto)
    g = import_onnx(proto, _bind(specs, parse_shapes(shapes)))
    declared = {name: dims for name, dims, _ in specs}
    echo = click.echo
    echo(f"model       {model}")
    echo(f"graph       {g.name} (ONNX opset {default_opset(proto)}, producer {proto.producer_name or 'unknown'})")
    echo("inputs")
    for v in g.inputs:
        dims = declared.get(v.name, [])
        shown = "[" + ",".join("?" if d is None else str(d) for d in dims) + "]"
        echo(f"  {v.name:<24} {str(v.type):<24} model {shown}")
    echo("outputs")
    for v in g.outputs:
        echo(f"  {v.name:<24} {v.type}")
    echo(f"parameters  {format_count(g.param_count)} values in {len(g.params)} tensors, {format_bytes(g.param_bytes)}")
    cost = graph_cost(g)
    echo(f"{'op':<26}{'nodes':>7}{'MACs':>12}{'FLOPs':>12}")
    for op, c in sorted(cost.by_op.items(), key=lambda kv: -kv[1].cost.flops):
        unknown = op in cost.uncosted
        macs = "?" if unknown else format_count(c.cost.macs)
        flops = "?" if unknown else format_count(c.cost.flops)
        echo(f"  {op:<24}{c.count:>7}{macs:>12}{flops:>12}")
    echo(f"  {'total':<24}{len(g.nodes):>7}{format_count(cost.total.macs):>12}{format_count(cost.total.flops):>12}")
    if cost.uncosted:
        note(f"no cost entry for op(s) {', '.join(cost.uncosted)}: left out of the totals")
    mem = activation_memory(g)
    where = f" (at {mem.peak_node})" if mem.peak_node else ""
    echo(f"activations {format_bytes(mem.total_bytes)} in all, peak {format_bytes(mem.peak_bytes)} live{where}")
    from irc.cli.quant_report import print_report, quantized_for_info

    quantized = quantized_for_info(g)
    if quantized is not None:
        print_report(quantized, echo)


@cli.command("compile", cls=TargetCommand, short_help="Compile MODEL for a target.")
@click.argument("model")
@_target_option
@_shape_option
@click.option("--emit", type=click.Choice(["ir", "llvm", "asm"]),
              help="Print the compiled graph in irc's text form (ir), or the target's code: LLVM IR after "
                   "optimization (llvm) or assembly (asm).")
@click.option("--print-after", "print_after", multiple=True, metavar="PASS",
              help="Print the graph after pass PASS ('all': after every pass). Repeatable.")
@click.option("--passes", metavar="A,B,C", help="Run these passes instead of the target's pipeline.")
@_opt_option
@click.option("-o", "--output", "out", metavar="PATH", help="Save the compiled model (targets that make an artifact).")
@_progress_option
@_debug_option
@_quiet_option
@target_flags
def compile_cmd(model: str, target: str | None, shapes: tuple[str, ...], emit: str | None,
                print_after: tuple[str, ...], passes: str | None, opts: tuple[str, ...], out: str | None,
                show_progress: bool | None, debug: bool) -> None:
    """Compile MODEL for a target; print its IR, or save what the target makes."""
    from irc.frontend.onnx import input_specs, load_model
    from irc.ir.printer import print_graph
    from irc.passes.registry import get_pass

    target = target or DEFAULT_TARGET
    options = parse_options(target, opts)
    options.update(flag_options(target))
    check_combination(target, options)
    if out is not None and target == "cpu" and not out.endswith(".so"):  # before a long compile, not after
        raise InputError(f"the cpu target writes a shared library: give an output path ending in .so, not '{out}'")
    pass_list = None if passes is None else [p.strip() for p in passes.split(",") if p.strip()]
    for name in (pass_list or []) + [p for p in print_after if p != "all"]:
        get_pass(name)  # an unknown name is an error before any work
    proto = load_model(model)
    bound = _bind(input_specs(proto), parse_shapes(shapes))
    ran: list[str] = []

    def on_pass(name: str, graph) -> None:
        ran.append(name)
        if name in print_after or "all" in print_after:
            click.echo(f"// after {name}")
            click.echo(print_graph(graph), nl=False)

    from irc.api import compile as irc_compile

    with _compile_progress(target, options, pass_list, show_progress) as bar:
        compiled = irc_compile(proto, target, shapes=bound, passes=pass_list, on_pass=bar.chain(on_pass),
                               debug=debug, **options)
        _ = compiled.executable  # compiled now, under the progress bar
    missed = [p for p in print_after if p != "all" and p not in ran]
    if missed:
        raise InputError(f"pass(es) {', '.join(missed)} did not run for target '{target}' "
                         f"(passes run: {', '.join(ran) or 'none'}); use --passes to choose them")
    if emit == "ir":
        click.echo(print_graph(compiled.graph), nl=False)
    elif emit in ("llvm", "asm"):
        exe = compiled.executable
        text = getattr(exe, "llvm_ir" if emit == "llvm" else "assembly", None)
        if not callable(text):
            raise TargetError(f"target '{target}' does not generate {emit} code; --emit {emit} needs e.g. --target cpu")
        click.echo(text(), nl=False)
    summary = getattr(compiled.executable, "summary", None)
    if callable(summary) and emit is None:
        click.echo(summary(), nl=False)
    if out is not None:
        exe = compiled.executable
        save = getattr(exe, "save", None)
        if not callable(save):
            raise TargetError(f"target '{target}' makes nothing to save (it runs in memory only); "
                              f"-o needs a target that writes an artifact")
        written = save(out)
        for path in written or [out]:
            note(f"wrote {path}")
    if emit is None and out is None and not print_after:
        g = compiled.graph
        click.echo(f"compiled '{g.name}' for target '{target}': {len(g.nodes)} nodes, "
                   f"{len(g.params)} parameters ({format_bytes(g.param_bytes)}); passes: {', '.join(ran) or 'none'}")
        plan = getattr(compiled.executable, "plan", None)
        if plan is not None:
            click.echo(f"memory plan: arena {format_bytes(plan.arena_bytes)} (peak live activations "
                       f"{format_bytes(plan.peak_live_bytes)}), weights {format_bytes(plan.weights_bytes)}")


@cli.command(cls=TargetCommand, short_help="Run MODEL on given or random inputs.")
@click.argument("model")
@_target_option
@_shape_option
@click.option("--input", "-i", "inputs", multiple=True, metavar="NAME=FILE.npy|FILE.npz",
              help="Input data: NAME=FILE.npy, FILE.npz (keys are input names), or FILE.npy for a one-input model.")
@click.option("--random-inputs", "fill_random", is_flag=True, help="Fill inputs not given with random data.")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True, help="Seed of --random-inputs.")
@click.option("--output", "-o", "out", metavar="FILE.npz", help="Write the outputs to FILE.npz.")
@_opt_option
@_progress_option
@_debug_option
@_quiet_option
@target_flags
def run(model: str, target: str | None, shapes: tuple[str, ...], inputs: tuple[str, ...], fill_random: bool,
        seed: int, out: str | None, opts: tuple[str, ...], show_progress: bool | None, debug: bool) -> None:
    """Compile MODEL and run it once on given or random inputs; summarize the outputs."""
    import numpy as np

    from irc.api import compile as irc_compile
    from irc.fileio import atomic_path
    from irc.frontend.onnx import input_specs, load_model

    target = target or DEFAULT_TARGET
    options = parse_options(target, opts)
    options.update(flag_options(target))
    check_combination(target, options)
    _check_runs_here(target, options)
    proto = load_model(model)
    specs = input_specs(proto)
    given = parse_shapes(shapes)
    arrays = load_inputs(inputs, [s[0] for s in specs])
    for name, a in arrays.items():
        if name in given and tuple(given[name]) != a.shape:
            raise InputError(f"input '{name}' has shape {list(a.shape)} in its file but --shape gives {list(given[name])}")
    missing = [s for s in specs if s[0] not in arrays]
    if missing and not fill_random:
        raise InputError(f"no data for input(s) {', '.join(s[0] for s in missing)}; "
                         f"give --input NAME=FILE.npy or --random-inputs")
    bound = _bind(specs, {**given, **{k: a.shape for k, a in arrays.items()}})
    arrays.update(random_inputs(missing, bound, seed))
    with _compile_progress(target, options, None, show_progress) as bar:
        compiled = irc_compile(proto, target, shapes=bound, debug=debug, on_pass=bar.on_pass, **options)
        results = compiled.run(arrays)  # compiled now (for the values of inputs that set shapes too)
    names = compiled.output_names
    for name, r in zip(names, results):
        click.echo(summarize(name, r))
    if out is not None:
        with atomic_path(out) as tmp, open(tmp, "wb") as f:
            np.savez(f, **dict(zip(names, results)))
        note(f"wrote {out}")


@cli.command(short_help="Time MODEL with irc next to onnxruntime.")
@click.argument("model")
@_target_option
@_shape_option
@click.option("--threads", type=click.IntRange(min=1), default=None,
              help="Threads for irc and the peer (default: all cores).")
@click.option("--vs", type=click.Choice(["onnxruntime", "none"]), default="onnxruntime", show_default=True,
              help="The peer timed on the same inputs in the same process.")
@click.option("--budget", type=click.FloatRange(min=0, min_open=True, max=3600), default=2.0, show_default=True,
              help="Seconds of timed runs per engine (after warm-up; at least 10 runs).")
@_opt_option
@_debug_option
@_quiet_option
def bench(model: str, target: str | None, shapes: tuple[str, ...], threads: int | None, vs: str, budget: float,
          opts: tuple[str, ...], debug: bool) -> None:
    """Median latency of MODEL compiled by irc and run by the peer, and their ratio."""
    from irc.bench import compare_onnx
    from irc.frontend.onnx import input_specs, load_model

    target = target or DEFAULT_TARGET
    options = parse_options(target, opts)
    check_combination(target, options)
    _check_runs_here(target, options)
    bound = _bind(input_specs(load_model(model)), parse_shapes(shapes))
    c = compare_onnx(model, target=target, threads=threads, shapes=bound, vs=None if vs == "none" else vs,
                     budget_s=budget, debug=debug, **options)
    click.echo(f"model    {model} ({', '.join(f'{k}={x_dims(v)}' for k, v in bound.items())})")
    click.echo(f"threads  {c.threads}; irc compile {c.compile_s:.2f} s")
    click.echo(f"{'engine':<14}{'median ms':>12}{'p10 ms':>10}{'p90 ms':>10}{'runs':>7}")
    rows = [(f"irc ({target})", c.irc)] + ([(c.peer, c.peer_timing)] if c.peer_timing else [])
    for name, t in rows:
        click.echo(f"{name:<14}{t.median:>12.3f}{t.p10:>10.3f}{t.p90:>10.3f}{t.runs:>7}")
    if c.ratio is not None:
        click.echo(f"irc/{c.peer} = {c.ratio:.2f} (below 1: irc is faster); largest output difference "
                   f"{c.max_abs_diff:.2e}")
    elif vs != "none":
        note(f"{vs} is not installed: timed irc alone")


@cli.command("help", short_help="This help, or a target's flags and options: irc help TARGET.")
@click.argument("target", required=False, metavar="[TARGET]")
@click.pass_context
def help_cmd(ctx: click.Context, target: str | None) -> None:
    """Without TARGET, the list of commands; with it, what the target makes, its flags and options."""
    if target is None:
        click.echo(ctx.parent.get_help() if ctx.parent else "")
        return
    print_target_help(target, compile_cmd, ctx)


cli.add_command(dneuro)
cli.add_command(fpga)
cli.add_command(cache)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (the console script exits with it)."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args
    notes = Notes()
    with warnings.catch_warnings(), _term_unwinds():
        if not debug:
            warnings.simplefilter("ignore")
        try:
            rv = cli.main(args=args, prog_name="irc", standalone_mode=False, obj=notes)
            for n in [] if notes.quiet else notes:
                click.echo(f"irc: note: {n}", err=True)
            return rv if isinstance(rv, int) else 0
        except _NO_ARGS as e:  # bare `irc`: the help, as click < 8.2 did
            click.echo(e.ctx.get_help() if e.ctx else "")
            return 0
        except click.ClickException as e:
            hint = f" (see '{e.ctx.command_path} --help')" if getattr(e, "ctx", None) is not None else ""
            return _fail(f"{e.format_message()}{hint}", e, debug)
        except click.exceptions.Abort as e:  # click turns KeyboardInterrupt (and so SIGTERM) into Abort
            if isinstance(e.__cause__, _Terminated):
                click.echo("irc: terminated", err=True)
                return 128 + signal.SIGTERM
            if isinstance(e.__cause__, KeyboardInterrupt):
                click.echo("irc: interrupted", err=True)
                return 130
            return _fail("aborted", None, debug, status=1)
        except IRCError as e:
            return _fail(str(e), e, debug)
        except OSError as e:
            what = f"{e.strerror or e}: {e.filename}" if e.filename else str(e)
            return _fail(what, e, debug)
        except _Terminated:
            click.echo("irc: terminated", err=True)
            return 128 + signal.SIGTERM
        except KeyboardInterrupt:
            click.echo("irc: interrupted", err=True)
            return 130
        except Exception as e:
            if debug:
                traceback.print_exc()
            msg = _one_line(f"{type(e).__name__}: {e}")
            click.echo(f"irc: internal error: {msg} (a bug in irc; rerun with --debug for the traceback)", err=True)
            return 1


_NO_ARGS = getattr(click.exceptions, "NoArgsIsHelpError", ())


class _Terminated(KeyboardInterrupt):
    """SIGTERM, raised where Python is so that cleanup (finally blocks, temporary files) runs."""


@contextlib.contextmanager
def _term_unwinds():
    """While the command runs, SIGTERM unwinds the stack like Ctrl-C instead of ending the process
    on the spot (only in the main thread, where Python delivers signals)."""
    import threading

    if threading.current_thread() is not threading.main_thread() or \
            signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        yield
        return

    def raise_terminated(signum, frame):
        raise _Terminated()

    signal.signal(signal.SIGTERM, raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _fail(message: str, exc: BaseException | None, debug: bool, status: int = 2) -> int:
    if debug and exc is not None:
        traceback.print_exception(exc)
    click.echo(f"irc: error: {_one_line(message)}", err=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
