"""ONNX export and ONNX Runtime checks: the deployable artifact must match the PyTorch model."""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import torch
from torch import nn

from tightfit.errors import TightfitError
from tightfit.fileio import atomic_path
from tightfit.metrics.memory import example_input

INPUT_NAME = "input"
OUTPUT_NAME = "logits"


def export_onnx(model: nn.Module, input_shape: tuple[int, ...], path: str | Path, opset: int = 17) -> Path:
    """Export `model` in eval mode to ONNX at `path` (atomically) with a dynamic batch axis.

    Uses the TorchScript exporter (`dynamo=False`): it handles plain CNNs without needing
    `torch.export`-friendly code. The model's train/eval mode is restored afterwards.

    Args:
        model: the network to export.
        input_shape: one sample's shape without the batch dimension, e.g. (3, 32, 32).
        path: destination `.onnx` file.
        opset: ONNX opset version.
    """
    path = Path(path)
    was_training = model.training
    model.eval()
    try:
        x = example_input(model, input_shape)
        with atomic_path(path) as tmp, warnings.catch_warnings():
            # The legacy exporter warns on every call that it is deprecated; we choose it on purpose.
            warnings.simplefilter("ignore", DeprecationWarning)
            torch.onnx.export(
                model,
                (x,),
                str(tmp),
                dynamo=False,
                opset_version=opset,
                input_names=[INPUT_NAME],
                output_names=[OUTPUT_NAME],
                dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
            )
            # Check by path so models over the 2 GB protobuf limit are checked too.
            onnx.checker.check_model(str(tmp))
    finally:
        model.train(was_training)
    return path


def ort_session(path: str | Path, threads: int | None = None) -> ort.InferenceSession:
    """Open an ONNX model on the CPU with ONNX Runtime.

    Args:
        path: the `.onnx` file.
        threads: intra-op thread count; None lets ONNX Runtime choose.
    """
    path = Path(path)
    if not path.is_file():
        raise TightfitError(
            f"ONNX model {path} does not exist; export it first (export_onnx) or fix the path."
        )
    if threads is not None and threads < 1:
        raise TightfitError(f"threads={threads} for {path} must be a positive integer or None.")
    options = ort.SessionOptions()
    if threads is not None:
        options.intra_op_num_threads = threads
    try:
        return ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])
    except Exception as e:  # ORT's pybind errors (InvalidProtobuf, Fail, ...) share no useful base class.
        raise TightfitError(f"{path} is not a valid ONNX model ({e}); re-export it with export_onnx.") from e


@dataclass(frozen=True)
class Parity:
    """How far ONNX Runtime's outputs are from PyTorch's on the same batch."""

    max_abs_diff: float
    samples: int

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Parity:
        return cls(max_abs_diff=float(d["max_abs_diff"]), samples=int(d["samples"]))


def _to_numpy(x: torch.Tensor) -> np.ndarray:
    """Contiguous (NCHW, not channels_last) float32 array, the layout the ONNX graph expects."""
    return np.ascontiguousarray(x.detach().to("cpu", torch.float32).contiguous().numpy())


def _run(session: ort.InferenceSession, x: torch.Tensor) -> np.ndarray:
    name = session.get_inputs()[0].name
    return session.run(None, {name: _to_numpy(x)})[0]


def check_parity(model: nn.Module, session: ort.InferenceSession, x: torch.Tensor) -> Parity:
    """Largest absolute difference between PyTorch (eval mode) and ONNX Runtime outputs on batch `x`."""
    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            expected = model(x.to(device)).detach().to("cpu", torch.float32).numpy()
    finally:
        model.train(was_training)
    got = _run(session, x)
    if got.shape != expected.shape:
        raise TightfitError(
            f"ONNX output shape {got.shape} differs from PyTorch's {expected.shape}; "
            "was the ONNX file exported from this model?"
        )
    diff = float(np.max(np.abs(got.astype(np.float64) - expected.astype(np.float64)))) if got.size else 0.0
    return Parity(max_abs_diff=diff, samples=int(x.shape[0]))


def onnx_accuracy(
    session: ort.InferenceSession, batches: Iterable[tuple[torch.Tensor, torch.Tensor]]
) -> float:
    """Top-1 accuracy of the ONNX model over `(x, y)` batches (x float NCHW, y int64 class ids)."""
    correct = 0
    total = 0
    for x, y in batches:
        pred = _run(session, x).argmax(axis=1)
        labels = y.detach().cpu().numpy().reshape(-1)
        correct += int((pred == labels).sum())
        total += labels.shape[0]
    if total == 0:
        raise TightfitError("onnx_accuracy got no samples; pass a non-empty iterable of (x, y) batches.")
    return correct / total
