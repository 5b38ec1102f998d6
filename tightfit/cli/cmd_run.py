"""`tightfit run`: from a data set, a target and constraints to a deployed, measured model."""

from __future__ import annotations

import argparse
import json

from tightfit.cli import options
from tightfit.models.registry import model_families
from tightfit.pipeline import run
from tightfit.pipeline.config import RunConfig


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="search, train, export and measure a model for a target; writes a run folder",
                       description="Run the pipeline. Under torchrun, search and training use every process.")
    options.add_task(p)
    p.add_argument("--model", default=RunConfig.model, choices=("search", *model_families()),
                   help="'search' (default): ProxylessNAS finds the architecture for the target (step 1); or a "
                        "fixed network family ('arch' takes --arch)")
    p.add_argument("--arch", help="an architecture of the search space, e.g. k3e6-skip-...; implies --model arch")
    options.add_training(p)
    options.add_search(p)
    options.add_prune(p)
    options.add_quantize(p)
    options.add_run_folder(p)
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    config = options.config_from(args, "arch" if args.arch else args.model)
    result = run(config, args.out, resume=args.resume, progress=not args.no_progress)
    if result is not None:
        card = result.card
        print(json.dumps({"run_dir": str(result.run_dir), "model": card["model"]["arch"] or card["model"]["family"],
                          "test_top1": card["accuracy"]["test_top1_onnx"],
                          "latency_ms_p50": card["latency_ms"]["p50"], "size_bytes": card["size_bytes"]["model"],
                          "parity_max_abs_diff": card["parity_max_abs_diff"],
                          "constraints_met": card["all_constraints_met"]}, indent=2))
    return 0
