"""Run by tests/test_ddp.py under torchrun: trains on digits with DDP and saves this rank's result."""

import json
import sys
from pathlib import Path

import torch
from safetensors.torch import save_file

from tightfit.data import BatchLoader, Normalize, load_dataset, split_validation
from tightfit.models import ModelSpec, build_model
from tightfit.train import TrainConfig, Trainer, init_distributed, shutdown


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
    main(Path(sys.argv[1]))
