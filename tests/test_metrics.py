"""Metrics: FLOPs/params/bytes against hand formulas, peak activation memory against a known chain."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from tightfit.metrics import (
    Complexity,
    count_flops,
    count_params,
    measure_complexity,
    peak_activation_bytes,
    weight_bytes,
)

F32 = 4


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


@pytest.mark.parametrize("groups", [1, 2, 4])
def test_conv_flops_match_formula(groups: int) -> None:
    cin, cout, k, h, w = 8, 16, 3, 10, 12
    conv = nn.Conv2d(cin, cout, k, padding=1, groups=groups)
    # padding=1 with k=3 keeps the spatial size
    assert count_flops(conv, (cin, h, w)) == 2 * cout * cin * k * k * h * w // groups


def test_strided_conv_flops_use_output_size() -> None:
    conv = nn.Conv2d(3, 8, 3, stride=2, padding=1, bias=False)
    oh, ow = 8, 8  # 16x16 input, stride 2
    assert count_flops(conv, (3, 16, 16)) == 2 * 8 * 3 * 3 * 3 * oh * ow


def test_linear_flops_and_macs() -> None:
    lin = nn.Linear(20, 7)
    assert count_flops(lin, (20,)) == 2 * 20 * 7
    c = measure_complexity(lin, (20,))
    assert c.macs == 20 * 7
    assert c.flops == 2 * c.macs


def test_count_flops_restores_training_mode() -> None:
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
    model.train()
    count_flops(model, (3, 8, 8))
    assert model.training
    model.eval()
    count_flops(model, (3, 8, 8))
    assert not model.training


def test_params_and_weight_bytes() -> None:
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.Flatten(), nn.Linear(8, 2))
    conv = 8 * 3 * 3 * 3 + 8
    bn = 8 + 8
    lin = 8 * 2 + 2
    assert count_params(model) == conv + bn + lin
    # buffers: running_mean, running_var (fp32) and num_batches_tracked (int64)
    assert weight_bytes(model) == (conv + bn + lin) * F32 + 2 * 8 * F32 + 8


def test_tied_weights_count_once() -> None:
    emb = nn.Embedding(10, 4)
    head = nn.Linear(4, 10, bias=False)
    head.weight = emb.weight
    model = nn.ModuleDict({"emb": emb, "head": head})
    assert count_params(model) == 40
    assert weight_bytes(model) == 40 * F32


def _chain() -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.ReLU(inplace=True),
        nn.Conv2d(8, 16, 3, padding=1),
        nn.Conv2d(16, 4, 3, padding=1),
    )


def test_peak_activation_on_known_chain() -> None:
    hw = 16 * 16
    x, a1, a2, a3 = 3 * hw * F32, 8 * hw * F32, 16 * hw * F32, 4 * hw * F32
    # The caller holds the input throughout; Sequential drops each activation once the next exists,
    # and the in-place ReLU adds nothing.
    expected = x + max(a1, a1 + a2, a2 + a3)
    got = peak_activation_bytes(_chain(), (3, 16, 16))
    assert abs(got - expected) <= 0.01 * expected


def test_peak_counts_out_of_place_relu_and_views_once() -> None:
    hw = 8 * 8
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(8 * hw, 5))
    # Peak: input + conv out + relu out (both alive while ReLU runs); flatten is a view, the logits are tiny.
    expected = 3 * hw * F32 + 2 * 8 * hw * F32
    assert peak_activation_bytes(model, (3, 8, 8)) == expected


def test_peak_excludes_parameters_and_restores_mode() -> None:
    model = nn.Linear(1000, 1000)  # 4 MB of weights, tiny activations
    model.train()
    assert peak_activation_bytes(model, (1000,)) == 2 * 1000 * F32
    assert model.training


def test_complexity_json_round_trip() -> None:
    c = measure_complexity(_chain(), (3, 16, 16))
    assert isinstance(c, Complexity)
    assert c.params == count_params(_chain())
    assert Complexity.from_json(c.to_json()) == c
    assert set(c.to_json()) == {"params", "macs", "flops", "peak_activation_bytes", "weight_bytes"}
