"""Kernel tables of the LLVM targets: one registration helper, each target its own table and
kernel record."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any


def register(table: dict[str, Any], target: str, ops: Iterable[str], make: Callable[[str, Callable], Any]):
    """A decorator recording ``make(op, emit)`` under each of ``ops`` in ``table`` (once per op)."""

    def wrap(fn: Callable) -> Callable:
        for op in ops:
            assert op not in table, f"{target} kernel for {op} defined twice"
            table[op] = make(op, fn)
        return fn

    return wrap
