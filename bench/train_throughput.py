"""Training throughput of tightfit's trainer against a minimal plain-PyTorch loop (same model, same data).

MobileNetV2-w0.5 at 32x32, batch 128. Both consume identical batches from the same loader (augmentation
and normalisation included) and the same optimizer settings, so the ratio isolates what the trainer adds:
its schedule, metrics, progress bar and bookkeeping. Epochs alternate between the two to share the
machine's noise; the medians are reported.

    python bench/train_throughput.py [--images 2560] [--repeats 5]
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time

import torch
from _common import write_result
from torch.nn import functional as F

from tightfit.data import Augment, BatchLoader, Normalize, TensorSet
from tightfit.models import ModelSpec, build_model
from tightfit.train import TrainConfig, Trainer


def plain_epoch(model: torch.nn.Module, optimizer: torch.optim.Optimizer, loader: BatchLoader) -> None:
    model.train()
    for x, y in loader:
        loss = F.cross_entropy(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=2560)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=128)
    args = parser.parse_args()

    gen = torch.Generator().manual_seed(0)
    data = TensorSet(torch.randint(0, 256, (args.images, 3, 32, 32), dtype=torch.uint8, generator=gen),
                     torch.randint(0, 10, (args.images,), generator=gen))
    config = TrainConfig(epochs=args.repeats + 1, batch_size=args.batch_size, lr=0.05)
    loader = BatchLoader(data, config.batch_size, Normalize((0.5,) * 3, (0.25,) * 3), augment=Augment(4, True),
                         shuffle=True, channels_last=config.channels_last)

    torch.manual_seed(0)
    model = build_model(ModelSpec("mobilenetv2", 32, 3, 10, 0.5))
    plain_model = copy.deepcopy(model).to(memory_format=torch.channels_last)
    trainer = Trainer(model, config, loader, progress=True)
    optimizer = torch.optim.SGD(plain_model.parameters(), lr=config.lr, momentum=config.momentum, nesterov=True,
                                weight_decay=config.weight_decay)

    def timed(fn, epoch: int) -> float:
        loader.set_epoch(epoch)
        start = time.perf_counter()
        fn()
        return time.perf_counter() - start

    rows = []
    for epoch in range(args.repeats + 1):  # epoch 0 warms up both and is not reported
        # ABBA order: which loop runs first alternates, so drifts in machine load cancel
        if epoch % 2 == 0:
            tightfit_s = timed(lambda: trainer.train_epoch(epoch), epoch)  # noqa: B023
            plain_s = timed(lambda: plain_epoch(plain_model, optimizer, loader), epoch)
        else:
            plain_s = timed(lambda: plain_epoch(plain_model, optimizer, loader), epoch)
            tightfit_s = timed(lambda: trainer.train_epoch(epoch), epoch)  # noqa: B023
        if epoch:
            rows.append({"epoch": epoch, "tightfit_img_s": args.images / tightfit_s,
                         "plain_img_s": args.images / plain_s})
            print(rows[-1])

    tf = statistics.median(r["tightfit_img_s"] for r in rows)
    plain = statistics.median(r["plain_img_s"] for r in rows)
    per_epoch_ratio = statistics.median(r["tightfit_img_s"] / r["plain_img_s"] for r in rows)
    summary = {"tightfit_img_s": tf, "plain_img_s": plain, "ratio": tf / plain,
               "median_of_per_epoch_ratios": per_epoch_ratio}
    protocol = {"model": "mobilenetv2 width 0.5", "resolution": 32, "batch_size": args.batch_size,
                "images_per_epoch": args.images, "timed_epochs_each": args.repeats, "warmup_epochs": 1,
                "data": "synthetic uint8 images, random crop (pad 4) + flip, normalised, channels_last",
                "optimizer": "SGD nesterov momentum 0.9, weight decay 5e-4 (both loops)",
                "order": "tightfit and plain epochs interleaved, first-runner alternating (ABBA); medians reported"}
    print(write_result(__file__, protocol, summary, rows))
    print(summary)


if __name__ == "__main__":
    main()
