"""Data: the embedded digits, seeded splits, batch augmentation and loading, image folders with their cache,
CIFAR-10 batches read safely, and the data set registry."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from tightfit.data import (
    Augment,
    BatchLoader,
    DataBundle,
    Normalize,
    TensorSet,
    augment_batch,
    dataset_names,
    load_dataset,
    split_validation,
    stratified_split,
)
from tightfit.data import imagefolder as imagefolder_module
from tightfit.data.cifar10 import CLASSES, load_cifar10
from tightfit.data.digits import load_digits
from tightfit.data.imagefolder import load_imagefolder
from tightfit.errors import TightfitError

# -- digits -------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def digits() -> DataBundle:
    return load_digits()


def test_digits_shapes_and_split(digits: DataBundle) -> None:
    assert digits.train.x.shape == (1438, 1, 8, 8) and digits.test.x.shape == (359, 1, 8, 8)
    assert digits.train.x.dtype == torch.uint8 and digits.train.y.dtype == torch.int64
    assert digits.classes == tuple(str(c) for c in range(10)) and digits.num_classes == 10
    assert set(digits.train.y.tolist()) == set(digits.test.y.tolist()) == set(range(10))
    assert int(digits.train.x.max()) == 255 and int(digits.train.x.min()) == 0
    assert (digits.in_channels, digits.resolution) == (1, 8)
    assert digits.augment == Augment(pad=1, flip=False)
    # train and test are disjoint images of the 1797 in scikit-learn's set
    train_rows = {bytes(r) for r in digits.train.x.flatten(1).numpy()}
    test_rows = {bytes(r) for r in digits.test.x.flatten(1).numpy()}
    assert len(train_rows | test_rows) > 1700  # few exact duplicates exist in the raw data
    from sklearn.datasets import load_digits as sk

    raw = sk()
    assert len(digits.train) + len(digits.test) == len(raw.target)


def test_digits_are_deterministic(digits: DataBundle) -> None:
    again = load_digits()
    assert torch.equal(again.train.x, digits.train.x) and torch.equal(again.train.y, digits.train.y)
    assert torch.equal(again.test.x, digits.test.x) and torch.equal(again.test.y, digits.test.y)


def test_digits_resize() -> None:
    big = load_dataset("digits", 16)
    assert big.train.x.shape == (1438, 1, 16, 16) and big.train.x.dtype == torch.uint8
    assert big.augment.pad == 2


# -- splits -------------------------------------------------------------------------------------------------


def _imbalanced_labels() -> torch.Tensor:
    counts = [50, 7, 23, 1, 100, 13]
    y = torch.cat([torch.full((n,), c) for c, n in enumerate(counts)])
    return y[torch.randperm(len(y), generator=torch.Generator().manual_seed(0))]


@pytest.mark.parametrize("fraction", [0.1, 0.25, 0.5])
def test_stratified_split(fraction: float) -> None:
    y = _imbalanced_labels()
    keep, held = stratified_split(y, fraction, seed=3)
    keep2, held2 = stratified_split(y, fraction, seed=3)
    assert torch.equal(keep, keep2) and torch.equal(held, held2)
    other_keep, _ = stratified_split(y, fraction, seed=4)
    assert not torch.equal(keep, other_keep)
    assert set(keep.tolist()).isdisjoint(held.tolist())
    assert sorted(keep.tolist() + held.tolist()) == list(range(len(y)))
    assert torch.equal(keep, keep.sort().values) and torch.equal(held, held.sort().values)
    for cls in range(6):
        n_cls = int((y == cls).sum())
        n_held = int((y[held] == cls).sum())
        assert abs(n_held - fraction * n_cls) <= 1
    assert abs(len(held) - fraction * len(y)) <= 6


def test_split_validation() -> None:
    y = _imbalanced_labels()
    ids = torch.arange(len(y))
    x = torch.stack([ids // 256, ids % 256], 1).to(torch.uint8).view(-1, 1, 1, 2)  # each image unique
    train = TensorSet(x, y)
    fit, val = split_validation(train, 0.2, seed=1)
    assert len(fit) + len(val) == len(train)
    fit_ids = {tuple(r) for r in fit.x.flatten(1).tolist()}
    val_ids = {tuple(r) for r in val.x.flatten(1).tolist()}
    assert fit_ids.isdisjoint(val_ids) and len(fit_ids | val_ids) == len(train)
    # labels travel with their images
    lookup = {tuple(r): int(label) for r, label in zip(x.flatten(1).tolist(), y, strict=True)}
    assert all(lookup[tuple(r)] == int(label) for r, label in zip(val.x.flatten(1).tolist(), val.y, strict=True))
    fit2, val2 = split_validation(train, 0.2, seed=1)
    assert torch.equal(val.x, val2.x) and torch.equal(fit.y, fit2.y)
    for bad in (0.0, 1.0, -0.1, 1.5):
        with pytest.raises(ValueError):
            split_validation(train, bad)


# -- augmentation -------------------------------------------------------------------------------------------


def _position_images(b: int, h: int = 6, w: int = 6) -> torch.Tensor:
    """Channel 0 holds 1 + the pixel's position, channel 1 that plus 100; 0 never occurs."""
    pos = 1 + torch.arange(h * w).view(h, w)
    return torch.stack([pos, pos + 100]).expand(b, 2, h, w).to(torch.uint8).clone()


def test_augment_without_pad_or_flip_is_the_identity() -> None:
    x = torch.randint(0, 256, (5, 3, 7, 7), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    out = augment_batch(x, Augment(0, False), torch.Generator().manual_seed(0))
    assert torch.equal(out, x)


def _shift_of(out: torch.Tensor, src: torch.Tensor, pad: int) -> tuple[int, int] | None:
    """The (dy, dx) with out[:, i, j] == src[:, i + dy, j + dx] (0 outside), if there is one."""
    _, h, w = src.shape
    for dy in range(-pad, pad + 1):
        for dx in range(-pad, pad + 1):
            expected = torch.zeros_like(src)
            ys, xs = slice(max(0, -dy), min(h, h - dy)), slice(max(0, -dx), min(w, w - dx))
            ys_src, xs_src = slice(max(0, dy), min(h, h + dy)), slice(max(0, dx), min(w, w + dx))
            expected[:, ys, xs] = src[:, ys_src, xs_src]
            if torch.equal(out, expected):
                return dy, dx
    return None


@pytest.mark.parametrize("pad", [1, 2])
def test_random_crop_shifts_whole_images_and_pads_with_zeros(pad: int) -> None:
    # a batch of all-distinct values: every output pixel is some input pixel of the same image, or 0
    b, c, h, w = 4, 2, 5, 5
    x = (1 + torch.randperm(b * c * h * w, generator=torch.Generator().manual_seed(1))).view(b, c, h, w)
    x = x.to(torch.uint8)
    out = augment_batch(x, Augment(pad, False), torch.Generator().manual_seed(2))
    assert out.shape == x.shape and out.dtype == torch.uint8
    for i in range(b):
        allowed = set(x[i].flatten().tolist()) | {0}
        assert set(out[i].flatten().tolist()) <= allowed
        assert _shift_of(out[i], x[i], pad) is not None

    # over a big batch, every shift in [-pad, pad]^2 occurs, each image moved as a whole
    big = _position_images(600)
    out = augment_batch(big, Augment(pad, False), torch.Generator().manual_seed(3))
    shifts = [_shift_of(out[i], big[i], pad) for i in range(len(big))]
    assert None not in shifts
    assert set(shifts) == {(dy, dx) for dy in range(-pad, pad + 1) for dx in range(-pad, pad + 1)}


def test_flip_flips_about_half() -> None:
    x = _position_images(2000)
    out = augment_batch(x, Augment(0, True), torch.Generator().manual_seed(0))
    flipped = (out == x.flip(3)).flatten(1).all(1)
    same = (out == x).flatten(1).all(1)
    assert bool((flipped ^ same).all())  # each image is either untouched or mirrored left-right
    assert 0.45 < flipped.float().mean().item() < 0.55
    again = augment_batch(x, Augment(0, True), torch.Generator().manual_seed(0))
    assert torch.equal(out, again)
    other = augment_batch(x, Augment(0, True), torch.Generator().manual_seed(1))
    assert not torch.equal(out, other)


def test_crop_and_flip_together_keep_shape() -> None:
    x = _position_images(64, 8, 8)
    out = augment_batch(x, Augment(1, True), torch.Generator().manual_seed(0))
    assert out.shape == x.shape
    for i in range(len(x)):
        assert _shift_of(out[i], x[i], 1) is not None or _shift_of(out[i].flip(2), x[i], 1) is not None


# -- normalisation and loading -------------------------------------------------------------------------------


def test_normalize_formula() -> None:
    norm = Normalize((0.5, 0.25), (0.25, 0.5))
    x = torch.tensor([0, 255], dtype=torch.uint8).view(1, 1, 1, 2).expand(1, 2, 1, 2)
    out = norm(x)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out[0, 0, 0], torch.tensor([-2.0, 2.0]))
    torch.testing.assert_close(out[0, 1, 0], torch.tensor([-0.5, 1.5]))


def test_normalize_standardises_the_training_set(digits: DataBundle) -> None:
    out = Normalize(*digits.channel_stats())(digits.train.x)
    assert abs(out.mean().item()) < 1e-4
    assert abs(out.std().item() - 1) < 1e-3

    gen = torch.Generator().manual_seed(0)
    x = torch.stack([torch.randint(lo, hi, (40, 5, 5), generator=gen) for lo, hi in ((0, 50), (100, 256), (0, 256))],
                    1).to(torch.uint8)
    bundle = DataBundle("toy", TensorSet(x, torch.zeros(40, dtype=torch.int64)), TensorSet(x, torch.zeros(40).long()),
                        ("a",), Augment())
    mean, std = bundle.channel_stats()
    assert mean[0] < 0.2 < mean[2] < mean[1]
    out = Normalize(mean, std)(x).transpose(0, 1).flatten(1)
    torch.testing.assert_close(out.mean(1), torch.zeros(3), atol=1e-4, rtol=0)
    torch.testing.assert_close(out.std(1), torch.ones(3), atol=1e-3, rtol=0)


def _indexed_set(n: int, channels: int = 1, size: int = 4) -> TensorSet:
    """Labels are the sample's index, so that batches show exactly which samples they hold."""
    x = torch.randint(0, 256, (n, channels, size, size), dtype=torch.uint8, generator=torch.Generator().manual_seed(n))
    return TensorSet(x, torch.arange(n))


NORM = Normalize((0.5,), (0.25,))


@pytest.mark.parametrize("n, world_size, batch", [(103, 2, 8), (10, 3, 4), (2, 4, 1)])
def test_eval_shards_are_disjoint_and_exact(n: int, world_size: int, batch: int) -> None:
    data = _indexed_set(n)
    seen = []
    for rank in range(world_size):
        loader = BatchLoader(data, batch, NORM, rank=rank, world_size=world_size)
        batches = list(loader)
        assert len(batches) == len(loader)
        for x, y in batches:
            assert x.dtype == torch.float32 and len(x) == len(y) <= batch
            torch.testing.assert_close(x, NORM(data.x[y]))  # images stay with their labels
        seen += [int(i) for _, y in batches for i in y]
    assert sorted(seen) == list(range(n))  # every sample exactly once over all ranks


@pytest.mark.parametrize("n, world_size, batch", [(103, 2, 8), (10, 3, 4), (1, 4, 2)])
def test_train_shards_are_even_and_cover_everything(n: int, world_size: int, batch: int) -> None:
    data = _indexed_set(n)
    loaders = [BatchLoader(data, batch, NORM, shuffle=True, seed=5, rank=r, world_size=world_size)
               for r in range(world_size)]
    counts = []
    seen = []
    for loader in loaders:
        batches = list(loader)
        assert len(batches) == len(loader)
        counts.append((len(batches), sum(len(y) for _, y in batches)))
        seen += [int(i) for _, y in batches for i in y]
    assert len(set(counts)) == 1  # every rank steps the same number of times over the same number of samples
    assert set(seen) == set(range(n))
    assert len(seen) == world_size * -(-n // world_size)


def test_train_order_is_seeded_per_epoch() -> None:
    data = _indexed_set(64)

    def order(seed: int, epoch: int, rank: int = 0) -> list[int]:
        loader = BatchLoader(data, 16, NORM, augment=Augment(1, True), shuffle=True, seed=seed, rank=rank,
                             world_size=2)
        loader.set_epoch(epoch)
        return [int(i) for _, y in loader for i in y]

    assert order(0, 0) == order(0, 0)
    assert order(0, 0) != order(0, 1)
    assert order(0, 0) != order(1, 0)
    assert sorted(order(0, 0) + order(0, 0, rank=1)) == list(range(64))
    assert order(0, 1) != sorted(order(0, 1))  # shuffled

    # augmentation is seeded too
    loader = BatchLoader(data, 16, NORM, augment=Augment(1, True), shuffle=True, seed=2)
    first = [x for x, _ in loader]
    second = [x for x, _ in loader]
    assert all(torch.equal(a, b) for a, b in zip(first, second, strict=True))
    plain = BatchLoader(data, 16, NORM, shuffle=True, seed=2)
    assert not all(torch.equal(a, b) for (a, _), b in zip(plain, first, strict=True))


def test_eval_loader_is_in_order_and_unaugmented() -> None:
    data = _indexed_set(20)
    xs, ys = zip(*BatchLoader(data, 6, NORM), strict=True)
    assert torch.equal(torch.cat(ys), torch.arange(20))
    torch.testing.assert_close(torch.cat(xs), NORM(data.x))


@pytest.mark.parametrize("channels_last", [True, False])
def test_channels_last(channels_last: bool) -> None:
    data = _indexed_set(10, channels=3)
    for x, _ in BatchLoader(data, 4, Normalize((0.5,) * 3, (0.25,) * 3), channels_last=channels_last):
        assert x.is_contiguous(memory_format=torch.channels_last) is channels_last
        assert x.is_contiguous() is not channels_last


# -- image folders -------------------------------------------------------------------------------------------

COLOURS = {"zebra": (250, 10, 10), "ant": (10, 10, 240)}  # "zebra" is made first; classes come out sorted


@pytest.fixture(autouse=True)
def _fresh_memory_cache():
    imagefolder_module._MEMORY.clear()
    yield
    imagefolder_module._MEMORY.clear()


def _make_folder(root: Path, test_name: str = "test", n: dict | None = None) -> Path:
    from PIL import Image

    n = n or {"train": 3, test_name: 2}
    for split, count in n.items():
        for cls, colour in COLOURS.items():
            folder = root / split / cls
            folder.mkdir(parents=True)
            for i in range(count):
                suffix = "png" if i % 2 == 0 else "jpg"
                Image.new("RGB", (10, 10), colour).save(folder / f"img{i}.{suffix}")
            (folder / "notes.txt").write_text("not an image")
    return root


def _check_bundle(bundle: DataBundle, n_train: int = 3, n_test: int = 2) -> None:
    assert bundle.classes == ("ant", "zebra")
    assert bundle.train.x.shape == (2 * n_train, 3, 8, 8) and bundle.train.x.dtype == torch.uint8
    assert bundle.test.x.shape == (2 * n_test, 3, 8, 8)
    assert bundle.train.y.tolist() == [0] * n_train + [1] * n_train
    assert bundle.test.y.tolist() == [0] * n_test + [1] * n_test
    for part in (bundle.train, bundle.test):
        means = part.x.float().mean((2, 3))  # (N, 3)
        for label, cls in enumerate(bundle.classes):
            expected = torch.tensor(COLOURS[cls], dtype=torch.float32)
            assert (means[part.y == label] - expected).abs().max() < 8  # JPEG is lossy
    assert bundle.augment == Augment(pad=1, flip=True)


@pytest.fixture
def counted_decode(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls: list[int] = []
    original = imagefolder_module._decode_all

    def counting(files, resolution):
        calls.append(len(files))
        return original(files, resolution)

    monkeypatch.setattr(imagefolder_module, "_decode_all", counting)
    return calls


def _refuse_decoding(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(files, resolution):
        raise AssertionError("decoded although a cache should have been used")

    monkeypatch.setattr(imagefolder_module, "_decode_all", refuse)


def test_imagefolder_loads(tmp_path: Path) -> None:
    root = _make_folder(tmp_path / "data")
    bundle = load_imagefolder(root, 8, tmp_path / "cache")
    _check_bundle(bundle)
    assert bundle.name == f"imagefolder:{root}"


def test_imagefolder_accepts_val(tmp_path: Path) -> None:
    root = _make_folder(tmp_path / "data", "val", {"train": 2, "val": 1})
    _check_bundle(load_imagefolder(root, 8, tmp_path / "cache"), 2, 1)


def test_imagefolder_through_the_registry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TIGHTFIT_CACHE", str(tmp_path / "cache"))
    root = _make_folder(tmp_path / "data")
    _check_bundle(load_dataset(f"imagefolder:{root}", 8))
    assert list((tmp_path / "cache" / "datasets").glob("imagefolder-*.safetensors"))


def test_imagefolder_cache_on_disk_and_in_memory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                 counted_decode: list[int]) -> None:
    root, cache = _make_folder(tmp_path / "data"), tmp_path / "cache"
    first = load_imagefolder(root, 8, cache)
    assert counted_decode == [6, 4]
    assert len(list(cache.glob("*.safetensors"))) == 1
    assert load_imagefolder(root, 8, cache) is first  # in memory
    assert counted_decode == [6, 4]

    imagefolder_module._MEMORY.clear()
    _refuse_decoding(monkeypatch)
    second = load_imagefolder(root, 8, cache)  # from disk
    assert second is not first
    assert torch.equal(second.train.x, first.train.x) and torch.equal(second.test.y, first.test.y)
    _check_bundle(second)


@pytest.mark.parametrize("change", ["mtime", "size", "new file", "resolution"])
def test_imagefolder_cache_is_invalidated(tmp_path: Path, counted_decode: list[int], change: str) -> None:
    from PIL import Image

    root, cache = _make_folder(tmp_path / "data"), tmp_path / "cache"
    load_imagefolder(root, 8, cache)
    imagefolder_module._MEMORY.clear()
    assert len(counted_decode) == 2
    target = root / "train" / "ant" / "img0.png"
    resolution = 8
    if change == "mtime":
        st = target.stat()
        os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))
    elif change == "size":
        Image.new("RGB", (12, 12), COLOURS["ant"]).save(target)
    elif change == "new file":
        Image.new("RGB", (10, 10), COLOURS["ant"]).save(root / "test" / "ant" / "extra.png")
    else:
        resolution = 4
    bundle = load_imagefolder(root, resolution, cache)
    assert len(counted_decode) == 4  # decoded again
    assert bundle.train.x.shape[-1] == resolution
    assert len(list(cache.glob("*.safetensors"))) == 2


def test_corrupt_cache_is_rebuilt(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                  counted_decode: list[int]) -> None:
    root, cache = _make_folder(tmp_path / "data"), tmp_path / "cache"
    first = load_imagefolder(root, 8, cache)
    (cache_file,) = cache.glob("*.safetensors")
    for garbage in (b"garbage, not safetensors" * 10, cache_file.read_bytes()[:40], b""):
        imagefolder_module._MEMORY.clear()
        cache_file.write_bytes(garbage)
        calls = len(counted_decode)
        again = load_imagefolder(root, 8, cache)
        assert len(counted_decode) == calls + 2
        assert torch.equal(again.train.x, first.train.x)
    # and the rebuilt cache is good again
    imagefolder_module._MEMORY.clear()
    _refuse_decoding(monkeypatch)
    assert torch.equal(load_imagefolder(root, 8, cache).test.x, first.test.x)


def test_corrupt_image_is_named(tmp_path: Path) -> None:
    root = _make_folder(tmp_path / "data")
    (root / "train" / "zebra" / "x.jpg").write_bytes(b"\xff\xd8 these are not the bytes of a JPEG")
    with pytest.raises(TightfitError, match=r"x\.jpg"):
        load_imagefolder(root, 8, tmp_path / "cache")


def test_imagefolder_layout_errors(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    with pytest.raises(TightfitError, match="does not exist"):
        load_imagefolder(tmp_path / "missing", 8, cache)

    no_test = _make_folder(tmp_path / "no_test", n={"train": 1})
    with pytest.raises(TightfitError, match="test/"):
        load_imagefolder(no_test, 8, cache)

    no_train = _make_folder(tmp_path / "no_train", n={"test": 1})
    with pytest.raises(TightfitError, match="train/"):
        load_imagefolder(no_train, 8, cache)

    missing_class = _make_folder(tmp_path / "missing_class")
    for f in (missing_class / "test" / "zebra").iterdir():
        f.unlink()
    (missing_class / "test" / "zebra").rmdir()
    with pytest.raises(TightfitError, match="zebra"):
        load_imagefolder(missing_class, 8, cache)

    no_classes = tmp_path / "no_classes"
    (no_classes / "train").mkdir(parents=True)
    (no_classes / "test").mkdir()
    with pytest.raises(TightfitError, match="no class folders"):
        load_imagefolder(no_classes, 8, cache)

    no_images = _make_folder(tmp_path / "no_images", n={"train": 0, "test": 0})
    with pytest.raises(TightfitError, match="no images"):
        load_imagefolder(no_images, 8, cache)


# -- CIFAR-10 ------------------------------------------------------------------------------------------------


def _write_batch(path: Path, n: int, first_label: int, protocol: int = 2) -> None:
    labels = [(first_label + i) % 10 for i in range(n)]
    data = np.stack([np.full(3072, 20 * (label % 10) + 1, dtype=np.uint8) for label in labels])
    data[:, 1024:2048] += 5  # the green plane differs, to check the (C, H, W) layout
    with open(path, "wb") as f:
        pickle.dump({b"batch_label": b"fake", b"data": data, b"labels": labels}, f, protocol=protocol)


def _make_cifar(root: Path, protocol: int = 2) -> Path:
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    for i in range(1, 6):
        _write_batch(folder / f"data_batch_{i}", 4, i, protocol)
    _write_batch(folder / "test_batch", 3, 7, protocol)
    return folder


@pytest.mark.parametrize("protocol", [2, 4])
def test_cifar10_loads(tmp_path: Path, protocol: int) -> None:
    folder = _make_cifar(tmp_path, protocol)
    bundle = load_cifar10(tmp_path)
    assert bundle.train.x.shape == (20, 3, 32, 32) and bundle.train.x.dtype == torch.uint8
    assert bundle.test.x.shape == (3, 3, 32, 32)
    assert bundle.train.y.tolist() == [(b + i) % 10 for b in range(1, 6) for i in range(4)]
    assert bundle.test.y.tolist() == [7, 8, 9]
    for x, y in zip(bundle.train.x, bundle.train.y, strict=True):
        value = 20 * int(y) + 1
        assert (x[0] == value).all() and (x[1] == value + 5).all() and (x[2] == value).all()
    assert bundle.classes == CLASSES and len(CLASSES) == 10
    assert bundle.augment == Augment(pad=4, flip=True)
    # the folder itself works too, and so does the registry, with resizing
    assert torch.equal(load_cifar10(folder).test.x, bundle.test.x)
    small = load_dataset(f"cifar10:{folder}", 16)
    assert small.train.x.shape == (20, 3, 16, 16) and small.augment.pad == 2
    assert torch.equal(small.train.y, bundle.train.y)


def test_cifar10_missing_folder_and_batch(tmp_path: Path) -> None:
    with pytest.raises(TightfitError, match="does not exist"):
        load_cifar10(tmp_path / "nothing")
    folder = _make_cifar(tmp_path)
    (folder / "data_batch_3").unlink()
    with pytest.raises(TightfitError, match="data_batch_3.*missing"):
        load_cifar10(tmp_path)


@pytest.mark.parametrize("content", [
    b"garbage bytes that are not a pickle",
    b"",
    pickle.dumps({b"data": np.zeros((2, 3072), np.uint8)}, protocol=2)[:-20],  # truncated
    pickle.dumps({b"data": np.zeros((2, 3072), np.uint8)}, protocol=2),  # no labels
    pickle.dumps({b"data": np.zeros((2, 100), np.uint8), b"labels": [0, 1]}, protocol=2),  # wrong image size
    pickle.dumps({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 1, 2]}, protocol=2),  # too many labels
    pickle.dumps([1, 2, 3], protocol=2),
])
def test_cifar10_corrupt_batch(tmp_path: Path, content: bytes) -> None:
    folder = _make_cifar(tmp_path)
    (folder / "test_batch").write_bytes(content)
    with pytest.raises(TightfitError, match="test_batch"):
        load_cifar10(tmp_path)


class _Evil:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_cifar10_refuses_pickles_that_run_code(tmp_path: Path) -> None:
    folder = _make_cifar(tmp_path / "data")
    marker = tmp_path / "pwned"
    with open(folder / "data_batch_2", "wb") as f:
        pickle.dump({b"data": _Evil(marker), b"labels": [0]}, f, protocol=2)
    with pytest.raises(TightfitError, match="data_batch_2.*refusing"):
        load_cifar10(folder)
    assert not marker.exists()

    (folder / "data_batch_2").write_bytes(pickle.dumps(os.system))
    with pytest.raises(TightfitError, match="data_batch_2"):
        load_cifar10(folder)


# -- registry ------------------------------------------------------------------------------------------------


def test_dataset_names() -> None:
    assert set(dataset_names()) == {"digits", "imagefolder", "cifar10"}


@pytest.mark.parametrize("spec, resolution, pattern", [
    ("nope", None, "unknown data set 'nope'.*digits, imagefolder:PATH or cifar10:PATH"),
    ("imagefolder", None, "'imagefolder' needs a path: imagefolder:PATH"),
    ("imagefolder:", None, "needs a path"),
    ("cifar10", None, "'cifar10' needs a path"),
    ("digits:/x", None, "'digits' takes no path"),
    ("digits", 2, "resolution 2 is too small"),
])
def test_load_dataset_errors(spec: str, resolution: int | None, pattern: str) -> None:
    with pytest.raises(TightfitError, match=pattern):
        load_dataset(spec, resolution)
