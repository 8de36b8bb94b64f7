"""Random-graph differential testing: hypothesis draws well-formed graphs over the op registry
(graphs.py) and every target that runs here must give the interpreter's results (compare.py).
``python -m tests.differential --n 1000`` is the long run; the test module runs a short one."""
