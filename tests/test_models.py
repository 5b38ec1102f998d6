"""Networks: every registered family builds and runs; published sizes and structures are reproduced."""

from __future__ import annotations

import json
import random

import pytest
import torch
from torch import nn

from tightfit.errors import TightfitError
from tightfit.models import MobileNet, ModelSpec, ResNetCifar, build_model, mobilenetv2_plan, model_families
from tightfit.models.blocks import MBConv
from tightfit.models.resnet_cifar import BasicBlock
from tightfit.space import MBConvSpec, SearchSpace


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


def _params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _spec(family: str, resolution: int, in_channels: int, num_classes: int, width: float = 1.0) -> ModelSpec:
    arch = factory = None
    if family == "arch":
        space = SearchSpace(resolution, in_channels, num_classes, width_mult=width)
        arch = str(space.random_arch(random.Random(resolution)))
    if family == "factory":  # a user's model, from tests/factory_nets.py
        factory = f"factory_nets:{'gray' if in_channels == 1 else 'rgb'}_{num_classes}"
    return ModelSpec(family, resolution, in_channels, num_classes, width, arch, factory)


def test_registry_has_the_reference_families() -> None:
    assert {"arch", "mobilenetv2", "resnet20", "plain20"} <= set(model_families())
    assert list(model_families()) == sorted(model_families())


@pytest.mark.parametrize("family", model_families())
@pytest.mark.parametrize("resolution, in_channels, num_classes", [(8, 1, 10), (32, 3, 7)])
def test_every_family_builds_and_runs(family: str, resolution: int, in_channels: int, num_classes: int) -> None:
    model = build_model(_spec(family, resolution, in_channels, num_classes))
    x = torch.randn(2, in_channels, resolution, resolution)
    model.eval()
    with torch.no_grad():
        out = model(x)
    assert out.shape == (2, num_classes)
    assert torch.isfinite(out).all()
    # and it trains: one backward pass reaches every parameter
    model.train()
    model(x).logsumexp(1).sum().backward()
    assert all(p.grad is not None for p in model.parameters())


def test_mobilenetv2_has_the_published_parameter_count() -> None:
    # torchvision's mobilenet_v2(): 3,504,872 parameters at width 1.0 with 1000 classes
    model = build_model(ModelSpec("mobilenetv2", 224, 3, 1000))
    assert _params(model) == 3_504_872
    plan = model.plan
    assert plan.blocks[-1].out_resolution == 7 and plan.stem_stride == 2
    assert len(plan.blocks) == 17
    assert sum(b.residual for b in plan.blocks) == 10
    assert [b.expand for b in plan.blocks] == [1] + [6] * 16


def test_mobilenetv2_strides_adapt_to_small_inputs() -> None:
    for resolution in (32, 8):
        plan = mobilenetv2_plan(resolution, 3, 10)
        assert plan.blocks[-1].out_resolution == 4
        assert _params(MobileNet(plan)) == _params(MobileNet(mobilenetv2_plan(224, 3, 10)))


def test_width_multiplier_shrinks_mobilenetv2() -> None:
    sizes = [_params(build_model(ModelSpec("mobilenetv2", 32, 3, 10, w))) for w in (0.35, 0.5, 0.75, 1.0, 1.4)]
    assert sizes == sorted(sizes) and len(set(sizes)) == len(sizes)
    half = mobilenetv2_plan(32, 3, 10, 0.5)
    assert half.stem_channels == 16 and half.blocks[-1].out_channels == 160 and half.head_channels == 1280


def test_width_multiplier_shrinks_arch_and_resnet() -> None:
    arch = str(SearchSpace(32).uniform_arch(3, 6))
    small = _params(build_model(ModelSpec("arch", 32, 3, 10, 0.5, arch)))
    big = _params(build_model(ModelSpec("arch", 32, 3, 10, 1.0, arch)))
    assert small < big
    assert _params(build_model(ModelSpec("resnet20", 32, 3, 10, 0.5))) < 272_474


def test_resnet20_and_plain20_have_the_published_sizes() -> None:
    # He et al. (2016): ResNet-20 has 0.27M parameters. With parameter-free (option A) shortcuts that is
    # 269,722, which is exactly Plain-20; the 1x1 projection shortcuts used here add 2 x (conv + BN).
    resnet = build_model(ModelSpec("resnet20", 32, 3, 10))
    plain = build_model(ModelSpec("plain20", 32, 3, 10))
    assert 260_000 <= _params(resnet) <= 280_000
    assert _params(resnet) == 272_474
    assert _params(plain) == 269_722
    assert _params(resnet) - _params(plain) == (16 * 32 + 2 * 32) + (32 * 64 + 2 * 64)
    convs = [m for m in plain.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 19  # 19 conv layers + 1 fully connected = 20 weighted layers


def _feature_sizes(model: ResNetCifar, resolution: int, in_channels: int = 3) -> list[tuple[int, int]]:
    sizes = []
    hooks = [b.register_forward_hook(lambda _m, _i, out: sizes.append(tuple(out.shape[1:3])))
             for b in model.blocks]
    model.eval()
    with torch.no_grad():
        model(torch.randn(1, in_channels, resolution, resolution))
    for h in hooks:
        h.remove()
    return sizes


def test_resnet20_at_32_follows_he_et_al() -> None:
    # Section 4.2: a stride-1 3x3 stem, then feature maps 32x32, 16x16, 8x8 with 16, 32, 64 filters.
    model = build_model(ModelSpec("resnet20", 32, 3, 10))
    assert model.stem[0].stride == (1, 1)
    assert _feature_sizes(model, 32) == [(16, 32)] * 3 + [(32, 16)] * 3 + [(64, 8)] * 3


@pytest.mark.parametrize("resolution, final", [(8, 8), (16, 8), (64, 8), (4, 4)])
def test_resnet20_ends_at_about_8x8(resolution: int, final: int) -> None:
    model = build_model(ModelSpec("resnet20", resolution, 1, 10))
    assert _feature_sizes(model, resolution, 1)[-1] == (64, final)


def test_plain20_has_no_residual_adds() -> None:
    resnet = build_model(ModelSpec("resnet20", 32, 3, 10))
    plain = build_model(ModelSpec("plain20", 32, 3, 10))
    res_blocks = [m for m in resnet.modules() if isinstance(m, BasicBlock)]
    plain_blocks = [m for m in plain.modules() if isinstance(m, BasicBlock)]
    assert len(res_blocks) == len(plain_blocks) == 9
    assert all(b.residual for b in res_blocks)
    assert not any(b.residual for b in plain_blocks)
    assert all(isinstance(b.shortcut, nn.Identity) for b in plain_blocks)
    assert sum(not isinstance(b.shortcut, nn.Identity) for b in res_blocks) == 2


@pytest.mark.parametrize("residual", [True, False])
def test_basic_block_adds_the_shortcut_only_when_residual(residual: bool) -> None:
    block = BasicBlock(8, 8, 1, residual).eval()
    nn.init.zeros_(block.bn2.weight)  # the conv path now outputs bn2.bias == 0
    x = torch.randn(2, 8, 5, 5)
    with torch.no_grad():
        out = block(x)
    torch.testing.assert_close(out, torch.relu(x) if residual else torch.zeros_like(x))


def test_resnet_depth_must_be_6n_plus_2() -> None:
    with pytest.raises(ValueError):
        ResNetCifar(21, True, 32, 3, 10)
    assert sum(isinstance(m, BasicBlock) for m in ResNetCifar(32, True, 32, 3, 10).modules()) == 15


@pytest.mark.parametrize("spec", [
    ModelSpec("mobilenetv2", 32, 3, 10, 0.5),
    ModelSpec("resnet20", 8, 1, 10),
    ModelSpec("arch", 8, 1, 10, 1.0, "k3e6-skip-skip-skip_k5e3-k5e3-skip-skip_k7e6-skip-skip-skip_"
                                     "k3e3-skip-skip-skip_k3e6-skip-skip-skip_k7e6"),
])
def test_model_spec_json_round_trip(spec: ModelSpec) -> None:
    again = ModelSpec.from_json(json.loads(json.dumps(spec.to_json())))
    assert again == spec
    torch.manual_seed(1)
    a = build_model(spec)
    torch.manual_seed(1)
    b = build_model(again)
    assert [k for k, _ in a.state_dict().items()] == [k for k, _ in b.state_dict().items()]
    for (_, va), (_, vb) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        torch.testing.assert_close(va, vb)


def test_arch_model_follows_its_plan() -> None:
    text = "k3e6-skip-skip-skip_k5e3-k5e3-skip-skip_k7e6-skip-skip-skip_k3e3-skip-skip-skip_k3e6-skip-skip-skip_k7e6"
    model = build_model(ModelSpec("arch", 8, 1, 10, 1.0, text))
    assert isinstance(model, MobileNet)
    assert len(model.blocks) == 1 + 7
    kernels = [m.conv[-2][0].kernel_size[0] for m in model.blocks]
    assert kernels == [3, 3, 5, 5, 7, 3, 3, 7]


@pytest.mark.parametrize("spec, pattern", [
    (ModelSpec("nope", 32, 3, 10), "unknown model 'nope'.*mobilenetv2"),
    (ModelSpec("arch", 32, 3, 10), "architecture string"),
    (ModelSpec("resnet20", 32, 3, 10, 1.0, "k3e6"), "only used with model 'arch'"),
    (ModelSpec("arch", 32, 3, 10, 1.0, "k3e6-k3e6"), "stage depths"),
    (ModelSpec("arch", 32, 3, 10, 1.0, "k3e6-bad"), "'bad'"),
])
def test_build_model_refuses_bad_specs(spec: ModelSpec, pattern: str) -> None:
    with pytest.raises(TightfitError, match=pattern):
        build_model(spec)


@pytest.mark.parametrize("cin, cout, stride, residual", [
    (16, 16, 1, True), (16, 16, 2, False), (16, 24, 1, False), (16, 24, 2, False),
])
def test_mbconv_residual_only_with_stride_one_and_equal_channels(cin: int, cout: int, stride: int,
                                                                 residual: bool) -> None:
    spec = MBConvSpec(cin, cout, 3, 6, stride, 8)
    assert spec.residual is residual
    block = MBConv(spec).eval()
    assert block.residual is residual
    project_bn = block.conv[-1][1]
    nn.init.zeros_(project_bn.weight)
    nn.init.zeros_(project_bn.bias)  # the conv path now outputs zeros
    x = torch.randn(2, cin, 8, 8)
    with torch.no_grad():
        out = block(x)
    assert out.shape == (2, cout, spec.out_resolution, spec.out_resolution)
    if residual:
        torch.testing.assert_close(out, x)
    else:
        assert torch.count_nonzero(out) == 0


def test_mbconv_structure() -> None:
    block = MBConv(MBConvSpec(16, 24, 5, 3, 2, 8))
    expand, depthwise, project = block.conv
    assert expand[0].out_channels == 48 and expand[0].kernel_size == (1, 1)
    assert depthwise[0].groups == 48 and depthwise[0].kernel_size == (5, 5) and depthwise[0].stride == (2, 2)
    assert project[0].out_channels == 24 and len(project) == 2  # linear bottleneck: no activation
    no_expand = MBConv(MBConvSpec(32, 16, 3, 1, 1, 8))
    assert len(no_expand.conv) == 2  # expand ratio 1 has no 1x1 expansion
