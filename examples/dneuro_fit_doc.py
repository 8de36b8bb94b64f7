"""Write docs/dneuro_fit.md: irc's fit table for the 18 standard topologies on the nine Arria 10
sizes beside the original project's cells (irc.targets.dneuro.fit_doc).

    python examples/dneuro_fit_doc.py                 # rewrite docs/dneuro_fit.md
    python examples/dneuro_fit_doc.py --check         # exit 1 if the file is out of date
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

DOC = Path(__file__).resolve().parents[1] / "docs" / "dneuro_fit.md"


def layer_graphs() -> dict:
    """The topologies of dneuro_models.py as layer graphs (shapes only: random weights)."""
    import irc.zoo
    from irc.frontend.onnx.importer import import_onnx
    from irc.passes.pipeline import run_pipeline
    from irc.targets.dneuro.mapping import map_graph

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from dneuro_models import MODELS

    out = {}
    for name, (zoo, kw) in MODELS.items():
        g = import_onnx(irc.zoo.build(zoo, batch=1, **kw), {"input": (1, 3, 224, 224)})
        out[name] = map_graph(run_pipeline(g, ["dead_code", "fold_constants"]))
    return out


def document(graphs: dict) -> str:
    from irc.targets.dneuro.devices import device_names, get_device
    from irc.targets.dneuro.fit import fit_table
    from irc.targets.dneuro.fit_doc import ORIGINAL_FROM, render

    devices = [get_device(d) for d in device_names(distinct=True)]
    unknown = {name: lg for name, lg in graphs.items() if name not in ORIGINAL_FROM}
    return render(fit_table(graphs, devices), devices, fit_table(unknown, devices, offchip=False))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare with the file instead of writing it")
    args = parser.parse_args(argv)
    text = document(layer_graphs())
    if args.check:
        return 0 if DOC.exists() and DOC.read_text() == text else 1
    DOC.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
