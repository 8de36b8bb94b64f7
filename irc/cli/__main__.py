"""``python -m irc.cli`` runs the ``irc`` command."""

import sys

from irc.cli.commands import main

sys.exit(main())
