"""CIFAR-10 from the official binary or python version, read from files the user has.

``root`` holds either layout (or is the folder above ``cifar-10-batches-bin`` /
``cifar-10-batches-py``); when both are present the binary one is used.

- Binary: ``data_batch_1.bin`` .. ``data_batch_5.bin`` (any non-empty subset) and
  ``test_batch.bin``; records of 3,073 bytes, 1 label byte then 3,072 pixel bytes (the R, G and B
  32x32 planes, row-major), no header. Class names come from ``batches.meta.txt``, one per line,
  empty lines skipped.
- Python: pickles ``data_batch_1`` .. ``data_batch_5`` and ``test_batch``, dicts with b"data"
  (N, 3072) uint8 in the same pixel order and b"labels"; class names under b"label_names" in
  ``batches.meta``. They are read with :mod:`specref.data.safe_pickle`, never plain pickle.

Without the meta file the official names are used. Pixels are divided by 255, then normalized
with the training split's per-channel stats. Augmentation (on by default for training batches):
random 32x32 crop of the 4-pixel zero-padded image, then a horizontal flip with p = 1/2.
"""
from __future__ import annotations

import numpy as np

from .dataset import Dataset
from .errors import DataError
from .normalize import normalize_splits
from .paths import require_root
from .safe_pickle import load_pickle

CLASS_NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
PIXELS = 3 * 32 * 32
RECORD = 1 + PIXELS
TRAIN_BATCHES = [f"data_batch_{i}" for i in range(1, 6)]
EXPECTED = "CIFAR-10 batches (data_batch_*.bin and test_batch.bin, or the python data_batch_* pickles)"


def load_cifar10(root=None, *, augment=True):
    """Dataset "cifar10": (3, 32, 32) images, 10 classes."""
    folder = _batches_folder(require_root("cifar10", root, EXPECTED))
    binary = any((folder / f"{name}.bin").is_file() for name in TRAIN_BATCHES)
    suffix, read = (".bin", _read_binary) if binary else ("", _read_python)
    classes = _binary_classes(folder) if binary else _python_classes(folder)
    train_files = [folder / f"{name}{suffix}" for name in TRAIN_BATCHES]
    train_files = [path for path in train_files if path.is_file()]
    if not train_files:
        raise DataError(folder, "no CIFAR-10 training batch found: expected data_batch_1.bin .. data_batch_5.bin "
                                "(binary version) or data_batch_1 .. data_batch_5 (python version)")
    test_file = folder / f"test_batch{suffix}"
    if not test_file.is_file():
        raise DataError(test_file, "missing CIFAR-10 test batch")
    train = [read(path, len(classes)) for path in train_files]
    test_images, test_labels = read(test_file, len(classes))
    train_images = np.concatenate([images for images, _ in train])
    train_labels = np.concatenate([labels for _, labels in train])
    train_x, test_x, mean, std = normalize_splits(train_images, test_images, 255.0)
    return Dataset("cifar10", train_x, train_labels, test_x, test_labels, classes, mean, std,
                   augment=augment, crop_padding=4, flip=True)


def _batches_folder(root):
    """root, or the official archive's folder inside it when root itself holds no batch."""
    if any(root.glob("data_batch_*")) or any(root.glob("test_batch*")):
        return root
    for sub in ("cifar-10-batches-bin", "cifar-10-batches-py"):
        if (root / sub).is_dir():
            return root / sub
    return root


def _read_binary(path, num_classes):
    """(images (N, 3, 32, 32) uint8, labels (N,) int64) of one binary batch."""
    size = path.stat().st_size
    if size == 0:
        raise DataError(path, "empty file, no CIFAR-10 records")
    if size % RECORD:
        raise DataError(path, f"truncated record: size {size} bytes is not a multiple of the "
                              f"{RECORD:,}-byte record (1 label byte + {PIXELS:,} pixel bytes); "
                              f"{size // RECORD} whole records and {size % RECORD} bytes left over")
    raw = np.fromfile(path, dtype=np.uint8).reshape(-1, RECORD)
    labels = raw[:, 0].astype(np.int64)
    _check_labels(path, labels, num_classes)
    return raw[:, 1:].reshape(-1, 3, 32, 32), labels


def _read_python(path, num_classes):
    """(images, labels) of one python-version batch."""
    batch = _as_dict(path, load_pickle(path))
    data = _get(path, batch, "data")
    if not (isinstance(data, np.ndarray) and data.dtype == np.uint8 and data.ndim == 2
            and data.shape[1] == PIXELS):
        found = (f"{data.dtype} array of shape {data.shape}" if isinstance(data, np.ndarray)
                 else type(data).__name__)
        raise DataError(path, f"wrong shape: b'data' must be a uint8 array of shape (N, {PIXELS}), "
                              f"got {found}")
    labels = np.asarray(_get(path, batch, "labels"))
    if labels.ndim != 1 or labels.dtype.kind not in "iu":
        raise DataError(path, f"b'labels' must be a flat list of integers, "
                              f"got {labels.dtype} of shape {labels.shape}")
    if labels.shape[0] != data.shape[0]:
        raise DataError(path, f"wrong shapes: {data.shape[0]} images but {labels.shape[0]} labels")
    labels = labels.astype(np.int64)
    _check_labels(path, labels, num_classes)
    return data.reshape(-1, 3, 32, 32), labels


def _check_labels(path, labels, num_classes):
    bad = np.flatnonzero((labels < 0) | (labels >= num_classes))
    if bad.size:
        raise DataError(path, f"label out of range: record {bad[0]} has label {labels[bad[0]]}, expected "
                              f"0..{num_classes - 1} ({bad.size} such records)")


def _binary_classes(folder):
    path = folder / "batches.meta.txt"
    if not path.is_file():
        return list(CLASS_NAMES)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(path, f"cannot read class names ({exc})") from None
    return _check_classes(path, [line.strip() for line in lines if line.strip()])


def _python_classes(folder):
    path = folder / "batches.meta"
    if not path.is_file():
        return list(CLASS_NAMES)
    names = _get(path, _as_dict(path, load_pickle(path)), "label_names")
    if not isinstance(names, (list, tuple)) or not all(isinstance(n, (bytes, str)) for n in names):
        raise DataError(path, "b'label_names' must be a list of strings")
    return _check_classes(path, [n.decode("utf-8", "replace") if isinstance(n, bytes) else n for n in names])


def _check_classes(path, names):
    if len(names) != len(CLASS_NAMES):
        raise DataError(path, f"expected {len(CLASS_NAMES)} class names, found {len(names)}")
    return names


def _as_dict(path, obj):
    if not isinstance(obj, dict):
        raise DataError(path, f"expected a pickled dict, got {type(obj).__name__}")
    return obj


def _get(path, batch, key):
    """batch[b"key"] (Python 2 pickles) or batch["key"]; DataError naming the missing key."""
    for candidate in (key.encode(), key):
        if candidate in batch:
            return batch[candidate]
    raise DataError(path, f"missing key b{key!r} (found keys: {sorted(map(repr, batch))})")
