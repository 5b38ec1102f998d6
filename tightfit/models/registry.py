"""Model families by name, and `ModelSpec`: everything needed to rebuild a network from JSON."""

from __future__ import annotations

import importlib
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
    """A network family plus its settings; `arch` is required by the `arch` family only, `factory`
    ("module:function") by the `factory` family (a user's own model). `keep` records channel pruning
    (channels kept per group, in the order of `tightfit.methods.prune`), which the pipeline re-applies."""

    family: str
    resolution: int
    in_channels: int
    num_classes: int
    width: float = 1.0
    arch: str | None = None
    factory: str | None = None
    keep: tuple[int, ...] | None = None

    def to_json(self) -> dict:
        return {**asdict(self), "keep": None if self.keep is None else list(self.keep)}

    @classmethod
    def from_json(cls, obj: dict) -> ModelSpec:
        obj = dict(obj)
        if obj.get("keep") is not None:
            obj["keep"] = tuple(int(k) for k in obj["keep"])
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
    if spec.family != "factory" and spec.factory is not None:
        raise TightfitError(f"a model factory is only used with model 'factory', not {spec.family!r}")
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


@register_model("factory")
def _factory(spec: ModelSpec) -> nn.Module:
    """A user's model: `module:function` is imported and called with no arguments."""
    module_name, _, function = (spec.factory or "").partition(":")
    if not module_name or not function:
        raise TightfitError(f"model factory {spec.factory!r} must be module:function, e.g. mypkg.nets:make_model")
    try:
        model = getattr(importlib.import_module(module_name), function)()
    except (ImportError, AttributeError) as err:
        raise TightfitError(f"model factory {spec.factory!r} cannot be loaded ({err}); check the module is "
                            "importable (on PYTHONPATH) and defines the function") from None
    if not isinstance(model, nn.Module):
        raise TightfitError(f"model factory {spec.factory!r} returned {type(model).__name__}, not a torch nn.Module")
    return model


@register_model("resnet20")
def _resnet20(spec: ModelSpec) -> nn.Module:
    return ResNetCifar(20, True, spec.resolution, spec.in_channels, spec.num_classes, spec.width)


@register_model("plain20")
def _plain20(spec: ModelSpec) -> nn.Module:
    return ResNetCifar(20, False, spec.resolution, spec.in_channels, spec.num_classes, spec.width)
