"""A quantization policy as data, one entry per layer by module name, applied by one function.

`quantize_model(model, policy, calibration)` returns a copy in which every named conv or linear layer is a
`QuantLayer`: its input activations quantized to a_bits (clipping calibrated on training batches) and its
weights to w_bits, linearly (KL-chosen clipping) or by k-means. 32 bits means "left in floating point".
`deploy.py` builds the int8 ONNX model that ONNX Runtime runs.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from tightfit.errors import TightfitError
from tightfit.methods.quantize.quantizers import fake_quantize, kl_clip, kmeans

FP = 32  # "not quantized"
METHODS = ("linear", "kmeans")
ACTIVATION_SAMPLES = 20_000  # per layer, for the activation clipping


@dataclass(frozen=True)
class LayerBits:
    w_bits: int = FP
    a_bits: int = FP

    def __post_init__(self) -> None:
        for name, b in (("w_bits", self.w_bits), ("a_bits", self.a_bits)):
            if b != FP and not 1 <= b <= 8:
                raise TightfitError(f"{name}={b}: use 1..8 bits, or 32 to leave the layer in floating point")


@dataclass(frozen=True)
class QuantPolicy:
    """Per-layer bits by module name (HAQ's policy), and how weights are quantized."""

    bits: Mapping[str, LayerBits]
    method: str = "linear"

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise TightfitError(f"quantization method {self.method!r}: use one of {', '.join(METHODS)}")

    def to_json(self) -> dict:
        return {"method": self.method, "bits": {n: [b.w_bits, b.a_bits] for n, b in self.bits.items()}}

    @classmethod
    def from_json(cls, obj: dict) -> QuantPolicy:
        return cls({n: LayerBits(int(w), int(a)) for n, (w, a) in obj["bits"].items()}, obj["method"])

    @classmethod
    def uniform(cls, names: Iterable[str], w_bits: int, a_bits: int, method: str = "linear") -> QuantPolicy:
        return cls({n: LayerBits(w_bits, a_bits) for n in names}, method)


class Calibration:
    """Float inputs sampled at every conv/linear layer of a model on training batches, and the clipping
    values and k-means codebooks derived from them, cached per (layer, bits): a search quantizes the same
    network many times."""

    def __init__(self, model: nn.Module, batches: Iterable[torch.Tensor], seed: int = 0):
        self.model = model
        modules = dict(model.named_modules())
        self.samples: dict[str, list[torch.Tensor]] = {n: [] for n in quantizable_layers(model)}
        gen = torch.Generator().manual_seed(seed)

        def keep(name: str):  # noqa: ANN202
            def hook(_module: nn.Module, args: tuple) -> None:
                x = args[0].detach().flatten()
                pick = torch.randint(0, x.numel(), (min(x.numel(), ACTIVATION_SAMPLES),), generator=gen)
                self.samples[name].append(x[pick])
            return hook

        hooks = [modules[n].register_forward_pre_hook(keep(n)) for n in self.samples]
        try:
            with torch.no_grad():
                model.eval()
                for x in batches:
                    model(x)
        finally:
            for h in hooks:
                h.remove()
        self.inputs = {n: torch.cat(v) for n, v in self.samples.items() if v}
        self._cache: dict[tuple, object] = {}

    def activation(self, name: str, bits: int) -> tuple[float, bool]:
        """(clip, signed) of the layer's input: signed if it can be negative."""
        key = ("a", name, bits)
        if key not in self._cache:
            x = self.inputs[name]
            signed = bool(x.min() < 0)
            self._cache[key] = (kl_clip(x, bits, signed), signed)
        return self._cache[key]

    def weight_clip(self, name: str, weight: torch.Tensor, bits: int) -> float:
        key = ("w", name, bits)
        if key not in self._cache:
            self._cache[key] = kl_clip(weight, bits, signed=True)
        return self._cache[key]

    def codebook(self, name: str, weight: torch.Tensor, bits: int) -> tuple[torch.Tensor, torch.Tensor]:
        key = ("k", name, bits)
        if key not in self._cache:
            self._cache[key] = kmeans(weight, bits)
        return self._cache[key]


class QuantLayer(nn.Module):
    """A conv or linear layer with quantized input activations and weights (straight-through gradients)."""

    def __init__(self, layer: nn.Conv2d | nn.Linear, bits: LayerBits, method: str, name: str,
                 calibration: Calibration):
        super().__init__()
        self.layer, self.bits, self.method = layer, bits, method
        self.register_buffer("w_clip", torch.tensor(0.0))
        self.register_buffer("a_clip", torch.tensor(0.0))
        self.a_signed = False
        self.centroids: nn.Parameter | None = None
        if method == "kmeans" and bits.w_bits < FP:
            centroids, labels = calibration.codebook(name, layer.weight, bits.w_bits)
            self.centroids = nn.Parameter(centroids.clone())
            self.register_buffer("labels", labels.clone())
            layer.weight.requires_grad_(False)  # the centroids are what trains
        elif bits.w_bits < FP:
            self.w_clip.fill_(calibration.weight_clip(name, layer.weight, bits.w_bits))
        if bits.a_bits < FP and name in calibration.inputs:
            clip, self.a_signed = calibration.activation(name, bits.a_bits)
            self.a_clip.fill_(clip)

    def weight(self) -> torch.Tensor:
        if self.bits.w_bits >= FP:
            return self.layer.weight
        if self.centroids is not None:
            return self.centroids[self.labels]  # d/d centroid_j = sum of the gradients of its weights
        return fake_quantize(self.layer.weight, self.bits.w_bits, self.w_clip, True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.bits.a_bits < FP:
            x = fake_quantize(x, self.bits.a_bits, self.a_clip, self.a_signed)
        if isinstance(self.layer, nn.Linear):
            return F.linear(x, self.weight(), self.layer.bias)
        return self.layer._conv_forward(x, self.weight(), self.layer.bias)


def quantizable_layers(model: nn.Module) -> list[str]:
    return [n for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))]


def quantize_model(model: nn.Module, policy: QuantPolicy, calibration: Calibration) -> nn.Module:
    """A copy of `model` (the one `calibration` was taken on) with every layer of `policy` quantized."""
    model = copy.deepcopy(model).eval()
    unknown = set(policy.bits) - set(quantizable_layers(model))
    if unknown:
        raise TightfitError(f"the policy names layers the model has no conv/linear for: {sorted(unknown)[:5]}")
    for name, bits in policy.bits.items():
        if bits == LayerBits():
            continue
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, QuantLayer(getattr(parent, child), bits, policy.method, name, calibration))
    return model
