"""Graph passes. Importing this package registers all of them."""

from irc.passes import dead_code  # noqa: F401
from irc.passes.registry import PASSES, get_pass, register_pass  # noqa: F401
