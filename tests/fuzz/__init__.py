"""A mutation fuzzer for irc's ONNX import: shipped models, mutated byte by byte and structurally,
each compiled and run in a child process and classified (compiled, clean IRCError, other
exception, crash by signal, hang). ``python -m tests.fuzz --help`` runs it."""
