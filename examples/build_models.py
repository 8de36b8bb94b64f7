"""Write the example models (irc.zoo) as ONNX files.

    python examples/build_models.py                    # every model, batch "N", into examples/models/
    python examples/build_models.py resnet18 --batch 8 --out /tmp/models

Files are written atomically. Only lenet5.onnx is kept in the repository; the others are
large (tens of MB) and are built on demand.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import irc.zoo
from irc.fileio import atomic_write

#: File name -> (zoo model, size arguments): the defaults give the standard networks.
EXAMPLES = {
    "lenet5": ("lenet5", {}),
    "mlp": ("mlp", {}),
    "resnet18": ("resnet18", {}),
    "small_resnet": ("small_resnet", {}),
    "mobilenet_v2": ("mobilenet_v2", {}),
    "vgg_cifar": ("vgg_cifar", {}),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", metavar="NAME", help=f"models to write (default: all of {', '.join(EXAMPLES)})")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "models", help="folder to write into")
    parser.add_argument("--batch", type=int, default=None, help="fixed batch size (default: symbolic 'N')")
    args = parser.parse_args(argv)
    unknown = [n for n in args.names if n not in EXAMPLES]
    if unknown:
        parser.error(f"unknown model(s) {', '.join(unknown)}; choose from {', '.join(EXAMPLES)}")
    for name in args.names or EXAMPLES:
        model, kw = EXAMPLES[name]
        proto = irc.zoo.build(model, batch=args.batch, **kw)
        path = atomic_write(args.out / f"{name}.onnx", proto.SerializeToString())
        print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
