"""SVHN (Street View House Numbers), cropped-digits format, from the user's .mat files.

``root`` holds ``train_32x32.mat`` and ``test_32x32.mat`` (MATLAB v5, read with
``scipy.io.loadmat``): "X" is (32, 32, 3, N) uint8 (height, width, RGB, image) and "y" is (N, 1)
with labels 1..10, where 10 stands for the digit 0; classes are "0".."9". The "extra" split is not
read. Pixels are divided by 255, then normalized with the training split's per-channel stats.
No augmentation by default; ``augment=True`` gives random crops of the 4-pixel zero-padded image
and never flips (a mirrored digit is not the same digit).
"""
from __future__ import annotations

import numpy as np

from .dataset import Dataset
from .errors import DataError
from .normalize import normalize_splits
from .paths import require_file, require_root

EXPECTED = "train_32x32.mat and test_32x32.mat"


def load_svhn(root=None, *, augment=False):
    """Dataset "svhn": (3, 32, 32) images, classes "0".."9"."""
    folder = require_root("svhn", root, EXPECTED)
    train_images, train_labels = read_mat(require_file(folder / "train_32x32.mat", "SVHN training file"))
    test_images, test_labels = read_mat(require_file(folder / "test_32x32.mat", "SVHN test file"))
    train_x, test_x, mean, std = normalize_splits(train_images, test_images, 255.0)
    return Dataset("svhn", train_x, train_labels, test_x, test_labels, [str(d) for d in range(10)],
                   mean, std, augment=augment, crop_padding=4, flip=False)


def read_mat(path):
    """(images (N, 3, 32, 32) uint8 view, labels (N,) int64 in 0..9) of one SVHN .mat file."""
    from scipy.io import loadmat

    try:
        contents = loadmat(path, variable_names=["X", "y"])
    except NotImplementedError:
        raise DataError(path, "MATLAB v7.3 (HDF5) files are not supported; save it as v5 "
                              "(the official SVHN files are v5)") from None
    except Exception as exc:  # scipy raises several types for a corrupt file
        raise DataError(path, f"not a readable .mat file ({type(exc).__name__}: {exc})") from None
    for key in ("X", "y"):
        if key not in contents:
            found = sorted(k for k in contents if not k.startswith("__"))
            raise DataError(path, f"missing key {key!r} (found: {found})")
    images, labels = contents["X"], contents["y"]
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[:3] != (32, 32, 3):
        raise DataError(path, f"wrong shape: 'X' must be uint8 of shape (32, 32, 3, N), "
                              f"got {images.dtype} of shape {images.shape}")
    count = images.shape[3]
    if labels.ndim > 2 or labels.size != count or (labels.ndim == 2 and 1 not in labels.shape):
        raise DataError(path, f"wrong shape: 'y' must be ({count}, 1) to match 'X', got {labels.shape}")
    return images.transpose(3, 2, 0, 1), _digit_labels(path, labels.reshape(-1))


def _digit_labels(path, labels):
    """SVHN labels 1..10 -> digits 0..9 (10 means 0)."""
    fractional = labels.dtype.kind == "f" and not np.all(labels == np.round(labels))
    if labels.dtype.kind not in "iuf" or fractional:
        raise DataError(path, f"'y' must hold integer labels 1..10, got dtype {labels.dtype}")
    bad = np.flatnonzero((labels < 1) | (labels > 10))
    if bad.size:
        raise DataError(path, f"label out of range: entry {bad[0]} of 'y' is {labels[bad[0]]}, "
                              f"expected 1..10 (10 meaning the digit 0; {bad.size} such entries)")
    return labels.astype(np.int64) % 10
