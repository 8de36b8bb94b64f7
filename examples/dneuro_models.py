"""The standard 224x224 ImageNet topologies as ONNX files (random weights), and which Arria 10
devices the DNeuro flow fits them on.

    python examples/dneuro_models.py --out /tmp/imagenet            # write every model
    python examples/dneuro_models.py --out /tmp/imagenet --fit      # ... and print the fit table
    python examples/dneuro_models.py mobilenet_v1_0.25 squeezenet_1.1 --out /tmp/m --fit

The fit table is ``irc dneuro fit`` over the written files; ``irc dneuro curve FILE -o curve``
gives one model's trade-off of DSP budget against frame rate. The files are large (VGG-16:
550 MB, AlexNet: 244 MB) and are written atomically.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from build_models import model_args, write_model

#: File name -> (zoo model, arguments): batch 1, 3x224x224 input, 1000 classes.
MODELS = {
    **{f"mobilenet_v1_{w:g}": ("mobilenet_v1", {"width": w}) for w in (0.25, 0.5, 0.75, 1.0)},
    **{f"mobilenet_v2_{w:g}": ("mobilenet_v2", {"width": w}) for w in (0.35, 0.5, 0.75, 1.0, 1.3, 1.4)},
    "squeezenet_1.0": ("squeezenet", {"version": "1.0"}),
    "squeezenet_1.1": ("squeezenet", {"version": "1.1"}),
    "alexnet": ("alexnet", {}),
    "vgg16": ("vgg16", {}),
    "googlenet": ("googlenet", {}),
    "resnet18": ("resnet18", {}),
    "resnet34": ("resnet34", {}),
    "resnet50": ("resnet50", {}),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="folder to write the .onnx files into")
    parser.add_argument("--fit", action="store_true", help="then print the model x device fit table")
    parser.add_argument("--csv", type=Path, help="with --fit: also write the table as CSV")
    args, names = model_args(parser, MODELS, argv)
    paths = []
    for name in names:
        path = args.out / f"{name}.onnx"
        if not path.exists():
            write_model(MODELS, name, path, 1)
            print(f"wrote {path}", file=sys.stderr)
        paths.append(str(path))
    if args.fit:
        from irc.cli.commands import main as irc_main

        return irc_main(["dneuro", "fit", *paths] + (["--csv", str(args.csv)] if args.csv else []))
    return 0


if __name__ == "__main__":
    sys.exit(main())
