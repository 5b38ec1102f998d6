"""Export: ONNX parity and accuracy against PyTorch, safetensors round trip, and bad-file errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from tightfit.errors import TightfitError
from tightfit.export import (
    Parity,
    check_parity,
    export_onnx,
    load_weights,
    onnx_accuracy,
    ort_session,
    save_weights,
)

SHAPE = (3, 16, 16)


def _net(seed: int = 0) -> nn.Sequential:
    torch.manual_seed(seed)
    net = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(8, 5),
    )
    # Non-trivial BatchNorm statistics so the exported running stats matter.
    with torch.no_grad():
        net[1].running_mean.uniform_(-0.5, 0.5)
        net[1].running_var.uniform_(0.5, 2.0)
    return net


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[nn.Module, Path]:
    model = _net()
    path = export_onnx(model, SHAPE, tmp_path_factory.mktemp("onnx") / "model.onnx")
    return model, path


def test_export_writes_only_the_target(tmp_path: Path) -> None:
    model = _net()
    model.train()
    path = export_onnx(model, SHAPE, tmp_path / "m.onnx")
    assert path == tmp_path / "m.onnx" and path.is_file()
    assert [p.name for p in tmp_path.iterdir()] == ["m.onnx"]  # no leftover tmp file
    assert model.training


def test_onnx_parity_with_dynamic_batch(exported: tuple[nn.Module, Path]) -> None:
    model, path = exported
    session = ort_session(path, threads=1)
    torch.manual_seed(1)
    parity = check_parity(model, session, torch.randn(4, *SHAPE))
    assert isinstance(parity, Parity)
    assert parity.samples == 4
    assert parity.max_abs_diff < 1e-4
    assert Parity.from_json(parity.to_json()) == parity


def test_onnx_accuracy_equals_torch_accuracy(exported: tuple[nn.Module, Path]) -> None:
    model, path = exported
    session = ort_session(path)
    torch.manual_seed(2)
    xs = [torch.randn(6, *SHAPE), torch.randn(5, *SHAPE).to(memory_format=torch.channels_last)]
    # Labels: half agree with the model's predictions so accuracy is neither 0 nor 1.
    model.eval()
    batches = []
    with torch.no_grad():
        for x in xs:
            pred = model(x).argmax(1)
            y = pred.clone()
            y[::2] = (pred[::2] + 1) % 5
            batches.append((x, y.to(torch.int64)))
    correct = sum(int((model(x).argmax(1) == y).sum()) for x, y in batches)
    expected = correct / 11
    assert 0 < expected < 1
    assert onnx_accuracy(session, batches) == pytest.approx(expected)


def test_onnx_accuracy_rejects_empty_batches(exported: tuple[nn.Module, Path]) -> None:
    with pytest.raises(TightfitError):
        onnx_accuracy(ort_session(exported[1]), [])


def test_missing_onnx_file_raises(tmp_path: Path) -> None:
    with pytest.raises(TightfitError, match="missing.onnx"):
        ort_session(tmp_path / "missing.onnx")


def test_invalid_onnx_file_raises(tmp_path: Path) -> None:
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"this is not a protobuf")
    with pytest.raises(TightfitError, match="bad.onnx"):
        ort_session(bad)


def test_weights_round_trip(tmp_path: Path) -> None:
    model = _net(seed=0).eval()
    path = save_weights(model, tmp_path / "w.safetensors")
    fresh = _net(seed=123).eval()
    x = torch.randn(3, *SHAPE)
    assert not torch.equal(model(x), fresh(x))
    assert load_weights(fresh, path) is fresh
    assert torch.equal(model(x), fresh(x))
    assert torch.equal(fresh[1].num_batches_tracked, model[1].num_batches_tracked)


def test_weights_with_tied_and_non_contiguous_tensors(tmp_path: Path) -> None:
    def make() -> nn.Module:
        m = nn.ModuleDict({"emb": nn.Embedding(10, 4), "head": nn.Linear(4, 10, bias=False)})
        m["head"].weight = m["emb"].weight
        return m

    torch.manual_seed(0)
    model = make()
    model.register_buffer("tr", torch.randn(4, 6).t())  # non-contiguous buffer
    path = save_weights(model, tmp_path / "tied.safetensors")
    fresh = make()
    fresh.register_buffer("tr", torch.zeros(6, 4))
    load_weights(fresh, path)
    assert torch.equal(fresh["emb"].weight, model["emb"].weight)
    assert fresh["head"].weight is fresh["emb"].weight
    assert torch.equal(fresh.tr, model.tr)


def test_corrupt_weights_raise(tmp_path: Path) -> None:
    path = save_weights(_net(), tmp_path / "w.safetensors")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])  # truncated
    with pytest.raises(TightfitError, match="w.safetensors"):
        load_weights(_net(), path)
    path.write_bytes(b"\x00garbage")
    with pytest.raises(TightfitError, match="w.safetensors"):
        load_weights(_net(), path)


def test_missing_weights_raise(tmp_path: Path) -> None:
    with pytest.raises(TightfitError, match="nope.safetensors"):
        load_weights(_net(), tmp_path / "nope.safetensors")


def test_mismatched_architecture_raises(tmp_path: Path) -> None:
    path = save_weights(_net(), tmp_path / "w.safetensors")
    other = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten(), nn.Linear(4, 5))
    with pytest.raises(TightfitError, match="same architecture"):
        load_weights(other, path)
    wider = _net()
    wider[6] = nn.Linear(8, 7)  # same keys, different shapes
    with pytest.raises(TightfitError, match="same architecture"):
        load_weights(wider, path)
