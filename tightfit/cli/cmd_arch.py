"""`tightfit arch`: sample or check architectures of the search space and describe their networks."""

from __future__ import annotations

import argparse
import json
import random

from tightfit.metrics.complexity import measure_complexity
from tightfit.models.registry import ModelSpec, build_model
from tightfit.space.arch import Arch


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("arch", help="sample or validate a search-space architecture and show its cost")
    p.add_argument("arch", nargs="?", help="architecture string; omitted: sample one at random")
    p.add_argument("--resolution", type=int, default=32)
    p.add_argument("--in-channels", type=int, default=3)
    p.add_argument("--classes", type=int, default=10)
    p.add_argument("--width", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    spec = ModelSpec("arch", args.resolution, args.in_channels, args.classes, args.width)
    space = spec.search_space()
    arch = space.validate(Arch.parse(args.arch)) if args.arch else space.random_arch(random.Random(args.seed))
    model = build_model(ModelSpec("arch", args.resolution, args.in_channels, args.classes, args.width, str(arch)))
    cost = measure_complexity(model, (args.in_channels, args.resolution, args.resolution))
    blocks = [f"{b.in_channels}->{b.out_channels} k{b.kernel} e{b.expand} s{b.stride} @{b.in_resolution}px"
              for b in space.plan(arch).blocks]
    print(json.dumps({"arch": str(arch), "depth": arch.depth, "blocks": blocks, **cost.to_json()}, indent=2))
    return 0
