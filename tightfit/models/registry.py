"""Model families by name, and `ModelSpec`: everything needed to rebuild a network from JSON."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass

from torch import nn

from tightfit.errors import TightfitError
from tightfit.models.mobilenet import MobileNet, mobilenetv2_plan
from tightfit.models.resnet_cifar import ResNetCifar
from tightfit.space.arch import Arch
from tightfit.space.space import SearchSpace


@dataclass(frozen=True)
class ModelSpec:
    """A network family plus its settings; `arch` is required by the `arch` family only."""

    family: str
    resolution: int
    in_channels: int
    num_classes: int
    width: float = 1.0
    arch: str | None = None

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, obj: dict) -> ModelSpec:
        return cls(**obj)

    def search_space(self) -> SearchSpace:
        return SearchSpace(self.resolution, self.in_channels, self.num_classes, width_mult=self.width)


_FAMILIES: dict[str, Callable[[ModelSpec], nn.Module]] = {}


def register_model(name: str) -> Callable[[Callable[[ModelSpec], nn.Module]], Callable[[ModelSpec], nn.Module]]:
    def add(factory: Callable[[ModelSpec], nn.Module]) -> Callable[[ModelSpec], nn.Module]:
        _FAMILIES[name] = factory
        return factory
    return add


def model_families() -> tuple[str, ...]:
    return tuple(sorted(_FAMILIES))


def build_model(spec: ModelSpec) -> nn.Module:
    """A freshly initialised network for `spec`."""
    if spec.family not in _FAMILIES:
        raise TightfitError(f"unknown model {spec.family!r}; choose one of {', '.join(model_families())}")
    if spec.family != "arch" and spec.arch is not None:
        raise TightfitError(f"an architecture string is only used with model 'arch', not {spec.family!r}")
    return _FAMILIES[spec.family](spec)


@register_model("mobilenetv2")
def _mobilenetv2(spec: ModelSpec) -> nn.Module:
    return MobileNet(mobilenetv2_plan(spec.resolution, spec.in_channels, spec.num_classes, spec.width))


@register_model("arch")
def _arch(spec: ModelSpec) -> nn.Module:
    if spec.arch is None:
        raise TightfitError("model 'arch' needs an architecture string, for example --arch k3e6-skip-...")
    space = spec.search_space()
    return MobileNet(space.plan(Arch.parse(spec.arch)))


@register_model("resnet20")
def _resnet20(spec: ModelSpec) -> nn.Module:
    return ResNetCifar(20, True, spec.resolution, spec.in_channels, spec.num_classes, spec.width)


@register_model("plain20")
def _plain20(spec: ModelSpec) -> nn.Module:
    return ResNetCifar(20, False, spec.resolution, spec.in_channels, spec.num_classes, spec.width)
