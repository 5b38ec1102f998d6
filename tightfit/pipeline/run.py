"""`tightfit run`: build the starting network, pass it through the stages, write the run folder.

Progress is kept in `state.json` after every stage (with the candidate's weights), and training keeps
its own per-epoch checkpoint, so `--resume` continues an interrupted run where it stopped.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import torch

from tightfit.data.loader import Normalize
from tightfit.data.registry import load_dataset
from tightfit.data.split import split_validation
from tightfit.errors import TightfitError
from tightfit.export.weights import load_weights, save_weights
from tightfit.fileio import read_json, write_json
from tightfit.hardware.targets import get_target
from tightfit.models.registry import ModelSpec, build_model
from tightfit.pipeline.card import build_card
from tightfit.pipeline.config import RunConfig
from tightfit.pipeline.rebuild import rebuild_model
from tightfit.pipeline.report import write_report
from tightfit.pipeline.stage_export import ExportStage
from tightfit.pipeline.stage_prune import PruneStage
from tightfit.pipeline.stage_quantize import QuantizeStage
from tightfit.pipeline.stage_search import SearchStage
from tightfit.pipeline.stage_train import TrainStage
from tightfit.pipeline.stages import Candidate, QuantizedArtifacts, RunContext, Stage, StageRecord
from tightfit.train.distributed import DistContext, barrier, broadcast_object, init_distributed, shutdown


@dataclass(frozen=True)
class RunResult:
    run_dir: Path
    card: dict | None  # None when the run stopped before export (`tightfit search`)
    search: dict | None = None  # step 1's record, when it ran


def default_stages(config: RunConfig) -> list[Stage]:
    """Step 1 (search) when the architecture is to be found, training, step 2 (AMC) when a budget asks for
    it, step 3 (HAQ) when asked for, and the deployed artifact. A run that starts from given weights is not
    trained again."""
    stages: list[Stage] = [SearchStage()] if config.model == "search" else []
    if config.weights is None:
        stages.append(TrainStage())
    if config.prune.enabled(config.constraints):
        stages.append(PruneStage())
    if config.quantize.enabled:
        stages.append(QuantizeStage())
    return [*stages, ExportStage()]


def new_run_dir(root: Path = Path("runs")) -> Path:
    return root / time.strftime("%Y%m%d-%H%M%S")


def latest_unfinished(root: Path = Path("runs")) -> Path:
    runs = sorted((p for p in root.glob("*/state.json") if not read_json(p).get("finished")),
                  key=lambda p: p.stat().st_mtime)
    if not runs:
        raise TightfitError(f"no unfinished run under {root}/ to resume; pass --out RUN_DIR of the run to continue")
    return runs[-1].parent


def _read_config(config: RunConfig, run_dir: Path, resume: bool) -> RunConfig:
    """A resumed run continues with the folder's own config; a new run may not overwrite a folder."""
    config_path = run_dir / "config.json"
    if resume:
        if not config_path.exists():
            raise TightfitError(f"{run_dir} holds no run to resume (no config.json); start it without --resume")
        return RunConfig.from_json(read_json(config_path))
    if run_dir.exists() and any(run_dir.iterdir()):
        raise TightfitError(f"run folder {run_dir} already exists and is not empty; pass --resume to continue it "
                            "or --out to choose another folder")
    return config


def _create_run_dir(config: RunConfig, run_dir: Path) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    write_json(run_dir / "config.json", config.to_json())
    write_json(run_dir / "state.json", {"completed": [], "finished": False})


def _spec(config: RunConfig, resolution: int, in_channels: int, num_classes: int) -> ModelSpec:
    return ModelSpec(config.model, resolution, in_channels, num_classes, config.width, config.arch, config.factory)


def _starting_network(spec: ModelSpec, weights: str | None) -> Candidate:
    """The network the stages start from, with the user's weights when given (checked before any folder)."""
    model = build_model(spec)
    if weights is not None:
        load_weights(model, Path(weights))
    return Candidate(model, spec)


def _save_candidate(candidate: Candidate, folder: Path) -> None:
    save_weights(candidate.model, folder / "candidate.safetensors")
    write_json(folder / "candidate.json", candidate.spec.to_json())
    if candidate.quantized is not None:
        write_json(folder / "quantized.json", candidate.quantized.to_json())


def _load_candidate(folder: Path) -> Candidate:
    spec = ModelSpec.from_json(read_json(folder / "candidate.json"))
    quantized = folder / "quantized.json"
    return Candidate(load_weights(rebuild_model(spec), folder / "candidate.safetensors"), spec,
                     QuantizedArtifacts.from_json(read_json(quantized)) if quantized.is_file() else None)


def run(config: RunConfig, run_dir: Path | None = None, *, resume: bool = False, progress: bool = True,
        stages: list[Stage] | None = None) -> RunResult | None:
    """Execute the run; returns the result on rank 0 (None on the other ranks under torchrun).

    `run_dir` None: a new folder under runs/ named after the time (or, with `resume`, the latest
    unfinished one).
    """
    dist = init_distributed()
    try:
        if run_dir is None:
            run_dir = latest_unfinished() if resume else new_run_dir()
        run_dir = Path(str(broadcast_object(str(run_dir), dist)))
        return _run(config, run_dir, resume, progress, stages, dist)
    finally:
        shutdown(dist)


def _run(config: RunConfig, run_dir: Path, resume: bool, progress: bool, stages: list[Stage] | None,
         dist: DistContext) -> RunResult | None:
    config = _read_config(config, run_dir, resume)
    stages = stages or default_stages(config)
    target = get_target(config.target)
    data = load_dataset(config.data, config.resolution)
    torch.manual_seed(config.seed)
    candidate: Candidate | None = None  # the search stage creates it
    if config.model != "search":
        candidate = _starting_network(_spec(config, data.resolution, data.in_channels, data.num_classes),
                                      config.weights)
    if not resume:
        for stage in stages:  # settings a stage cannot work with fail here, before the folder exists
            if hasattr(stage, "check"):
                stage.check(config, target)
    if not resume and dist.is_main:  # bad input has failed by now, before the folder exists
        _create_run_dir(config, run_dir)
    barrier(dist)
    train, val = split_validation(data.train, config.val_fraction, config.seed)
    normalize = Normalize(*data.channel_stats())
    ctx = RunContext(config, data, train, val, normalize, target, run_dir, dist, progress)

    records = [StageRecord.from_json(r) for r in read_json(run_dir / "state.json")["completed"]]
    done = len(records)
    if done:
        if dist.is_main:
            print(f"resuming after stage {done} ({stages[done - 1].name})")
        candidate = _load_candidate(ctx.stage_dir(done, stages[done - 1].name))
    for index, stage in enumerate(stages[done:], start=done + 1):
        workdir = ctx.stage_dir(index, stage.name)
        if dist.is_main:
            print(f"stage {index} ({stage.name})")
        if stage.distributed or dist.is_main:
            candidate, record = stage.run(candidate, ctx, workdir)
        if dist.is_main:
            _save_candidate(candidate, workdir)
            records.append(record)
            write_json(run_dir / "state.json", {"completed": [r.to_json() for r in records], "finished": False})
        barrier(dist)
        if not dist.is_main and not stage.distributed:
            candidate = _load_candidate(workdir)

    if not dist.is_main:
        return None
    by_stage = {r.stage: r.results for r in records}
    card = None
    if "export" in by_stage:
        card = build_card(config, data, normalize, candidate.spec, records)
        write_json(run_dir / "card.json", card)
    if "search" in by_stage:
        write_json(run_dir / "search.json", by_stage["search"])
    write_report(run_dir / "report.html", card, records, candidate.model)
    write_json(run_dir / "state.json", {"completed": [r.to_json() for r in records], "finished": True})
    return RunResult(run_dir, card, by_stage.get("search"))
