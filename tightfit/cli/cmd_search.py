"""`tightfit search`: step 1 alone, ProxylessNAS on a data set and target; writes search.json and a report."""

from __future__ import annotations

import argparse
import json

from tightfit.cli import options
from tightfit.pipeline import run
from tightfit.pipeline.stage_search import SearchStage


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("search", help="search an architecture for a target (ProxylessNAS) without training it",
                       description="Search the architecture only; `tightfit run --arch ARCH` trains and deploys "
                                   "the result. Under torchrun, every process trains the supernet.")
    options.add_task(p)
    options.add_search(p)
    options.add_run_folder(p)
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    args.arch = None
    config = options.config_from(args, "search")
    result = run(config, args.out, resume=args.resume, progress=not args.no_progress, stages=[SearchStage()])
    if result is not None:
        s = result.search
        print(json.dumps({"run_dir": str(result.run_dir), "arch": s["arch"], "metric": s["metric"],
                          "predicted": s["cost"], "unit": s["unit"], "target": s["target"],
                          "argmax_met_target": s["argmax_met_target"]}, indent=2))
    return 0
