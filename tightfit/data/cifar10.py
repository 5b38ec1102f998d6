"""CIFAR-10 in its standard python-pickle layout (`cifar-10-batches-py/data_batch_1..5, test_batch`)."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import torch

from tightfit.data.resize import resize_uint8
from tightfit.data.tensors import Augment, DataBundle, TensorSet
from tightfit.errors import TightfitError

CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
_ALLOWED = {("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "_reconstruct"),
            ("numpy._core.multiarray", "_reconstruct"), ("numpy.core.multiarray", "scalar"),
            ("numpy._core.multiarray", "scalar"), ("_codecs", "encode")}


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Pickle can run arbitrary code; a CIFAR batch needs nothing but numpy arrays."""

    def find_class(self, module: str, name: str):  # noqa: ANN201
        if (module, name) in _ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}")


def _read_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    if not path.is_file():
        raise TightfitError(f"CIFAR-10 batch {path} is missing; cifar10:PATH needs data_batch_1..5 and test_batch")
    try:
        with open(path, "rb") as f:
            batch = _NumpyOnlyUnpickler(f, encoding="bytes").load()
        data = np.asarray(batch[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
        labels = np.asarray(batch[b"labels"], dtype=np.int64)
        if labels.shape != (len(data),):
            raise ValueError(f"{len(data)} images but {labels.size} labels")
    except (pickle.UnpicklingError, EOFError, KeyError, ValueError, TypeError) as err:
        raise TightfitError(f"CIFAR-10 batch {path} is corrupt ({err}); re-extract cifar-10-python.tar.gz") from None
    return data, labels


def load_cifar10(root: str | Path, resolution: int | None = None) -> DataBundle:
    root = Path(root).expanduser()
    if (root / "cifar-10-batches-py").is_dir():
        root = root / "cifar-10-batches-py"
    if not root.is_dir():
        raise TightfitError(f"CIFAR-10 folder {root} does not exist; pass cifar10:PATH/cifar-10-batches-py")
    parts = [_read_batch(root / f"data_batch_{i}") for i in range(1, 6)]
    test_x, test_y = _read_batch(root / "test_batch")
    train = TensorSet(resize_uint8(torch.from_numpy(np.concatenate([p[0] for p in parts])), resolution),
                      torch.from_numpy(np.concatenate([p[1] for p in parts])))
    test = TensorSet(resize_uint8(torch.from_numpy(test_x), resolution), torch.from_numpy(test_y))
    res = train.x.shape[-1]
    return DataBundle(f"cifar10:{root}", train, test, CLASSES, Augment(pad=max(1, res // 8), flip=True))
