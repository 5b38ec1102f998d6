"""Stage (step 1): ProxylessNAS searches the architecture on the run's data and target.

The latency target is the run's `--latency` (or, without one, `--energy` on the target's energy model);
with neither, the search trades accuracy against the supernet's initial expected latency. The derived
network goes on to the train stage, from scratch or (`--inherit-weights`) from the supernet's weights.
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import torch

from tightfit.data.loader import BatchLoader
from tightfit.errors import TightfitError
from tightfit.hardware.cost import CostModel
from tightfit.methods.search.costs import space_costs
from tightfit.methods.search.proxyless import ProxylessSearch
from tightfit.methods.search.supernet import Supernet
from tightfit.models.registry import ModelSpec
from tightfit.pipeline.constraints import Constraints
from tightfit.pipeline.stages import Candidate, RunContext, StageRecord
from tightfit.space.space import SearchSpace
from tightfit.train.distributed import barrier, broadcast_object


def search_objective(constraints: Constraints) -> tuple[str, float | None]:
    """(metric, target T) for the search: the latency bound, else the energy bound, else latency untargeted."""
    if constraints.latency_ms is not None:
        return "latency", constraints.latency_ms
    if constraints.energy_mj is not None:
        return "energy", constraints.energy_mj
    return "latency", None


class SearchStage:
    name = "search"
    distributed = True

    def run(self, candidate: Candidate | None, ctx: RunContext, workdir: Path) -> tuple[Candidate, StageRecord]:
        cfg, d = ctx.config, ctx.dist
        start = time.perf_counter()
        space = SearchSpace(ctx.data.resolution, ctx.data.in_channels, ctx.data.num_classes, width_mult=cfg.width)
        metric, target = search_objective(cfg.constraints)
        costs = None
        if d.is_main:  # one process measures the table entries it lacks; the others wait for the result
            costs = space_costs(CostModel(ctx.target, progress=ctx.progress), space, metric)
        barrier(d)
        costs = broadcast_object(costs, d)
        if target is not None and costs.cheapest() > target:
            option = "--latency" if metric == "latency" else "--energy"
            raise TightfitError(
                f"{option} {target:g} {costs.unit} cannot be met on {ctx.target.name}: the cheapest network of "
                f"the search space is predicted at {costs.cheapest():.4g} {costs.unit}; raise {option} or lower "
                "--width")
        config = replace(cfg.search, target=target, seed=cfg.seed)
        channels_last = cfg.train.channels_last
        train = BatchLoader(ctx.train, config.batch_size, ctx.normalize, augment=ctx.data.augment, shuffle=True,
                            seed=cfg.seed, rank=d.rank, world_size=d.world_size, channels_last=channels_last)
        val = BatchLoader(ctx.val, config.batch_size, ctx.normalize, shuffle=True, seed=cfg.seed + 1, rank=d.rank,
                          world_size=d.world_size, channels_last=channels_last)
        torch.manual_seed(cfg.seed)  # identical supernet on every rank
        net = Supernet(space, shared_weights=config.shared_weights)
        if channels_last:
            net = net.to(memory_format=torch.channels_last)
        search = ProxylessSearch(net, costs, config, train, val, ctx=d, checkpoint=workdir / "search.pt",
                                 progress=ctx.progress, log=print)
        if search.start_epoch and d.is_main:
            print(f"resuming the search at epoch {search.start_epoch + 1} from {workdir / 'search.pt'}")
        result = search.run()
        model = net.cpu().to(memory_format=torch.contiguous_format).derived_network(result.arch, config.inherit)
        spec = ModelSpec("arch", ctx.data.resolution, ctx.data.in_channels, ctx.data.num_classes, cfg.width,
                         str(result.arch))
        record = StageRecord(self.name, time.perf_counter() - start, {
            **result.to_json(), "metric": metric, "unit": costs.unit, "target": target,
            "argmax_met_target": None if target is None else result.argmax_cost <= target,
            "candidates": [[str(b) if b is not None else "zero" for b in op.choices] for op in net.mixed],
            "fixed_cost": costs.fixed, "config": config.to_json(), "processes": d.world_size,
        })
        return Candidate(model, spec), record
