"""Shared by the CIFAR-10 bench scripts: the data (../shared/data, unpacked once), subsets, training, timing."""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import torch
from _common import timing_lock
from torch import nn

from tightfit.data import Augment, BatchLoader, Normalize, TensorSet, load_dataset, stratified_split
from tightfit.export.weights import load_weights, save_weights
from tightfit.hardware.latency import interleaved_latency
from tightfit.hardware.runtime_torch import keep_torch_threads
from tightfit.hardware.targets import Target
from tightfit.models import ModelSpec, build_model
from tightfit.train import TrainConfig, Trainer, evaluate

CIFAR = Path(os.environ.get("TIGHTFIT_CIFAR", Path.home() / ".cache" / "tightfit" / "cifar10"))


@dataclass
class Cifar:
    train: TensorSet
    val: TensorSet
    test: TensorSet
    normalize: Normalize
    augment: Augment
    holdout: TensorSet | None = None  # training images in neither subset, for choices that val is too small for

    def loader(self, split: str, batch_size: int, shuffle: bool = False, seed: int = 0) -> BatchLoader:
        augment = self.augment if split == "train" else None
        return self.loader_of(getattr(self, split), batch_size, shuffle, seed, augment)

    def loader_of(self, data: TensorSet, batch_size: int, shuffle: bool = False, seed: int = 0,
                  augment: Augment | None = None) -> BatchLoader:
        return BatchLoader(data, batch_size, self.normalize, augment=augment, shuffle=shuffle, seed=seed,
                           channels_last=True)


def load_cifar(train_images: int, val_images: int, seed: int = 0, holdout_images: int = 0) -> Cifar:
    """A seeded, class-stratified subset: `train_images` for weights, `val_images` (disjoint, also from the
    training set) for architecture steps and model selection; the whole test set for the final figures. With
    `holdout_images`, a third disjoint subset of the training images left over; train and val do not change."""
    if not (CIFAR / "train").is_dir():
        sys.exit(f"CIFAR-10 is not unpacked at {CIFAR}: mkdir -p {CIFAR} && tar -xzf "
                 f"../shared/data/cifar10-jpeg.tar.gz -C {CIFAR}  (or set TIGHTFIT_CIFAR)")
    bundle = load_dataset(f"imagefolder:{CIFAR}")
    total = len(bundle.train)
    rest, val_idx = stratified_split(bundle.train.y, val_images / total, seed)
    remaining = bundle.train.subset(rest)
    unused, train_idx = stratified_split(remaining.y, min(1.0 - 1e-9, train_images / len(remaining)), seed + 1)
    holdout = None
    if holdout_images:
        left = remaining.subset(unused)
        _, holdout_idx = stratified_split(left.y, min(1.0, holdout_images / len(left)), seed + 2)
        holdout = left.subset(holdout_idx)
    return Cifar(remaining.subset(train_idx), bundle.train.subset(val_idx), bundle.test,
                 Normalize(*bundle.channel_stats()), bundle.augment, holdout)


def train_and_test(model: nn.Module, data: Cifar, config: TrainConfig, log: bool = True) -> dict:
    """Train on the subset, then top-1 on the validation subset and on the whole test set."""
    loader = data.loader("train", config.batch_size, shuffle=True, seed=config.seed)
    history = Trainer(model, config, loader, progress=False, log=print if log else None).fit()
    model = model.cpu().to(memory_format=torch.contiguous_format)
    return {"val_acc": evaluate(model, data.loader("val", 500))[1],
            "test_acc": evaluate(model, data.loader("test", 500))[1],
            "train_seconds": sum(e.seconds for e in history.epochs),
            "final_train_loss": history.epochs[-1].train_loss}


def add_reference_options(parser: argparse.ArgumentParser) -> None:
    """The subset and epochs of the reference network that amc_cifar, haq_cifar and int8_accuracy share."""
    parser.add_argument("--train-images", type=int, default=10000)
    parser.add_argument("--val-images", type=int, default=1000)
    parser.add_argument("--train-epochs", type=int, default=10)


def reference_recipe(epochs: int, seed: int) -> TrainConfig:
    """How the shared reference is trained; one place, since the cache key includes it."""
    return TrainConfig(epochs=epochs, batch_size=128, lr=0.1, warmup_epochs=1.0, seed=seed)


def trained_reference(spec: ModelSpec, data: Cifar, config: TrainConfig) -> tuple[nn.Module, dict]:
    """The model of `spec` (seeded by config.seed) through `train_and_test`, cached: benches that share a
    reference network (same model, subset sizes and recipe; the subset's seed is config.seed) train it once.
    The cache lives beside the unpacked data; delete it to retrain."""
    torch.manual_seed(config.seed)
    model = build_model(spec)
    key = {"model": spec.to_json(), "train_images": len(data.train), "val_images": len(data.val),
           "train": config.to_json()}
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    folder = CIFAR.parent / "bench-models"
    weights, scores = folder / f"{digest}.safetensors", folder / f"{digest}.json"
    if weights.is_file() and scores.is_file():
        load_weights(model, weights)
        print(f"reference loaded from {weights} (delete it to retrain)")
        return model, {**json.loads(scores.read_text()), "cached": True}
    result = train_and_test(model, data, config)
    weights.parent.mkdir(parents=True, exist_ok=True)
    save_weights(model, weights)
    scores.write_text(json.dumps(result))
    return model, result


def measure_ms(target: Target, models: list[nn.Module], shape: tuple[int, int, int] = (3, 32, 32)) -> list[float]:
    """End-to-end latency of each model on a measured target, all timed together with the table's estimator."""
    runtime = target.runtime()
    return timed_together([runtime.prepare(m.cpu().eval(), shape) for m in models])


def timed_together(fns: list) -> list[float]:
    """Prepared runners timed interleaved with the table's estimator, never while another bench times."""
    with keep_torch_threads(), timing_lock():
        return interleaved_latency(fns)
