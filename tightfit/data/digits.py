"""scikit-learn's bundled 8x8 handwritten digits: the embedded default, needing no data of the user's."""

from __future__ import annotations

import torch

from tightfit.data.resize import resize_uint8
from tightfit.data.split import stratified_split
from tightfit.data.tensors import Augment, DataBundle, TensorSet

TEST_FRACTION = 0.2
TEST_SEED = 20  # fixed, so that every run reports on the same untouched test images


def load_digits(resolution: int | None = None) -> DataBundle:
    from sklearn.datasets import load_digits as sklearn_digits  # deferred: sklearn is slow to import

    raw = sklearn_digits()
    x = torch.from_numpy(raw.images).mul(255.0 / 16.0).round().clamp(0, 255).to(torch.uint8)[:, None]
    x = resize_uint8(x, resolution)
    y = torch.from_numpy(raw.target).long()
    train_idx, test_idx = stratified_split(y, TEST_FRACTION, TEST_SEED)
    classes = tuple(str(c) for c in range(10))
    # No flips: a mirrored digit is another symbol. One pixel of shift at 8x8.
    pad = max(1, x.shape[-1] // 8)
    return DataBundle("digits", TensorSet(x[train_idx], y[train_idx]), TensorSet(x[test_idx], y[test_idx]),
                      classes, Augment(pad=pad, flip=False))
