"""The run as a sequence of stages. A stage takes a candidate (model plus what describes it), the
target and the constraints, and returns a new candidate and a record of what it did.

Search (step 1) creates the candidate; pruning (step 2) and quantization (step 3) plug in between
training and export.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from torch import nn

from tightfit.data.loader import Normalize
from tightfit.data.tensors import DataBundle, TensorSet
from tightfit.hardware.targets import Target
from tightfit.models.registry import ModelSpec
from tightfit.pipeline.config import RunConfig
from tightfit.train.distributed import DistContext


@dataclass(frozen=True)
class QuantizedArtifacts:
    """What step 3 adds to a candidate whose `model` holds the quantized weight values in floating point:
    the policy, each quantized input's (clip, signed), and files under the run folder (relative paths):
    the packed weights and, where the target runs int8, the ONNX model to deploy instead of an fp32 one."""

    policy: dict  # QuantPolicy JSON
    activation_clips: dict[str, tuple[float, bool]]
    packed: str
    onnx: str | None = None

    def to_json(self) -> dict:
        return {"policy": self.policy, "activation_clips": {n: list(c) for n, c in self.activation_clips.items()},
                "packed": self.packed, "onnx": self.onnx}

    @classmethod
    def from_json(cls, obj: dict) -> QuantizedArtifacts:
        clips = {n: (float(c), bool(s)) for n, (c, s) in obj["activation_clips"].items()}
        return cls(obj["policy"], clips, obj["packed"], obj["onnx"])


@dataclass
class Candidate:
    """A network on its way through the pipeline, and the spec that rebuilds it."""

    model: nn.Module
    spec: ModelSpec
    quantized: QuantizedArtifacts | None = None  # set by step 3


@dataclass
class StageRecord:
    """What a stage did: its figures for the card and report, and its wall time."""

    stage: str
    seconds: float = 0.0
    results: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        return {"stage": self.stage, "seconds": self.seconds, "results": self.results}

    @classmethod
    def from_json(cls, obj: dict) -> StageRecord:
        return cls(obj["stage"], obj["seconds"], obj["results"])


@dataclass
class RunContext:
    """Everything a stage may use: data splits, target, constraints, its own folder, the rank."""

    config: RunConfig
    data: DataBundle
    train: TensorSet
    val: TensorSet
    normalize: Normalize
    target: Target
    run_dir: Path
    dist: DistContext
    progress: bool = True

    def stage_dir(self, index: int, name: str) -> Path:
        path = self.run_dir / "stages" / f"{index}-{name}"
        path.mkdir(parents=True, exist_ok=True)
        return path

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return (self.data.in_channels, self.data.resolution, self.data.resolution)


class Stage(Protocol):
    """A stage may also define `check(config, target)`, called before the run folder is created, to
    refuse bad settings before any work is done."""

    name: str
    distributed: bool  # True: every rank runs it (training); False: rank 0 alone

    def run(self, candidate: Candidate | None, ctx: RunContext, workdir: Path) -> tuple[Candidate, StageRecord]:
        """`candidate` is None for a first stage that creates the network (the search)."""
        ...
