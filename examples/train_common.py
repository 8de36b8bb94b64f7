"""What the training examples share: their command line and how they report epochs."""

from __future__ import annotations

import argparse

import numpy as np


def parse_args(description: str, *, batch_size: int, lr: float, out: str) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--mnist", help="mnist.npz or a folder with the IDX files")
    ap.add_argument("--target", default="cpu", choices=["cpu", "interp"])
    ap.add_argument("--threads", type=int, default=None, help="cpu threads (default: all cores)")
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--batch-size", type=int, default=batch_size)
    ap.add_argument("--lr", type=float, default=lr)
    ap.add_argument("--out", default=None, help=f"write the trained model as ONNX here (e.g. {out}); "
                                                 "nothing is written without it")
    return ap.parse_args()


def target_options(args: argparse.Namespace) -> dict:
    """Options of the chosen target: the thread count for cpu when one is given."""
    return {"threads": args.threads} if args.target == "cpu" and args.threads else {}


def report(hist: dict, out: str | None) -> None:
    """The final test accuracy and the median epoch time (fit printed each epoch's line)."""
    wrote = f"wrote {out}" if out else "not saved (give --out FILE.onnx to keep it)"
    print(f"test accuracy {hist['val_accuracy'][-1]:.4f}; median epoch time {np.median(hist['time']):.2f} s; "
          f"model {wrote}")
