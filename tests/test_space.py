"""The search space: architectures round-trip, invalid ones are refused, and plans follow the space's rules."""

from __future__ import annotations

import json
import random

import pytest

from tightfit.errors import TightfitError
from tightfit.space import Arch, MBConvChoice, SearchSpace, downsample_positions, make_divisible

RESOLUTIONS = (224, 32, 8)


def _final_resolution(space: SearchSpace, arch: Arch) -> int:
    return space.plan(arch).blocks[-1].out_resolution


@pytest.mark.parametrize("resolution", RESOLUTIONS)
def test_random_archs_round_trip_through_string_and_json(resolution: int) -> None:
    space = SearchSpace(resolution)
    rng = random.Random(resolution)
    seen = set()
    for _ in range(200):
        arch = space.random_arch(rng)
        assert space.validate(arch) is arch
        assert Arch.parse(str(arch)) == arch
        assert Arch.from_json(json.loads(json.dumps(arch.to_json()))) == arch
        assert tuple(len(s) for s in arch.stages) == space.stage_depths
        seen.add(str(arch))
    assert len(seen) == 200  # the sampler really varies


def test_random_arch_is_deterministic_per_seed() -> None:
    space = SearchSpace(32)
    a = [str(space.random_arch(random.Random(7))) for _ in range(3)]
    assert a[0] == a[1] == a[2]
    assert str(space.random_arch(random.Random(8))) != a[0]


def test_string_form() -> None:
    arch = Arch(((MBConvChoice(3, 6), None), (MBConvChoice(7, 3),)))
    assert str(arch) == "k3e6-skip_k7e3"
    assert Arch.parse("  k3e6-skip_k7e3\n") == arch
    assert arch.blocks == (MBConvChoice(3, 6), None, MBConvChoice(7, 3))
    assert arch.depth == 2


@pytest.mark.parametrize("text, bad", [
    ("k3e6-k9x6_k5e3", "k9x6"),
    ("k3e6-zero", "zero"),
    ("k3e6--k5e3", "''"),
    ("k3e6_", "''"),
    ("K3E6", "K3E6"),
    ("k3e", "k3e"),
])
def test_parse_errors_name_the_bad_block(text: str, bad: str) -> None:
    with pytest.raises(TightfitError) as info:
        Arch.parse(text)
    assert bad in str(info.value)


@pytest.mark.parametrize("text", ["", "   "])
def test_parse_refuses_empty(text: str) -> None:
    with pytest.raises(TightfitError, match="empty"):
        Arch.parse(text)


def _largest(space: SearchSpace) -> list[list]:
    return [list(stage) for stage in space.uniform_arch(7, 6).stages]


def test_validate_rejects_wrong_depths() -> None:
    space = SearchSpace(32)
    stages = _largest(space)
    stages[1].append(MBConvChoice(3, 3))
    with pytest.raises(TightfitError, match="stage depths"):
        space.validate(Arch(tuple(map(tuple, stages))))
    with pytest.raises(TightfitError, match="stage depths"):
        space.validate(Arch(tuple(map(tuple, _largest(space)[:-1]))))
    with pytest.raises(TightfitError):
        space.plan(Arch(tuple(map(tuple, stages))))


@pytest.mark.parametrize("stage", range(6))
def test_validate_rejects_skipping_the_first_block_of_a_stage(stage: int) -> None:
    space = SearchSpace(32)
    stages = _largest(space)
    stages[stage][0] = None
    with pytest.raises(TightfitError, match=f"block 0 of stage {stage}.*cannot be skipped"):
        space.validate(Arch(tuple(map(tuple, stages))))


@pytest.mark.parametrize("block", [MBConvChoice(9, 6), MBConvChoice(3, 4), MBConvChoice(1, 1)])
def test_validate_rejects_unknown_choices(block: MBConvChoice) -> None:
    space = SearchSpace(32)
    stages = _largest(space)
    stages[2][1] = block
    with pytest.raises(TightfitError, match=f"block 1 of stage 2 is {block}"):
        space.validate(Arch(tuple(map(tuple, stages))))
    # the same string is refused on parse-then-validate, as a user would give it
    with pytest.raises(TightfitError):
        space.plan(Arch.parse(str(Arch(tuple(map(tuple, stages))))))


@pytest.mark.parametrize("resolution", RESOLUTIONS)
@pytest.mark.parametrize("width", [1.0, 0.35, 1.4])
def test_skip_is_offered_exactly_where_stride_is_one_and_channels_match(resolution: int, width: float) -> None:
    space = SearchSpace(resolution, width_mult=width)
    plan = space.plan(space.uniform_arch(3, 6))
    specs = plan.blocks[1:]  # blocks[0] is the fixed MBConv1 block
    positions = space.positions()
    assert len(specs) == len(positions)
    for (s, i), spec in zip(positions, specs, strict=True):
        cands = space.candidates(s, i)
        assert len(cands) == len(set(cands))
        assert {c for c in cands if c is not None} == {MBConvChoice(k, e) for k in (3, 5, 7) for e in (3, 6)}
        assert (None in cands) == (spec.stride == 1 and spec.in_channels == spec.out_channels) == spec.residual
        if i > 0:
            assert None in cands


@pytest.mark.parametrize("resolution, final", [(224, 7), (32, 4), (8, 4), (64, 4), (16, 4), (4, 4)])
def test_downsampling_adapts_to_resolution(resolution: int, final: int) -> None:
    space = SearchSpace(resolution)
    rng = random.Random(0)
    for arch in [space.uniform_arch(3, 3), *(space.random_arch(rng) for _ in range(5))]:
        assert _final_resolution(space, arch) == final


def test_strides_at_224_are_the_proxylessnas_backbone() -> None:
    space = SearchSpace(224)
    assert space.strides() == (2, (2, 2, 2, 1, 2, 1))
    plan = space.plan(space.uniform_arch(3, 6))
    assert plan.stem_stride == 2 and plan.stem_channels == 32 and plan.head_channels == 1280
    assert [b.out_channels for b in plan.blocks] == [16] + [24] * 4 + [40] * 4 + [80] * 4 + [96] * 4 + [192] * 4 + [320]
    # every block's input resolution is the previous one's output
    res = 224 // 2
    for block in plan.blocks:
        assert block.in_resolution == res
        res = block.out_resolution


def test_small_inputs_lose_the_earliest_strides_first() -> None:
    assert SearchSpace(32).strides() == (1, (1, 2, 2, 1, 2, 1))
    assert SearchSpace(8).strides() == (1, (1, 1, 1, 1, 2, 1))
    assert SearchSpace(2).strides() == (1, (1, 1, 1, 1, 1, 1))
    assert downsample_positions(224, 5, 5) == (True,) * 5
    assert downsample_positions(224, 5, 2) == (False, False, False, True, True)
    assert downsample_positions(32, 3, 3) == (True, True, True)
    assert downsample_positions(1, 3, 3) == (False, False, False)


def test_bad_space_settings_are_refused() -> None:
    with pytest.raises(TightfitError):
        SearchSpace(0)
    with pytest.raises(TightfitError):
        SearchSpace(32, stage_depths=(4, 4))


def test_skipped_blocks_vanish_from_the_plan() -> None:
    space = SearchSpace(32)
    full = space.uniform_arch(5, 3)
    stages = [list(stage) for stage in full.stages]
    for stage in stages[:5]:
        stage[1:] = [None] * (len(stage) - 1)
    shallow = Arch(tuple(map(tuple, stages)))
    assert full.depth == 21 and shallow.depth == 6
    full_plan, shallow_plan = space.plan(full), space.plan(shallow)
    assert len(full_plan.blocks) == 1 + full.depth
    assert len(shallow_plan.blocks) == 1 + shallow.depth
    assert [b.out_channels for b in shallow_plan.blocks] == [16, 24, 40, 80, 96, 192, 320]
    assert all(b.kernel == 5 and b.expand == 3 for b in shallow_plan.blocks[1:])
    # skipping keeps the resolution schedule and the head
    assert shallow_plan.blocks[-1].out_resolution == full_plan.blocks[-1].out_resolution == 4
    assert shallow_plan.head_channels == full_plan.head_channels

    rng = random.Random(3)
    for _ in range(50):
        arch = space.random_arch(rng)
        plan = space.plan(arch)
        assert len(plan.blocks) == 1 + arch.depth
        chosen = [b for b in arch.blocks if b is not None]
        assert [(b.kernel, b.expand) for b in plan.blocks[1:]] == [(c.kernel, c.expand) for c in chosen]
        for prev, block in zip(plan.blocks, plan.blocks[1:], strict=False):
            assert block.in_channels == prev.out_channels
            assert block.in_resolution == prev.out_resolution


def test_plan_carries_the_space_settings() -> None:
    space = SearchSpace(8, in_channels=1, num_classes=7, width_mult=0.5)
    plan = space.plan(space.uniform_arch(3, 3))
    assert (plan.in_channels, plan.resolution, plan.num_classes) == (1, 8, 7)
    assert plan.stem_channels == 16 and plan.head_channels == 1280
    assert [b.out_channels for b in plan.blocks][-1] == 160
    wide = SearchSpace(8, width_mult=1.5).plan(space.uniform_arch(3, 3))
    assert wide.head_channels == 1920


@pytest.mark.parametrize("value, expected", [(32, 32), (16 * 0.35, 8), (24 * 0.35, 8), (320 * 0.35, 112),
                                             (96 * 0.75, 72), (3, 8), (36, 40), (1280 * 1.4, 1792)])
def test_make_divisible(value: float, expected: int) -> None:
    assert make_divisible(value) == expected
    assert make_divisible(value) % 8 == 0
    assert make_divisible(value) >= 0.9 * value
