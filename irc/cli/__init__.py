"""The ``irc`` command line: ``main`` is the console entry point (``irc = irc.cli:main``)."""

from irc.cli.commands import main  # noqa: F401
