"""Data sets by name: `digits`, `imagefolder:PATH`, `cifar10:PATH`."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from tightfit.data.cifar10 import load_cifar10
from tightfit.data.digits import load_digits
from tightfit.data.imagefolder import load_imagefolder
from tightfit.data.tensors import DataBundle
from tightfit.errors import TightfitError

# name -> (needs a path, loader(path, resolution))
_DATASETS: dict[str, tuple[bool, Callable[[str | None, int | None], DataBundle]]] = {
    "digits": (False, lambda _path, res: load_digits(res)),
    "imagefolder": (True, lambda path, res: load_imagefolder(Path(path or ""), res)),
    "cifar10": (True, lambda path, res: load_cifar10(Path(path or ""), res)),
}


def dataset_names() -> tuple[str, ...]:
    return tuple(_DATASETS)


def load_dataset(spec: str, resolution: int | None = None) -> DataBundle:
    """Load a data set from its spec, for example `digits` or `imagefolder:/data/cifar10`."""
    name, _, path = spec.partition(":")
    usage = "digits, imagefolder:PATH or cifar10:PATH"
    if name not in _DATASETS:
        raise TightfitError(f"unknown data set {spec!r}; use {usage}")
    needs_path, loader = _DATASETS[name]
    if needs_path and not path:
        raise TightfitError(f"data set {name!r} needs a path: {name}:PATH")
    if not needs_path and path:
        raise TightfitError(f"data set {name!r} takes no path; write just {name}")
    if resolution is not None and resolution < 4:
        raise TightfitError(f"resolution {resolution} is too small; use at least 4 pixels")
    return loader(path or None, resolution)
