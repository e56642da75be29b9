"""Datasets for SpecNet: ``load(name, root=None, **options) -> Dataset``.

Every loader reads files the user already has (nothing is ever downloaded) and returns a
:class:`Dataset` of (N, C, H, W) float32 images normalized per channel with the training split's
stats, int64 labels, class names and a deterministic batch iterator. Bad or missing files raise
:class:`DataError` (a ``ValueError``) naming the file and the problem.

- ``digits``: no root (scikit-learn's bundled digits); options ``augment=False``.
- ``cifar10``: root with the binary or python CIFAR-10 batches; ``augment=True``.
- ``svhn``: root with ``train_32x32.mat`` and ``test_32x32.mat``; ``augment=False``.
- ``imagefolder``: root with ``train/<class>/*`` and ``val/<class>/*``;
  ``size=32, augment=True, stats_sample=1000``.
"""
from __future__ import annotations

from .cifar10 import load_cifar10
from .dataset import Dataset
from .digits import load_digits
from .errors import DataError
from .imagefolder import load_imagefolder
from .lazy_images import LazyImages
from .svhn import load_svhn

LOADERS = {
    "digits": load_digits,
    "cifar10": load_cifar10,
    "svhn": load_svhn,
    "imagefolder": load_imagefolder,
}
DATASETS = tuple(LOADERS)


def load(name: str, root=None, **options) -> Dataset:
    """The dataset ``name`` (one of :data:`DATASETS`) read from ``root`` with loader ``options``."""
    if name not in LOADERS:
        raise ValueError(f"unknown dataset {name!r}; known datasets: {', '.join(DATASETS)}")
    return LOADERS[name](root, **options)


__all__ = ["load", "Dataset", "DataError", "LazyImages", "DATASETS", "LOADERS",
           "load_digits", "load_cifar10", "load_svhn", "load_imagefolder"]
