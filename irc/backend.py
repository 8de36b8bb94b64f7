"""``import irc.backend`` keeps working: the onnx.backend interface lives in irc.frontend.onnx.backend."""

from irc.frontend.onnx.backend import *  # noqa: F401,F403
from irc.frontend.onnx.backend import IRCBackend, IRCBackendRep  # noqa: F401
