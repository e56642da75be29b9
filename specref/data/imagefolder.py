"""An ImageNet-style folder of image files, read lazily.

``root/train/<class>/<image>`` and ``root/val/<class>/<image>``: one subfolder per class, class
names and label order from the sorted subfolder names of ``train/`` (a ``val/`` class missing
from ``train/`` is an error). Files with an image suffix (``IMAGE_SUFFIXES``, any case) are read,
in sorted order within each class; other files and hidden entries are ignored. ``train_x`` /
``test_x`` are :class:`~specref.data.lazy_images.LazyImages`: nothing is decoded until a batch is
asked for, so the set never has to fit in memory (labels and paths do).

Normalization stats come from a deterministic sample: ``stats_sample`` training images (all if
fewer), chosen as ``np.sort(np.random.default_rng(0).choice(n, k, replace=False))``, decoded at
the target size; mean and std are per channel over all their pixels, in [0, 1] units.

Augmentation (on by default for training batches): random crop from the image zero-padded by
``size // 8`` pixels (4 for the default 32), then a horizontal flip with p = 1/2.
"""
from __future__ import annotations

import numpy as np

from ..checks import check_positive_int
from .dataset import Dataset
from .errors import DataError
from .lazy_images import LazyImages
from .normalize import channel_stats
from .paths import require_root

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".ppm", ".pgm", ".tif", ".tiff", ".webp"}
STATS_SEED = 0
EXPECTED = "train/ and val/ folders with one subfolder of images per class"


def load_imagefolder(root=None, *, size=32, augment=True, stats_sample=1000):
    """Dataset "imagefolder": lazy (3, size, size) images, classes = train/ subfolder names."""
    folder = require_root("imagefolder", root, EXPECTED)
    size = check_positive_int(size, "size")
    stats_sample = check_positive_int(stats_sample, "stats_sample")
    classes = _class_folders(folder / "train")
    train_paths, train_labels = _scan_split(folder / "train", classes)
    test_paths, test_labels = _scan_split(folder / "val", classes)
    mean, std = channel_stats(LazyImages(_stats_sample(train_paths, stats_sample), size), 1.0)
    return Dataset("imagefolder", LazyImages(train_paths, size, mean, std), train_labels,
                   LazyImages(test_paths, size, mean, std), test_labels, classes, mean, std,
                   augment=augment, crop_padding=size // 8, flip=True)


def _class_folders(split):
    if not split.is_dir():
        raise DataError(split, "missing split folder (imagefolder needs train/ and val/)")
    classes = sorted(p.name for p in split.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise DataError(split, "no class subfolders")
    return classes


def _scan_split(split, classes):
    """(paths, labels) of one split, class by class, files sorted by name."""
    unknown = sorted(set(_class_folders(split)) - set(classes))
    if unknown:
        raise DataError(split, f"class folders {unknown} are not in train/ (classes: {classes})")
    paths, labels = [], []
    for label, name in enumerate(classes):
        folder = split / name
        if not folder.is_dir():
            continue
        files = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")
                       and p.suffix.lower() in IMAGE_SUFFIXES)
        paths += files
        labels += [label] * len(files)
    if not paths:
        raise DataError(split, f"no image files (suffixes: {sorted(IMAGE_SUFFIXES)})")
    return paths, np.asarray(labels, dtype=np.int64)


def _stats_sample(paths, count):
    chosen = np.random.default_rng(STATS_SEED).choice(len(paths), size=min(count, len(paths)), replace=False)
    return [paths[i] for i in np.sort(chosen)]
