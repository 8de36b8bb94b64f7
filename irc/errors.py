"""The errors irc raises for bad input.

Every user-facing failure is an :class:`IRCError` (or a subclass) whose message names
what was wrong: the node, its op and what was expected. The CLI prints ``str(err)`` on
one line and exits with status 2; anything that is not an IRCError is a bug in irc.
"""

from __future__ import annotations


class IRCError(Exception):
    """Base of every error caused by what the user gave irc."""

    def __init__(self, message: str, *, node: str | None = None, op: str | None = None):
        self.node = node
        self.op = op
        self.detail = message
        where = ""
        if node is not None and op is not None:
            where = f"node '{node}' ({op}): "
        elif op is not None:
            where = f"op '{op}': "
        elif node is not None:
            where = f"node '{node}': "
        super().__init__(where + message)

    def at(self, node: str | None, op: str | None) -> IRCError:
        """The same error located at a node, unless it already names one."""
        if self.node is not None or node is None:
            return self
        return type(self)(self.detail, node=node, op=op or self.op)


class ModelError(IRCError):
    """The model itself is malformed: not a model, a cycle, a dangling input, bad attributes."""


class UnsupportedOpError(IRCError):
    """The model uses ops (or op variants) that irc or the chosen target does not implement."""


class ShapeError(IRCError):
    """Shapes or dtypes do not agree with what an op requires."""


class TargetError(IRCError):
    """The chosen target cannot take the graph: missing toolchain, does not fit the device."""


class InputError(IRCError):
    """Run-time inputs (or command-line arguments) do not match what the model expects."""
