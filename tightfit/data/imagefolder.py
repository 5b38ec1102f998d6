"""`PATH/train/<class>/*` and `PATH/test/<class>/*` (or `val/`) image folders, decoded once and cached.

Decoding tens of thousands of JPEGs takes far longer than an epoch of a small network, so the decoded
uint8 tensors are kept in memory and on disk (safetensors), keyed by the folder's path, the resolution
and every file's name, size and modification time: edit a file and the cache is rebuilt.
"""

from __future__ import annotations

import hashlib
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import torch

from tightfit.data.tensors import Augment, DataBundle, TensorSet
from tightfit.errors import TightfitError
from tightfit.fileio import atomic_path

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm"}
_MEMORY: dict[str, DataBundle] = {}


def default_cache_dir() -> Path:
    return Path(os.environ.get("TIGHTFIT_CACHE", Path.home() / ".cache" / "tightfit")) / "datasets"


def _list_split(split_dir: Path, classes: tuple[str, ...]) -> list[tuple[Path, int]]:
    files = []
    for label, cls in enumerate(classes):
        for entry in sorted(os.scandir(split_dir / cls), key=lambda e: e.name):
            if entry.is_file() and Path(entry.name).suffix.lower() in IMAGE_SUFFIXES:
                files.append((Path(entry.path), label))
    return files


def _decode(job: tuple[str, int]) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    path, resolution = job
    try:
        with Image.open(path) as img:
            img = img.convert("RGB")
            if img.size != (resolution, resolution):
                img = img.resize((resolution, resolution), Image.Resampling.BILINEAR)
            return np.asarray(img, dtype=np.uint8).transpose(2, 0, 1).copy()  # (C, H, W)
    except (UnidentifiedImageError, OSError, SyntaxError) as err:
        raise TightfitError(f"image file {path} cannot be decoded ({err}); remove or replace it") from None


def _decode_all(files: list[tuple[Path, int]], resolution: int) -> TensorSet:
    from tqdm import tqdm

    jobs = [(str(p), resolution) for p, _ in files]
    workers = max(1, min(os.cpu_count() or 1, 8))
    with ProcessPoolExecutor(workers) as pool:
        arrays = list(tqdm(pool.map(_decode, jobs, chunksize=256), total=len(jobs), desc="decoding images",
                           unit="img", leave=False))
    x = torch.from_numpy(np.stack(arrays)) if arrays else torch.zeros(0, 3, resolution, resolution, dtype=torch.uint8)
    return TensorSet(x, torch.tensor([label for _, label in files], dtype=torch.int64))


def _fingerprint(root: Path, resolution: int, files: list[tuple[Path, int]]) -> str:
    digest = hashlib.sha1(f"{root.resolve()}|{resolution}".encode())
    for path, label in files:
        st = path.stat()
        digest.update(f"{path.relative_to(root)}|{label}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:20]


def load_imagefolder(root: str | Path, resolution: int | None = None, cache_dir: Path | None = None) -> DataBundle:
    root = Path(root).expanduser()
    resolution = resolution or 32
    train_dir = root / "train"
    test_dir = next((root / d for d in ("test", "val") if (root / d).is_dir()), None)
    if not root.is_dir():
        raise TightfitError(f"image folder {root} does not exist; pass imagefolder:PATH with PATH/train and PATH/test")
    if not train_dir.is_dir() or test_dir is None:
        raise TightfitError(f"image folder {root} needs subfolders train/ and test/ (or val/), one folder per class")
    classes = tuple(sorted(d.name for d in train_dir.iterdir() if d.is_dir()))
    if not classes:
        raise TightfitError(f"{train_dir} has no class folders; put the images of each class in train/<class>/")
    missing = [c for c in classes if not (test_dir / c).is_dir()]
    if missing:
        raise TightfitError(f"{test_dir} lacks class folders {missing}; test/ must have the classes of train/")
    train_files, test_files = _list_split(train_dir, classes), _list_split(test_dir, classes)
    if not train_files or not test_files:
        raise TightfitError(f"image folder {root} has no images in train/ or test/ (suffixes {sorted(IMAGE_SUFFIXES)})")

    key = _fingerprint(root, resolution, train_files + test_files)
    if key in _MEMORY:
        return _MEMORY[key]
    cache = (cache_dir or default_cache_dir()) / f"imagefolder-{key}.safetensors"
    train, test = _load_cache(cache)
    if train is None or test is None:
        train, test = _decode_all(train_files, resolution), _decode_all(test_files, resolution)
        _save_cache(cache, train, test)
    bundle = DataBundle(f"imagefolder:{root}", train, test, classes,
                        Augment(pad=max(1, resolution // 8), flip=True))
    _MEMORY[key] = bundle
    return bundle


def _load_cache(path: Path) -> tuple[TensorSet | None, TensorSet | None]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    if not path.exists():
        return None, None
    try:
        t = load_file(path)
        return TensorSet(t["train_x"], t["train_y"]), TensorSet(t["test_x"], t["test_y"])
    except (SafetensorError, KeyError, AssertionError, OSError):
        return None, None  # a corrupt or stale cache is rebuilt, not trusted


def _save_cache(path: Path, train: TensorSet, test: TensorSet) -> None:
    from safetensors.torch import save_file

    tensors = {"train_x": train.x, "train_y": train.y, "test_x": test.x, "test_y": test.y}
    try:
        with atomic_path(path) as tmp:
            save_file({k: v.contiguous() for k, v in tensors.items()}, str(tmp))
    except OSError:
        pass  # an unwritable cache only costs the next run a decode
