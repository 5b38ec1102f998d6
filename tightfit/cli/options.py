"""Option groups that `tightfit run` and `tightfit search` share, and how they become a RunConfig."""

from __future__ import annotations

import argparse
from pathlib import Path

from tightfit.errors import TightfitError
from tightfit.hardware.targets import target_names
from tightfit.methods.search.proxyless import LOSSES
from tightfit.pipeline import constraints_from_text, resolve
from tightfit.pipeline.config import RunConfig
from tightfit.train.config import SCHEDULES


def add_task(p: argparse.ArgumentParser) -> None:
    """Data, target and constraints: what the model is for."""
    p.add_argument("--data", default="digits", help="digits (default), imagefolder:PATH or cifar10:PATH")
    p.add_argument("--resolution", type=int, help="input resolution in pixels (default: the data set's own)")
    p.add_argument("--width", type=float, help="width multiplier (default: 0.35 on digits, else 1.0)")
    p.add_argument("--target", default=RunConfig.target,
                   help=f"where the model will run: {', '.join(target_names())}, or path/to/accel.yaml")
    g = p.add_argument_group("constraints (checked on the target and reported in card.json)")
    g.add_argument("--latency", help="p50 latency bound, e.g. 3ms (also the search's latency target)")
    g.add_argument("--energy", help="energy bound per inference, e.g. 2mJ")
    g.add_argument("--size", help="model size bound, e.g. 1.5MB")
    g.add_argument("--memory", help="peak activation memory bound, e.g. 512kB")
    g.add_argument("--flops", help="FLOPs bound, e.g. 300M")
    g.add_argument("--bitops", help="BitOPs bound, e.g. 50G")


def add_training(p: argparse.ArgumentParser) -> None:
    t = p.add_argument_group("training (defaults depend on the data set)")
    t.add_argument("--epochs", type=int)
    t.add_argument("--batch-size", type=int)
    t.add_argument("--lr", type=float)
    t.add_argument("--schedule", choices=SCHEDULES)
    t.add_argument("--label-smoothing", type=float)
    t.add_argument("--no-channels-last", dest="channels_last", action="store_const", const=False,
                   help="keep NCHW memory layout (channels_last is faster on the CPU)")


def add_search(p: argparse.ArgumentParser) -> None:
    s = p.add_argument_group("search (step 1, ProxylessNAS; the latency target is --latency, else --energy)")
    s.add_argument("--search-epochs", type=int, help="search epochs after the warm-up")
    s.add_argument("--search-warmup", type=int, help="weight-only warm-up epochs on random single paths")
    s.add_argument("--search-loss", choices=LOSSES, help="latency term: 'mul' CE*a*(log E/log T)^b (released "
                                                        "code, default) or 'add' CE + lambda*E/T")
    s.add_argument("--arch-lr", type=float, help="Adam learning rate of the architecture parameters")
    s.add_argument("--inherit-weights", action="store_const", const=True,
                   help="retrain the derived network from the supernet's weights instead of from scratch")


def add_run_folder(p: argparse.ArgumentParser) -> None:
    p.add_argument("--val-fraction", type=float, help="share of the training set held out for validation")
    p.add_argument("--seed", type=int)
    p.add_argument("--out", type=Path, help="run folder (default runs/<date>-<time>)")
    p.add_argument("--resume", action="store_true", help="continue an interrupted run (the --out folder, or "
                                                          "the latest unfinished one under runs/)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


def config_from(args: argparse.Namespace, model: str) -> RunConfig:
    """The resolved configuration; with --resume, notes that the folder's own config wins."""
    constraints = constraints_from_text(args.latency, args.energy, args.size, args.memory, args.flops, args.bitops)
    train = {k: getattr(args, k, None) for k in ("epochs", "batch_size", "lr", "schedule", "label_smoothing",
                                                  "channels_last")}
    search = {"epochs": args.search_epochs, "warmup_epochs": args.search_warmup, "loss": args.search_loss,
              "arch_lr": args.arch_lr, "inherit": args.inherit_weights}
    try:
        config = resolve(args.data, args.width, {**train, "seed": args.seed}, search, resolution=args.resolution,
                         model=model, arch=getattr(args, "arch", None), target=args.target, constraints=constraints,
                         val_fraction=args.val_fraction, seed=args.seed)
    except ValueError as err:  # TrainConfig's own checks
        raise TightfitError(f"training options: {err}") from None
    if args.resume and any(v is not None for v in (*train.values(), *search.values())):
        print("note: --resume continues with the run folder's own config.json; training and search options are "
              "ignored")
    return config
