"""Run by tests/test_ddp.py under torchrun: trains (or searches) on digits and saves this rank's result."""

import json
import sys
from pathlib import Path

import torch
from safetensors.torch import save_file

from tightfit.data import BatchLoader, Normalize, load_dataset, split_validation
from tightfit.models import ModelSpec, build_model
from tightfit.train import TrainConfig, Trainer, init_distributed, shutdown


def search(out: Path) -> None:
    """A short ProxylessNAS search: every rank samples the same paths and averages the same gradients."""
    from tightfit.hardware import CostModel, get_target
    from tightfit.methods.search.costs import space_costs
    from tightfit.methods.search.proxyless import ProxylessSearch, SearchConfig
    from tightfit.methods.search.supernet import Supernet
    from tightfit.space import SearchSpace

    ctx = init_distributed()
    data = load_dataset("digits")
    train, val = split_validation(data.train, 0.1, 0)
    norm = Normalize(*data.channel_stats())
    space = SearchSpace(8, 1, 10, width_mult=0.35)
    costs = space_costs(CostModel(get_target("bitfusion")), space)
    loaders = [BatchLoader(split, 32, norm, shuffle=True, seed=i, rank=ctx.rank, world_size=ctx.world_size)
               for i, split in enumerate((train, val))]
    torch.manual_seed(0)
    net = Supernet(space)
    config = SearchConfig(warmup_epochs=1, epochs=1, arch_every=2, arch_lr=0.05)
    result = ProxylessSearch(net, costs, config, *loaders, ctx=ctx, progress=False).run()
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(out / f"search{ctx.rank}.safetensors"))
    (out / f"search{ctx.rank}.json").write_text(json.dumps(result.to_json()))
    shutdown(ctx)


def main(out: Path) -> None:
    ctx = init_distributed()
    torch.manual_seed(ctx.rank)  # different initial weights per rank: DDP must make them agree
    data = load_dataset("digits")
    train, val = split_validation(data.train, 0.1, 0)
    norm = Normalize(*data.channel_stats())
    cfg = TrainConfig(epochs=3, batch_size=32, lr=0.05, warmup_epochs=0.5)
    loader = BatchLoader(train, cfg.batch_size, norm, augment=data.augment, shuffle=True, rank=ctx.rank,
                         world_size=ctx.world_size, channels_last=True)
    evaluator = BatchLoader(val, 256, norm, rank=ctx.rank, world_size=ctx.world_size)
    model = build_model(ModelSpec("resnet20", 8, 1, 10, 0.5))
    history = Trainer(model, cfg, loader, evaluator, ctx=ctx, progress=False).fit()
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(out / f"rank{ctx.rank}.safetensors"))
    (out / f"rank{ctx.rank}.json").write_text(json.dumps({"world_size": ctx.world_size,
                                                           "batches": len(loader), "history": history.to_json()}))
    shutdown(ctx)


if __name__ == "__main__":
    (search if sys.argv[2:] == ["search"] else main)(Path(sys.argv[1]))
