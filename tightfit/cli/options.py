"""Option groups that `tightfit run`, `search`, `prune` and `quantize` share, and how they become a RunConfig."""

from __future__ import annotations

import argparse
from pathlib import Path

from tightfit.errors import TightfitError
from tightfit.hardware.targets import target_names
from tightfit.methods.prune.amc import PROTOCOLS
from tightfit.methods.search.proxyless import LOSSES
from tightfit.pipeline import constraints_from_text, resolve
from tightfit.pipeline.config import BUDGET_METRICS, RunConfig
from tightfit.pipeline.constraints import Constraints
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
    s.add_argument("--shared-weights", action="store_const", const=True,
                   help="a block position's candidates share one set of weights (the smaller ones are slices "
                        "of the largest), so that a short warm-up trains all of them; the paper's are separate")


def add_prune(p: argparse.ArgumentParser, flag: str = "--prune") -> None:
    g = p.add_argument_group("pruning (step 2, AMC; also runs when a --flops constraint is over budget)")
    g.add_argument(flag, dest="prune_ratio", type=float, metavar="RATIO",
                   help="keep this share of the FLOPs (or of the parameters, --prune-metric params), e.g. 0.5")
    g.add_argument("--prune-mode", choices=("channels", "weights"),
                   help="'channels' (default): remove channels, really smaller and faster; 'weights': fine-grained "
                        "per-layer sparsity for model size (budget on non-zero weights)")
    g.add_argument("--prune-metric", choices=("flops", "params", "latency"),
                   help="what the budget bounds (default flops; latency: predicted on --target per layer)")
    g.add_argument("--prune-reward", choices=PROTOCOLS, help="'err' (default, with a budget), or accuracy-"
                                                             "guaranteed 'flops' / 'params' (R = -error x log)")
    g.add_argument("--amc-episodes", type=int, help="DDPG episodes (default 300, 120 on digits)")
    g.add_argument("--amc-warmup", type=int, help="episodes of random actions first (default 100, 40 on digits)")
    g.add_argument("--reconstruct", action="store_const", const=True,
                   help="re-fit pruned layers by least squares during the search (He et al.)")
    g.add_argument("--finetune-epochs", type=int, help="fine-tuning after pruning (default 10, 5 on digits)")
    g.add_argument("--channel-multiple", type=int, help="round kept channels to this multiple (default 8)")


def add_quantize(p: argparse.ArgumentParser, flag: str | None = "--quantize") -> None:
    """Step 3's budget is --latency or --energy (the constraints above), --size-bits, or --budget-uniform."""
    g = p.add_argument_group("quantization (step 3, HAQ; the budget is --latency, else --energy, or one below)")
    if flag:
        g.add_argument(flag, dest="quantize", action="store_true",
                       help="quantize with mixed precision: bits per layer on bitfusion / accel.yaml, int8 or fp32 "
                            "per operator on cpu-ort")
    g.add_argument("--size-bits", type=float, metavar="BITS",
                   help="size budget: the k-means size of BITS bits per weight on average, e.g. 3")
    g.add_argument("--budget-uniform", metavar="wWaA", help="the budget is what this uniform policy costs, e.g. w4a4 "
                                                             "(on cpu-ort: w8a8)")
    g.add_argument("--quantize-metric", choices=BUDGET_METRICS, help="what --budget-uniform prices (default latency)")
    g.add_argument("--haq-episodes", type=int, help="DDPG episodes (default 300, 60 on digits)")
    g.add_argument("--haq-warmup", type=int, help="episodes of random actions first (default 100, 20 on digits)")
    g.add_argument("--reward-steps", type=int, help="fine-tuning steps before each episode's accuracy (default 50, "
                                                    "20 on digits; none on cpu-ort, whose reward is the int8 ONNX "
                                                    "model as ONNX Runtime runs it)")
    g.add_argument("--reward-lr", type=float, help="learning rate of those steps (default 0.01, 0.005 on digits)")
    g.add_argument("--quantize-epochs", type=int, help="straight-through fine-tuning of the chosen policy (default "
                                                       "5, 2 on digits)")
    g.add_argument("--b-min", type=int, help="fewest bits per weight or activation (default 2)")
    g.add_argument("--b-max", type=int, help="most bits (default 8)")
    g.add_argument("--keep-ends", action=argparse.BooleanOptionalAction,
                   help="bitfusion / accel.yaml: first and last layer at --b-max bits, as HAQ's released code "
                        "(default); --no-keep-ends leaves them to the agent")


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
    search = {k: getattr(args, a, None) for k, a in (("epochs", "search_epochs"), ("warmup_epochs", "search_warmup"),
                                                     ("loss", "search_loss"), ("arch_lr", "arch_lr"),
                                                     ("inherit", "inherit_weights"),
                                                     ("shared_weights", "shared_weights"))}
    prune = {k: getattr(args, a, None) for k, a in (
        ("ratio", "prune_ratio"), ("mode", "prune_mode"), ("metric", "prune_metric"), ("reward", "prune_reward"),
        ("episodes", "amc_episodes"),
        ("warmup_episodes", "amc_warmup"), ("reconstruct", "reconstruct"), ("finetune_epochs", "finetune_epochs"),
        ("multiple", "channel_multiple"))}
    quantize = _quantize_options(args, constraints)
    try:
        config = resolve(args.data, args.width, {**train, "seed": args.seed}, search, prune, quantize,
                         resolution=args.resolution, model=model, arch=getattr(args, "arch", None),
                         factory=getattr(args, "factory", None), weights=getattr(args, "weights", None),
                         target=args.target, constraints=constraints, val_fraction=args.val_fraction, seed=args.seed)
    except ValueError as err:  # TrainConfig's own checks
        raise TightfitError(f"training options: {err}") from None
    if args.resume and any(v not in (None, False) for v in (*train.values(), *search.values(), *prune.values(),
                                                             *quantize.values())):
        print("note: --resume continues with the run folder's own config.json; the method options given are ignored")
    return config


def _quantize_options(args: argparse.Namespace, constraints: Constraints) -> dict:
    """Step 3's settings; its budget, when it runs, is --size-bits, --budget-uniform, else --latency or --energy."""
    tuning = {k: getattr(args, a, None) for k, a in (
        ("episodes", "haq_episodes"), ("warmup_episodes", "haq_warmup"), ("reward_steps", "reward_steps"),
        ("reward_lr", "reward_lr"), ("finetune_epochs", "quantize_epochs"), ("b_min", "b_min"), ("b_max", "b_max"),
        ("keep_ends", "keep_ends"))}
    size_bits, uniform = getattr(args, "size_bits", None), getattr(args, "budget_uniform", None)
    if not getattr(args, "quantize", False):
        if size_bits is not None or uniform is not None:
            raise TightfitError("--size-bits and --budget-uniform are budgets of step 3; add --quantize to run it")
        return tuning
    if size_bits is not None and uniform is not None:
        raise TightfitError("give one quantization budget: --size-bits or --budget-uniform, not both")
    if size_bits is not None:
        budget = {"metric": "size", "value": size_bits}
    elif uniform is not None:
        budget = {"metric": args.quantize_metric or "latency", "uniform": uniform}
    elif constraints.latency_ms is not None:
        budget = {"metric": "latency", "value": constraints.latency_ms}
    elif constraints.energy_mj is not None:
        budget = {"metric": "energy", "value": constraints.energy_mj}
    else:
        raise TightfitError("quantization needs a budget: --latency 0.5ms, --energy 2mJ, --size-bits 3 or "
                            "--budget-uniform w4a4")
    return {**tuning, **budget, "enabled": True}
