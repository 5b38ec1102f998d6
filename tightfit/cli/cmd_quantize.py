"""`tightfit quantize`: step 3 alone, HAQ on a model the user already has; writes a run folder."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from tightfit.cli import options
from tightfit.errors import TightfitError
from tightfit.models.registry import model_families
from tightfit.pipeline import run
from tightfit.pipeline.stage_export import ExportStage
from tightfit.pipeline.stage_quantize import QuantizeStage


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("quantize", help="quantize a trained model with mixed precision (HAQ), fine-tune, export "
                                        "and measure it",
                       description="Mixed-precision quantization of your own CNN: --model module:function builds it "
                                   "(no arguments), --weights loads it. Example: tightfit quantize --model mynets:net "
                                   "--weights w.safetensors --target bitfusion --latency 0.5ms")
    p.add_argument("--model", required=True, help=f"module:function returning the model, or a tightfit family "
                                                  f"({', '.join(model_families())})")
    p.add_argument("--weights", required=True, type=Path, help="the trained weights, a safetensors state_dict")
    p.add_argument("--arch", help="architecture string, for --model arch")
    options.add_task(p)
    options.add_quantize(p, flag=None)
    options.add_training(p)
    options.add_run_folder(p)
    p.set_defaults(func=main, quantize=True)


def main(args: argparse.Namespace) -> int:
    family, args.factory = ("factory", args.model) if ":" in args.model else (args.model, None)
    if family not in model_families():
        raise TightfitError(f"--model {args.model!r} is neither module:function nor one of "
                            f"{', '.join(model_families())}")
    if not args.weights.is_file():
        raise TightfitError(f"--weights {args.weights} does not exist; give the trained model's safetensors file")
    args.weights = str(args.weights.resolve())
    config = options.config_from(args, family)
    result = run(config, args.out, resume=args.resume, progress=not args.no_progress,
                 stages=[QuantizeStage(), ExportStage()])
    if result is not None and result.card is not None:
        card = result.card
        q = card["quantization"]
        print(json.dumps({"run_dir": str(result.run_dir), "test_top1": card["accuracy"]["test_top1_onnx"],
                          "latency_ms_p50": card["latency_ms"]["p50"], "size_bytes": card["size_bytes"]["model"],
                          "budget": q["budget"], "cost": q["cost"], "unit": q["unit"],
                          "average_weight_bits": q["average_weight_bits"]}, indent=2))
    return 0
