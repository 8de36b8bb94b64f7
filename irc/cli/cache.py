"""``irc cache info|clear``: the compile cache seen from the command line.

The cache (irc/targets/cpu/compile_cache.py) keeps the object code of compiled models between
processes; ``info`` says where it is and how full, ``clear`` empties it. ``--no-cache`` on
``irc compile`` and ``irc run`` (or ``cache=False`` in Python) compiles without it.
"""

from __future__ import annotations

import click

from irc.cli.args import format_bytes


@click.group("cache", short_help="Show or clear the compile cache.")
def cache() -> None:
    """The compile cache: object code of compiled models kept between processes, in
    $IRC_CACHE_DIR (else $XDG_CACHE_HOME/irc, else ~/.cache/irc), bounded by
    $IRC_CACHE_MAX_BYTES (default 1 GiB; least recently used entries go first)."""


@cache.command("info", short_help="Where the compile cache is and how full.")
def info() -> None:
    """Print the cache folder, its entries and bytes, and the size bound."""
    from irc.targets.cpu.compile_cache import CompileCache

    i = CompileCache().info()
    click.echo(f"compile cache: {i.path}")
    click.echo(f"entries: {i.entries}, {format_bytes(i.bytes)} of {format_bytes(i.max_bytes)}")


@cache.command("clear", short_help="Delete every entry of the compile cache.")
def clear() -> None:
    """Delete every entry; the next compile of each model runs LLVM again."""
    from irc.targets.cpu.compile_cache import CompileCache

    store = CompileCache()
    size = store.info().bytes
    n = store.clear()
    click.echo(f"removed {n} entr{'y' if n == 1 else 'ies'} ({format_bytes(size)}) from {store.root}")
