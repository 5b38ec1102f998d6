"""The resolved configuration of a run: every default filled in, written to the run folder as JSON."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, replace

from tightfit.errors import TightfitError
from tightfit.methods.search.proxyless import SearchConfig
from tightfit.pipeline.constraints import Constraints
from tightfit.train.config import TrainConfig


@dataclass(frozen=True)
class PruneSettings:
    """Step 2 (AMC). It runs when `ratio` is set, with an accuracy-guaranteed reward, or when a --flops
    constraint is given and the network exceeds it (the ratio is then bound / FLOPs)."""

    ratio: float | None = None  # keep this share of the metric (resource-constrained, R_err)
    mode: str = "channels"  # "channels" (structured) or "weights" (fine-grained, for model size)
    metric: str = "flops"  # "flops", "params" or "latency" (predicted on the run's target)
    reward: str = "err"  # "err" with a budget; "flops" / "params": accuracy-guaranteed, no budget
    episodes: int = 300
    warmup_episodes: int = 100
    reconstruct: bool = False
    finetune_epochs: int = 10
    multiple: int = 8

    def __post_init__(self) -> None:
        if self.ratio is not None and not 0 < self.ratio <= 1:
            raise TightfitError(f"pruning ratio {self.ratio} must be the share of {self.metric} to keep, in (0, 1]")
        if self.mode not in ("channels", "weights"):
            raise TightfitError(f"pruning mode {self.mode!r}: use 'channels' or 'weights'")
        if self.episodes < 1 or self.warmup_episodes < 0 or self.finetune_epochs < 0:
            raise TightfitError("AMC episodes must be positive, warm-up episodes and fine-tune epochs not negative")

    def enabled(self, constraints: Constraints) -> bool:
        return self.ratio is not None or self.reward != "err" or constraints.flops is not None

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, obj: dict) -> PruneSettings:
        return cls(**obj)


_UNIFORM = re.compile(r"^w([1-8])a([1-8]|32)$")
BUDGET_METRICS = ("latency", "energy", "size")


def parse_uniform(text: str) -> tuple[int, int]:
    """`w4a4` -> (4, 4): a uniform policy whose cost is the budget (a32: activations left in float)."""
    match = _UNIFORM.match(text.strip().lower())
    if not match:
        raise TightfitError(f"--budget-uniform {text!r} is not a uniform setting wWaA with W in 1..8 and A in 1..8 "
                            "or 32; for example --budget-uniform w4a4")
    return int(match.group(1)), int(match.group(2))


@dataclass(frozen=True)
class QuantizeSettings:
    """Step 3 (HAQ). It runs when `enabled`; the budget is `value` in the metric's unit (ms, mJ, or average
    bits per weight for "size"), or, with `uniform` ("w4a4"), what that uniform policy costs."""

    enabled: bool = False
    metric: str = "latency"  # "latency" (ms), "energy" (mJ) or "size" (bits per weight, k-means)
    value: float | None = None
    uniform: str | None = None
    episodes: int = 300
    warmup_episodes: int = 100
    reward_steps: int = 50  # fine-tuning steps before each episode's accuracy (HAQ's short fine-tune)
    reward_lr: float = 0.01
    finetune_epochs: int = 5  # straight-through fine-tuning of the chosen policy
    b_min: int = 2
    b_max: int = 8
    keep_ends: bool = True  # bit-flexible targets: first and last layer at b_max bits (HAQ's released code)

    def __post_init__(self) -> None:
        if self.metric not in BUDGET_METRICS:
            raise TightfitError(f"quantization budget metric {self.metric!r}: use one of {', '.join(BUDGET_METRICS)}")
        if self.uniform is not None:
            parse_uniform(self.uniform)
        if self.value is not None and self.value <= 0:
            raise TightfitError(f"the quantization budget {self.value} must be positive")
        if self.metric == "size" and self.value is not None and not 1 <= self.value <= 8:
            raise TightfitError(f"--size-bits {self.value:g} must be an average of 1 to 8 bits per weight, e.g. 3")
        if self.enabled and (self.value is None) == (self.uniform is None):
            raise TightfitError("quantization needs one budget: --latency 0.5ms, --energy 2mJ, --size-bits 3 or "
                                "--budget-uniform w4a4")
        if self.episodes < 1 or self.warmup_episodes < 0 or self.reward_steps < 0 or self.finetune_epochs < 0:
            raise TightfitError("HAQ episodes must be positive; warm-up episodes, reward steps and fine-tune epochs "
                                "not negative")
        if not 1 <= self.b_min <= self.b_max <= 8:
            raise TightfitError(f"bits range {self.b_min}..{self.b_max}: need 1 <= --b-min <= --b-max <= 8")

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, obj: dict) -> QuantizeSettings:
        return cls(**obj)


@dataclass(frozen=True)
class RunConfig:
    data: str = "digits"
    resolution: int | None = None  # None: the data set's own
    model: str = "search"  # "search": ProxylessNAS finds the architecture (step 1); else a fixed family
    width: float = 1.0
    arch: str | None = None
    target: str = "cpu-ort"
    constraints: Constraints = Constraints()
    train: TrainConfig = TrainConfig()
    search: SearchConfig = SearchConfig()
    prune: PruneSettings = PruneSettings()
    quantize: QuantizeSettings = QuantizeSettings()
    factory: str | None = None  # model "factory": the user's module:function
    weights: str | None = None  # initial weights (safetensors) of the starting network
    val_fraction: float = 0.1
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0.0 < self.val_fraction < 1.0:
            raise TightfitError(f"--val-fraction {self.val_fraction} must be between 0 and 1, e.g. 0.1")
        if self.width <= 0:
            raise TightfitError(f"--width {self.width} must be positive, e.g. 0.5")

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, obj: dict) -> RunConfig:
        obj = dict(obj)
        obj["constraints"] = Constraints.from_json(obj["constraints"])
        obj["train"] = TrainConfig.from_json(obj["train"])
        obj["search"] = SearchConfig.from_json(obj["search"])
        obj["prune"] = PruneSettings.from_json(obj["prune"])
        obj["quantize"] = QuantizeSettings.from_json(obj.get("quantize", {}))  # runs written before step 3
        return cls(**obj)


# Defaults that depend on the data set: the embedded digits must train in about a minute on 2 cores.
RECIPES: dict[str, dict] = {
    "digits": {"width": 0.35, "train": {"epochs": 15, "batch_size": 64, "lr": 0.05, "warmup_epochs": 2.0},
               "search": {"warmup_epochs": 3, "epochs": 8, "batch_size": 64},
               "prune": {"episodes": 120, "warmup_episodes": 40, "finetune_epochs": 5},
               "quantize": {"episodes": 60, "warmup_episodes": 20, "reward_steps": 20, "reward_lr": 0.005,
                            "finetune_epochs": 2}},
    "default": {"width": 1.0, "train": {"epochs": 30, "batch_size": 128, "lr": 0.1, "warmup_epochs": 1.0},
                "search": {"warmup_epochs": 5, "epochs": 15, "batch_size": 64},
                "prune": {"episodes": 300, "warmup_episodes": 100, "finetune_epochs": 10},
                "quantize": {"episodes": 300, "warmup_episodes": 100, "reward_steps": 50, "reward_lr": 0.01,
                             "finetune_epochs": 5}},
}


def recipe_for(data: str) -> dict:
    return RECIPES.get(data.partition(":")[0], RECIPES["default"])


def resolve(data: str, width: float | None, train_overrides: dict, search_overrides: dict | None = None,
            prune_overrides: dict | None = None, quantize_overrides: dict | None = None,
            **fields: object) -> RunConfig:
    """A RunConfig from the data set's recipe, with every option the user gave taking precedence."""
    recipe = recipe_for(data)
    train = {**recipe["train"], **{k: v for k, v in train_overrides.items() if v is not None}}
    search = {**recipe["search"], **{k: v for k, v in (search_overrides or {}).items() if v is not None}}
    model = str(fields.get("model") or RunConfig.model)
    if width is None:  # the recipe's width is for the MobileNet family; ResNets keep their published widths
        width = recipe["width"] if model in ("search", "mobilenetv2", "arch") else 1.0
    prune = {**recipe["prune"], **{k: v for k, v in (prune_overrides or {}).items() if v is not None}}
    quantize = {**recipe["quantize"], **{k: v for k, v in (quantize_overrides or {}).items() if v is not None}}
    config = RunConfig(data=data, width=width, train=TrainConfig(**train), search=SearchConfig(**search),
                       prune=PruneSettings(**prune), quantize=QuantizeSettings(**quantize))
    return replace(config, **{k: v for k, v in fields.items() if v is not None})
