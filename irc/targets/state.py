"""Graph state: values an executable keeps between runs and updates in place (training).

A train step reads the weights and optimizer state and computes their next values. In irc that
state is marked on the graph, not hidden in a runtime:

    g.meta["state"] = [(input_index, output_index), ...]

says: graph input ``input_index`` is state, and graph output ``output_index`` is its next value
(same type). State is a graph *input*, not a parameter, on purpose: passes treat parameters as
compile-time constants (constant folding, packing GEMM weights into panels, folding batch norm
into a conv), which a value that changes every step must escape.

:class:`StatefulExecutable` honours the marking for any target's executable. The caller gives
only the data inputs; the executable binds the state inputs from buffers it owns and, after the
run, those buffers hold the state outputs. No weight is copied between steps:

- where the target's ``run`` accepts output buffers (the CPU target), each state output is
  written straight into its input's buffer when that is safe: the node producing it is
  element-wise (every element computed from the same element of its inputs) and no later node
  reads the old value or a view of it. Otherwise the state output goes to a second buffer and
  the two are swapped (double buffering): still no copy;
- the interpreter returns fresh arrays, which simply become the state.

Run outputs that are state come back as the executable's live buffers: read, do not keep
(``state()`` gives copies).
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence

import numpy as np

from irc.errors import InputError, ModelError
from irc.ir.graph import Graph
from irc.ir.interp import check_input
from irc.passes.memory_plan import ALIGN

STATE_KEY = "state"


def state_pairs(g: Graph) -> list[tuple[int, int]]:
    """The (input index, output index) pairs of ``g``'s state, checked."""
    pairs = [(int(i), int(o)) for i, o in g.meta.get(STATE_KEY, ())]
    seen_in, seen_out = set(), set()
    for i, o in pairs:
        if not (0 <= i < len(g.inputs)) or not (0 <= o < len(g.outputs)):
            raise ModelError(f"state pair ({i}, {o}) names no input/output of graph {g.name}")
        if g.inputs[i].type != g.outputs[o].type:
            raise ModelError(f"state input %{g.inputs[i].name} is {g.inputs[i].type} but its next value "
                             f"%{g.outputs[o].name} is {g.outputs[o].type}")
        if i in seen_in or o in seen_out:
            raise ModelError(f"state input {i} or output {o} of graph {g.name} is paired twice")
        seen_in.add(i)
        seen_out.add(o)
    return pairs


def aligned_empty(shape, dtype) -> np.ndarray:
    """An uninitialized array whose data is 64-byte aligned (what native kernels vectorize on)."""
    dtype = np.dtype(dtype)
    n = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    raw = np.empty(n + ALIGN, np.uint8)
    start = (-raw.ctypes.data) % ALIGN
    return raw[start:start + n].view(dtype).reshape(shape)


def in_place_safe(g: Graph, i: int, o: int) -> bool:
    """Whether output ``o`` may be written over input ``i``'s buffer while ``g`` runs: no node
    after o's producer reads input i or a view of it (reshape), and the producer itself reads
    them, if at all, only element for element (an element-wise op whose operand has o's type)."""
    from irc.ir.ops import get_op

    src, out = g.inputs[i], g.outputs[o]
    producer = next((k for k, n in enumerate(g.nodes) if out in n.outputs), None)
    if producer is None or out in g.outputs[:o] or out in g.outputs[o + 1:]:
        return False
    aliases = {src}
    for n in g.nodes:
        if n.op == "reshape" and n.inputs[0] in aliases:
            aliases.update(n.outputs)
    if any(v in aliases for n in g.nodes[producer + 1:] for v in n.inputs):
        return False
    node = g.nodes[producer]
    read = [v for v in node.inputs if v in aliases]
    if not read:
        return True
    elementwise = "elementwise" in get_op(node.op).traits or node.op == "elementwise_chain"
    return elementwise and len(node.outputs) == 1 and all(v.type == out.type for v in read)


class StatefulExecutable:
    """A compiled graph with state (see module doc): ``run(data_inputs)`` -> outputs."""

    def __init__(self, exe, initial: Mapping[str, np.ndarray]):
        self.exe = exe
        g = exe.graph
        self.graph = g
        self.pairs = state_pairs(g)
        self._state_in = {i for i, _ in self.pairs}
        self.data_inputs = [v for k, v in enumerate(g.inputs) if k not in self._state_in]
        names = {g.inputs[i].name for i, _ in self.pairs}
        missing = sorted(names - set(initial))
        if missing:
            raise InputError(f"no initial value for state {', '.join(missing)}")
        self._buf: dict[int, np.ndarray] = {}
        for i, _ in self.pairs:
            v = g.inputs[i]
            buf = aligned_empty(v.shape, v.dtype.numpy)
            np.copyto(buf, check_input(v, np.asarray(initial[v.name])))
            self._buf[i] = buf
        self._takes_out = "out" in inspect.signature(exe.run).parameters
        self._in_place = {o: self._takes_out and in_place_safe(g, i, o) for i, o in self.pairs}
        self._spare: dict[int, np.ndarray] = {}

    # -- state access -------------------------------------------------------------------
    @property
    def state_names(self) -> list[str]:
        return [self.graph.inputs[i].name for i, _ in self.pairs]

    def state(self) -> dict[str, np.ndarray]:
        """A copy of every state value, by input name."""
        return {self.graph.inputs[i].name: self._buf[i].copy() for i, _ in self.pairs}

    def peek(self, name: str) -> np.ndarray:
        """The live buffer of one state value (read-only view; changes with the next run)."""
        for i, _ in self.pairs:
            if self.graph.inputs[i].name == name:
                view = self._buf[i].view()
                view.flags.writeable = False
                return view
        raise KeyError(name)

    def set_state(self, values: Mapping[str, np.ndarray]) -> None:
        """Overwrite state values (by input name) in place."""
        by_name = {self.graph.inputs[i].name: i for i, _ in self.pairs}
        for name, a in values.items():
            if name not in by_name:
                raise InputError(f"'{name}' is not a state value of {self.graph.name} "
                                 f"(state: {', '.join(by_name)})")
            i = by_name[name]
            np.copyto(self._buf[i], check_input(self.graph.inputs[i], np.asarray(a)))

    # -- running ------------------------------------------------------------------------
    def run(self, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Outputs of one run for the data inputs (in graph order, state left out); state
        outputs come back as the live state buffers."""
        g = self.graph
        inputs = list(inputs)
        if len(inputs) != len(self.data_inputs):
            sig = ", ".join(f"{v.name}: {v.type}" for v in self.data_inputs)
            raise InputError(f"got {len(inputs)} input(s); the step takes {sig}")
        it = iter(check_input(v, a) for v, a in zip(self.data_inputs, inputs))
        full = [self._buf[k] if k in self._state_in else next(it) for k in range(len(g.inputs))]
        if self._takes_out:
            out = [np.empty(v.shape, v.dtype.numpy) for v in g.outputs]
            for i, o in self.pairs:
                if self._in_place[o]:
                    out[o] = self._buf[i]
                else:
                    if o not in self._spare:
                        self._spare[o] = aligned_empty(g.outputs[o].shape, g.outputs[o].dtype.numpy)
                    out[o] = self._spare[o]
            results = self.exe.run(full, out=out)
        else:
            results = self.exe.run(full)
        for i, o in self.pairs:
            new = results[o]
            if new is self._buf[i]:
                continue
            if self._takes_out:  # double buffering: swap
                self._spare[o], self._buf[i] = self._buf[i], new
            else:
                self._buf[i] = new if new.flags.c_contiguous and new.flags.writeable else new.copy()
        return self._outputs(results)

    def _outputs(self, results: list[np.ndarray]) -> list[np.ndarray]:
        live = {o: self._buf[i] for i, o in self.pairs}
        return [live.get(k, r) for k, r in enumerate(results)]

