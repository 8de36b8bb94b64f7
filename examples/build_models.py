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


def model_args(parser: argparse.ArgumentParser, table: dict, argv: list[str] | None) -> tuple[argparse.Namespace, list[str]]:
    """Parse ``argv`` with ``parser`` plus the NAME arguments, which must be keys of ``table``;
    returns the arguments and the names chosen (none: every one in the table)."""
    parser.add_argument("names", nargs="*", metavar="NAME", help=f"models (default: all of {', '.join(table)})")
    args = parser.parse_args(argv)
    unknown = [n for n in args.names if n not in table]
    if unknown:
        parser.error(f"unknown model(s) {', '.join(unknown)}; choose from {', '.join(table)}")
    return args, args.names or list(table)


def write_model(table: dict, name: str, path: Path, batch: int | None) -> Path:
    """Build the zoo model ``table[name]`` and write it to ``path`` atomically."""
    model, kw = table[name]
    return atomic_write(path, irc.zoo.build(model, batch=batch, **kw).SerializeToString())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "models", help="folder to write into")
    parser.add_argument("--batch", type=int, default=None, help="fixed batch size (default: symbolic 'N')")
    args, names = model_args(parser, EXAMPLES, argv)
    for name in names:
        path = write_model(EXAMPLES, name, args.out / f"{name}.onnx", args.batch)
        print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
