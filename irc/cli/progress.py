"""Progress of a long compile on stderr, so a user waiting on a large model sees that irc works.

Nothing is shown for a compile that ends within ``DELAY_S``; after that a bar counts the passes
run and then the code generation step (the longest, one LLVM or HLS call, during which the
elapsed time keeps ticking). Shown on a terminal or when asked (``--progress``), never with
``--quiet`` or ``--no-progress``; stdout is never touched.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable

#: a compile shorter than this shows no progress at all
DELAY_S = 2.0
#: how often the elapsed time is redrawn while a step runs
REFRESH_S = 0.5


def wanted(flag: bool | None, quiet: bool) -> bool:
    """Whether to show progress: ``flag`` (--progress/--no-progress) if given, else when stderr is
    a terminal; never when quiet."""
    if quiet:
        return False
    if flag is not None:
        return flag
    return sys.stderr.isatty()


class CompileProgress:
    """A context whose ``on_pass`` (irc.compile's callback) counts the passes of a compile of
    ``passes`` passes; the step after the last pass is code generation."""

    def __init__(self, passes: int | None, enabled: bool, delay_s: float | None = None, stream=None):
        self.total = None if passes is None else passes + 1
        self.enabled = enabled
        self.delay_s = DELAY_S if delay_s is None else delay_s
        self.stream = stream if stream is not None else sys.stderr
        self.done = 0
        self.stage = "running passes"
        self._finished = threading.Event()
        self._thread: threading.Thread | None = None
        self.shown = False

    def on_pass(self, name: str, graph) -> None:
        self.done += 1
        last = self.total is not None and self.done >= self.total - 1
        self.stage = "generating code" if last else f"after {name}"

    def chain(self, other: Callable[[str, object], None] | None) -> Callable[[str, object], None]:
        """``on_pass`` that also calls ``other`` (e.g. --print-after's printer)."""
        if other is None:
            return self.on_pass

        def both(name: str, graph) -> None:
            self.on_pass(name, graph)
            other(name, graph)

        return both

    def __enter__(self) -> CompileProgress:
        if self.enabled:
            self._thread = threading.Thread(target=self._show, name="irc-progress", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._finished.set()
        if self._thread is not None:
            self._thread.join()

    def _line(self) -> str:
        steps = f"{min(self.done, self.total)}/{self.total}" if self.total else str(self.done)
        return f"compiling: {steps} steps, {self.stage}"

    def _show(self) -> None:
        if self._finished.wait(self.delay_s):
            return
        from tqdm import tqdm

        bar = tqdm(total=self.total, unit="step", file=self.stream, leave=False, dynamic_ncols=True,
                   bar_format="{desc} [{elapsed}]", desc=self._line())
        self.shown = True
        try:
            while True:
                bar.n = min(self.done, self.total or self.done)
                bar.set_description_str(self._line(), refresh=False)
                bar.refresh()
                if self._finished.wait(REFRESH_S):
                    break
        finally:
            bar.close()
