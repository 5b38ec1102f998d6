"""ONNX Runtime on the CPU: export, optional int8 static quantization, and timing at a fixed thread count."""

from __future__ import annotations

import io
import logging
import tempfile
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
from torch import nn

# QDQ ran MobileNetV2 slightly faster than QOperator on this project's CPU, both about 1.6x fp32
# (bench/results/int8_format.json); it is also ONNX Runtime's recommended, more portable format.
INT8_FORMAT = "QDQ"


def export_bytes(module: nn.Module, input_shape: tuple[int, ...], batch_size: int = 1) -> bytes:
    """The module as an in-memory fp32 ONNX model with a fixed batch size."""
    buf = io.BytesIO()
    x = torch.randn(batch_size, *input_shape)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module.eval(), (x,), buf, dynamo=False, input_names=["input"], output_names=["output"],
                          opset_version=17)
    return buf.getvalue()


def quantize_int8(onnx_model: bytes, input_shape: tuple[int, ...], batch_size: int = 1,
                  calibration: list[np.ndarray] | None = None, fmt: str = INT8_FORMAT,
                  keep_fp32: Callable[[str], bool] | None = None, per_channel: bool = True) -> bytes:
    """Static int8 quantization (uint8 activations, int8 weights) with onnxruntime.quantization.

    `keep_fp32(node_name)` leaves the nodes it selects in fp32 (mixed precision: the exporter names nodes
    after their modules, e.g. "/blocks/blocks.3/conv/conv.0/conv.0.0/Conv")."""
    return Int8Quantizer(onnx_model, input_shape, batch_size, calibration, fmt, per_channel)(keep_fp32)


class Int8Quantizer:
    """`quantize_int8` of one fp32 model under many choices of the nodes kept fp32 (HAQ's episodes).

    ORT's pre-processing and its calibration (min/max of the fp32 model's tensors, the same whichever nodes
    stay fp32) run once; later calls reuse ORT's calibration cache, so they only rewrite the graph."""

    def __init__(self, onnx_model: bytes, input_shape: tuple[int, ...], batch_size: int = 1,
                 calibration: list[np.ndarray] | None = None, fmt: str = INT8_FORMAT, per_channel: bool = True):
        from onnxruntime.quantization.shape_inference import quant_pre_process

        rng = np.random.default_rng(0)
        self.batches = calibration or [rng.standard_normal((batch_size, *input_shape)).astype(np.float32)
                                       for _ in range(4)]
        self.fmt, self.per_channel = fmt, per_channel
        self._dir = tempfile.TemporaryDirectory(prefix="tightfit-int8-")
        tmp = Path(self._dir.name)
        src, self._pre, self._ranges = tmp / "fp32.onnx", tmp / "pre.onnx", tmp / "ranges.json"
        src.write_bytes(onnx_model)
        with warnings.catch_warnings(), _quiet_root_logger():
            warnings.simplefilter("ignore")
            # folds constants into initializers and fuses; ORT's docs ask for it before quantization
            quant_pre_process(str(src), str(self._pre))
        import onnx

        self.node_names = [n.name for n in onnx.load(str(self._pre)).graph.node]

    def __call__(self, keep_fp32: Callable[[str], bool] | None = None) -> bytes:
        from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

        batches = self.batches

        class Reader(CalibrationDataReader):
            def __init__(self) -> None:
                self.it = iter(batches)

            def get_next(self) -> dict | None:
                x = next(self.it, None)
                return None if x is None else {"input": x}

        exclude = [n for n in self.node_names if keep_fp32 is not None and keep_fp32(n)]
        with tempfile.TemporaryDirectory(prefix="tightfit-int8-") as tmp:
            dst = Path(tmp) / "int8.onnx"
            with warnings.catch_warnings(), _quiet_root_logger():
                warnings.simplefilter("ignore")
                quantize_static(str(self._pre), str(dst), Reader(), quant_format=getattr(QuantFormat, self.fmt),
                                per_channel=self.per_channel, activation_type=QuantType.QUInt8,
                                weight_type=QuantType.QInt8, nodes_to_exclude=exclude,
                                calibration_cache_path=str(self._ranges))
            return dst.read_bytes()


@contextmanager
def _quiet_root_logger() -> Iterator[None]:
    """onnxruntime.quantization logs advice through the root logger; keep the user's terminal clean."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)


class OrtRuntime:
    """Times ONNX models with ONNX Runtime's CPU provider at `threads` intra-op threads."""

    name = "onnxruntime"

    def __init__(self, threads: int = 1, batch_size: int = 1, warmup: int = 20, repeats: int = 100):
        self.threads = threads
        self.batch_size = batch_size
        self.warmup = warmup
        self.repeats = repeats

    def session(self, model: bytes | str | Path):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = self.threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        source = model if isinstance(model, bytes) else str(model)
        return ort.InferenceSession(source, sess_options=options, providers=["CPUExecutionProvider"])

    def prepare_onnx(self, model: bytes | str | Path, input_shape: tuple[int, ...]) -> Callable[[], object]:
        """A function that runs the model once on a fixed random batch."""
        session = self.session(model)
        name = session.get_inputs()[0].name
        x = np.random.default_rng(0).standard_normal((self.batch_size, *input_shape)).astype(np.float32)
        return lambda: session.run(None, {name: x})

    def prepare(self, module: nn.Module, input_shape: tuple[int, ...], int8: bool = False) -> Callable[[], object]:
        model = export_bytes(module, input_shape, self.batch_size)
        if int8:
            model = quantize_int8(model, input_shape, self.batch_size)
        return self.prepare_onnx(model, input_shape)

    def overhead_module(self) -> nn.Module:
        """A model that does nothing: its latency is the per-call cost, paid once per network, not per entry."""
        return _Passthrough()


class _Passthrough(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * 1.0  # ONNX needs at least one node
