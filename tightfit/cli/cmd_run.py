"""`tightfit run`: from a data set, a target and constraints to a deployed, measured model."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from tightfit.errors import TightfitError
from tightfit.hardware.targets import target_names
from tightfit.models.registry import model_families
from tightfit.pipeline import constraints_from_text, resolve, run
from tightfit.pipeline.config import RunConfig
from tightfit.train.config import SCHEDULES


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="train, export and measure a model for a target; writes a run folder",
                       description="Run the pipeline. Under torchrun, training uses every process (DDP).")
    p.add_argument("--data", default="digits", help="digits (default), imagefolder:PATH or cifar10:PATH")
    p.add_argument("--resolution", type=int, help="input resolution in pixels (default: the data set's own)")
    p.add_argument("--model", default=RunConfig.model, choices=model_families(),
                   help="network family (default %(default)s); 'arch' takes --arch")
    p.add_argument("--arch", help="an architecture of the search space, e.g. k3e6-skip-...; implies --model arch")
    p.add_argument("--width", type=float, help="width multiplier (default: 0.35 on digits, else 1.0)")
    p.add_argument("--target", default=RunConfig.target,
                   help=f"where the model will run: {', '.join(target_names())}, or path/to/accel.yaml")
    g = p.add_argument_group("constraints (checked on the target and reported in card.json)")
    g.add_argument("--latency", help="p50 latency bound, e.g. 3ms")
    g.add_argument("--energy", help="energy bound per inference, e.g. 2mJ")
    g.add_argument("--size", help="model size bound, e.g. 1.5MB")
    g.add_argument("--memory", help="peak activation memory bound, e.g. 512kB")
    g.add_argument("--flops", help="FLOPs bound, e.g. 300M")
    g.add_argument("--bitops", help="BitOPs bound, e.g. 50G")
    t = p.add_argument_group("training (defaults depend on the data set)")
    t.add_argument("--epochs", type=int)
    t.add_argument("--batch-size", type=int)
    t.add_argument("--lr", type=float)
    t.add_argument("--schedule", choices=SCHEDULES)
    t.add_argument("--label-smoothing", type=float)
    t.add_argument("--no-channels-last", dest="channels_last", action="store_const", const=False,
                   help="keep NCHW memory layout (channels_last is faster on the CPU)")
    p.add_argument("--val-fraction", type=float, help="share of the training set held out for validation")
    p.add_argument("--seed", type=int)
    p.add_argument("--out", type=Path, help="run folder (default runs/<date>-<time>)")
    p.add_argument("--resume", action="store_true", help="continue an interrupted run (the --out folder, or "
                                                          "the latest unfinished one under runs/)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    model = "arch" if args.arch else args.model
    constraints = constraints_from_text(args.latency, args.energy, args.size, args.memory, args.flops, args.bitops)
    train = {"epochs": args.epochs, "batch_size": args.batch_size, "lr": args.lr, "schedule": args.schedule,
             "label_smoothing": args.label_smoothing, "channels_last": args.channels_last, "seed": args.seed}
    try:
        config = resolve(args.data, args.width, train, resolution=args.resolution, model=model, arch=args.arch,
                         target=args.target, constraints=constraints, val_fraction=args.val_fraction,
                         seed=args.seed)
    except ValueError as err:  # TrainConfig's own checks
        raise TightfitError(f"training options: {err}") from None
    if args.resume and any(v is not None for v in train.values()):
        print("note: --resume continues with the run folder's own config.json; training options are ignored")
    result = run(config, args.out, resume=args.resume, progress=not args.no_progress)
    if result is not None:
        card = result.card
        print(json.dumps({"run_dir": str(result.run_dir), "test_top1": card["accuracy"]["test_top1_onnx"],
                          "latency_ms_p50": card["latency_ms"]["p50"], "size_bytes": card["size_bytes"]["onnx"],
                          "parity_max_abs_diff": card["parity_max_abs_diff"],
                          "constraints_met": card["all_constraints_met"]}, indent=2))
    return 0

