"""The ``fpga`` target: one name, several flows, chosen by the ``flow`` option.

- ``flow="hls"`` (default): a Vitis HLS project (irc.targets.fpga_hls);
- ``flow="dneuro"``: an int8 dataflow accelerator of RTL blocks (irc.targets.dneuro).

The target's options are the union of the flows' options. An option both flows take, with
different defaults, defaults to None here and gets the chosen flow's own default; an option
given with a value other than its default must belong to the chosen flow.
"""

from __future__ import annotations

import importlib
from typing import Any

from irc.errors import InputError
from irc.passes.pipeline import PassSpec
from irc.targets.base import Target

#: flow -> (module, class)
FLOWS: dict[str, tuple[str, str]] = {
    "hls": ("irc.targets.fpga_hls", "HlsTarget"),
    "dneuro": ("irc.targets.dneuro.flow", "DneuroTarget"),
}
DEFAULT_FLOW = "hls"


def _flow_target(flow: str):
    module, cls = FLOWS[flow]
    return getattr(importlib.import_module(module), cls)()


class FpgaTarget(Target):
    """Dispatches to the flow named by the ``flow`` option; each flow declares its own PIPELINE."""

    name = "fpga"

    def __init__(self):
        self.flows = {f: _flow_target(f) for f in FLOWS}
        merged: dict[str, Any] = {}
        for t in self.flows.values():
            for k, v in t.options.items():
                if k in merged and merged[k] != v:
                    merged[k] = None  # per-flow default (see flow_options)
                else:
                    merged.setdefault(k, v)
        merged["flow"] = DEFAULT_FLOW
        self.options = merged

    def _flow(self, options: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
        flow = str(options.get("flow") or DEFAULT_FLOW).lower()
        if flow not in self.flows:
            raise InputError(f"unknown fpga flow '{options.get('flow')}' (this target builds: {', '.join(FLOWS)})")
        t = self.flows[flow]
        opts = {}
        for k, v in options.items():
            if k in t.options:
                opts[k] = t.options[k] if v is None else v
            elif v != self.options.get(k):
                others = [f for f, o in self.flows.items() if k in o.options]
                raise InputError(f"option '{k}' belongs to the fpga flow {' and '.join(others)}, not '{flow}'")
        opts["flow"] = flow
        return t, opts

    def pipeline(self, options: dict[str, Any]) -> list[PassSpec]:
        t, opts = self._flow(options)
        return t.pipeline(opts)

    def pass_options(self, options: dict[str, Any]) -> dict[str, Any]:
        """The chosen flow's options (its defaults for those left None) and what it derives."""
        t, opts = self._flow(options)
        return {**opts, **t.pass_options(opts)}

    def build(self, graph, options: dict[str, Any]):
        t, opts = self._flow(options)
        return t.build(graph, opts)
