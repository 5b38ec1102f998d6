"""`tightfit profile`: build a target's latency lookup table for the search space, and validate it."""

from __future__ import annotations

import argparse
import json
import time

from tightfit.errors import TightfitError
from tightfit.hardware.cost import CostModel
from tightfit.hardware.profile import build_table
from tightfit.hardware.targets import get_target
from tightfit.hardware.validate import summarize, validate
from tightfit.space.space import SearchSpace


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("profile", help="measure every operator of the search space on a target (lookup table)")
    p.add_argument("--target", default="cpu-ort", help="cpu-ort (default), cpu-torch, cuda, or path/to/accel.yaml")
    p.add_argument("--resolution", type=int, default=32)
    p.add_argument("--in-channels", type=int, default=3)
    p.add_argument("--classes", type=int, default=10)
    p.add_argument("--width", type=float, default=1.0)
    p.add_argument("--threads", type=int, help="intra-op threads for timing (default 1, or $TIGHTFIT_THREADS)")
    p.add_argument("--validate", type=int, default=0, metavar="N",
                   help="then measure N random networks end to end and report the error of the prediction")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    if args.threads is not None and args.threads < 1:
        raise TightfitError(f"--threads {args.threads} must be at least 1")
    target = get_target(args.target, args.threads)
    if target.kind == "analytic":
        raise TightfitError(f"target {target.name} is analytic: its costs are computed, there is nothing to profile")
    space = SearchSpace(args.resolution, args.in_channels, args.classes, width_mult=args.width)
    start = time.perf_counter()
    table = build_table(target, space)
    print(json.dumps({"target": target.name, "table": str(table.path), "entries": len(table),
                      "overhead_ms": table.overhead_ms, "seconds": round(time.perf_counter() - start, 1),
                      "fingerprint": table.fingerprint}, indent=2))
    if args.validate:
        rows = validate(CostModel(target), space, args.validate, seed=args.seed)
        print(json.dumps(summarize(rows), indent=2))
    return 0
