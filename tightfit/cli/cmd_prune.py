"""`tightfit prune`: step 2 alone, AMC on a model the user already has; writes a run folder."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from tightfit.cli import options
from tightfit.errors import TightfitError
from tightfit.models.registry import model_families
from tightfit.pipeline import run
from tightfit.pipeline.stage_export import ExportStage
from tightfit.pipeline.stage_prune import PruneStage


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("prune", help="prune a trained model's channels with AMC, fine-tune, export and measure it",
                       description="Channel pruning of your own CNN: --model module:function builds it (no "
                                   "arguments), --weights loads it. Example: tightfit prune --model mynets:resnet "
                                   "--weights w.safetensors --data imagefolder:DATA --flops 0.5")
    p.add_argument("--model", required=True, help=f"module:function returning the model, or a tightfit family "
                                                  f"({', '.join(model_families())})")
    p.add_argument("--weights", required=True, type=Path, help="the trained weights, a safetensors state_dict")
    p.add_argument("--arch", help="architecture string, for --model arch")
    options.add_task(p)
    options.add_prune(p, flag="--ratio")
    options.add_training(p)
    options.add_run_folder(p)
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    family, args.factory = ("factory", args.model) if ":" in args.model else (args.model, None)
    if family not in model_families():
        raise TightfitError(f"--model {args.model!r} is neither module:function nor one of "
                            f"{', '.join(model_families())}")
    ratio = _ratio(args.flops)
    if ratio is not None:  # --flops 0.5 is a share; --flops 300M stays an absolute constraint
        args.prune_ratio, args.flops = ratio, None
    if args.prune_ratio is None and args.flops is None and args.prune_reward in (None, "err"):
        raise TightfitError("give a budget: --flops 0.5 (share of the FLOPs to keep), --ratio 0.5 --prune-metric "
                            "params, --flops 300M, or an accuracy-guaranteed --prune-reward flops")
    args.weights = str(args.weights.resolve())
    config = options.config_from(args, family)
    result = run(config, args.out, resume=args.resume, progress=not args.no_progress,
                 stages=[PruneStage(), ExportStage()])
    if result is not None and result.card is not None:
        card = result.card
        print(json.dumps({"run_dir": str(result.run_dir), "test_top1": card["accuracy"]["test_top1_onnx"],
                          "flops": card["flops"], "params": card["params"],
                          "latency_ms_p50": card["latency_ms"]["p50"], "pruning": card["pruning"]}, indent=2))
    return 0


def _ratio(text: str | None) -> float | None:
    """`0.5` or `50%` as a share; None for an absolute count such as `300M` (or no value)."""
    if text is None:
        return None
    text = text.strip()
    try:
        value = float(text[:-1]) / 100 if text.endswith("%") else float(text)
    except ValueError:
        return None
    return value if 0 < value <= 1 else None
