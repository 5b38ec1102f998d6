"""How well the ProxylessNAS warm-up trains the supernet on CIFAR-10, with separate or shared candidate weights.

The warm-up (weight steps on random single paths, `ProxylessSearch` with no search epochs) is run three
ways from the same seed: `separate` (the paper's supernet, each candidate its own weights), `shared`
(`Supernet(shared_weights=True)`: each position's candidates are slices of one block) and `fixed-largest`
(separate weights, alpha pinned so that every step samples the largest candidate: one plain network, the
ceiling a random path could reach in the same steps). Reported: the training accuracy of each epoch's
sampled paths, as the search's own history records it.

    python bench/nas_supernet_training.py [--train-images 10000] [--epochs 2]
"""

from __future__ import annotations

import argparse
import time

import torch
from _cifar import load_cifar
from _common import write_result

from tightfit.hardware import CostModel, get_target
from tightfit.methods.search.costs import space_costs
from tightfit.methods.search.proxyless import ProxylessSearch, SearchConfig
from tightfit.methods.search.supernet import Supernet
from tightfit.space import SearchSpace

VARIANTS = ("separate", "shared", "fixed-largest")


def pin_largest(net: Supernet) -> None:
    """alpha so large on each position's largest candidate that sampling never picks another."""
    with torch.no_grad():
        for op in net.mixed:
            largest = max((i for i, b in enumerate(op.choices) if b is not None),
                          key=lambda i: (op.choices[i].expand, op.choices[i].kernel))
            op.alpha.fill_(-50.0)
            op.alpha[largest] = 50.0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--train-images", type=int, default=10000)
    p.add_argument("--val-images", type=int, default=2500)
    p.add_argument("--space-width", type=float, default=0.5)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--lr", type=float, default=SearchConfig.lr)
    p.add_argument("--variants", default=",".join(VARIANTS))
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    data = load_cifar(args.train_images, args.val_images, args.seed)
    space = SearchSpace(32, 3, 10, width_mult=args.space_width)
    costs = space_costs(CostModel(get_target("bitfusion")), space)  # unused by a warm-up; the search needs one
    rows = []
    for variant in args.variants.split(","):
        started = time.perf_counter()
        shared = variant == "shared"
        torch.manual_seed(args.seed)
        net = Supernet(space, shared_weights=shared).to(memory_format=torch.channels_last)
        if variant == "fixed-largest":
            pin_largest(net)
        config = SearchConfig(warmup_epochs=args.epochs, epochs=0, lr=args.lr, shared_weights=shared,
                              seed=args.seed)
        loaders = (data.loader("train", config.batch_size, shuffle=True, seed=args.seed),
                   data.loader("val", config.batch_size, shuffle=True, seed=args.seed + 1))
        result = ProxylessSearch(net, costs, config, *loaders, log=print).run()
        rows.append({"variant": variant, "parameters": sum(t.numel() for t in net.weights()),
                     "train_acc": [h.train_acc for h in result.history],
                     "train_loss": [h.train_loss for h in result.history],
                     "seconds": time.perf_counter() - started})
        print(rows[-1])
    summary = {"final_train_acc": {r["variant"]: r["train_acc"][-1] for r in rows}}
    protocol = {**vars(args), "what": "training accuracy of the random single paths of each warm-up epoch "
                "(residual branches zero-initialised, the library's default)"}
    print(write_result("nas_supernet_training", protocol, summary, rows))


if __name__ == "__main__":
    main()
