"""`tightfit data`: load a data set (decoding and caching it) and print its summary."""

from __future__ import annotations

import argparse
import json

from tightfit.data.registry import load_dataset


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("data", help="load a data set, fill its cache and print a summary")
    p.add_argument("spec", help="digits, imagefolder:PATH or cifar10:PATH")
    p.add_argument("--resolution", type=int, help="resize to this many pixels square")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    bundle = load_dataset(args.spec, args.resolution)
    mean, std = bundle.channel_stats()
    print(json.dumps({**bundle.summary(), "mean": mean, "std": std}, indent=2))
    return 0
