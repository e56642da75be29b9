"""The Dataset every loader returns: normalized splits, labels, class names and a batch iterator.

``train_x`` / ``test_x`` are (N, C, H, W) float32, normalized per channel with the training
split's ``mean`` / ``std`` (see :mod:`specref.data.normalize`). They are numpy arrays, or lazy
array-likes (:class:`specref.data.imagefolder.LazyImages`) that decode on indexing; everything here
only indexes them with an integer index array, so both work.
"""
from __future__ import annotations

import math

import numpy as np

from ..checks import check_number, check_positive_int
from .augment import augment_batch

SPLITS = ("train", "test")


class Dataset:
    """Two labelled splits plus what is needed to batch and augment them.

    ``augment`` is the default for training batches; ``crop_padding`` and ``flip`` say what
    augmentation does (:func:`specref.data.augment.augment_batch`). Test batches are never augmented.
    """

    def __init__(self, name, train_x, train_y, test_x, test_y, classes, mean, std, *,
                 augment=False, crop_padding=4, flip=True):
        self.name = name
        self.classes = [str(c) for c in classes]
        self.train_x, self.test_x = train_x, test_x
        self.train_y = self._labels("train_y", train_y, len(train_x))
        self.test_y = self._labels("test_y", test_y, len(test_x))
        if tuple(train_x.shape[1:]) != tuple(test_x.shape[1:]) or len(train_x.shape) != 4:
            raise ValueError(f"train_x and test_x must be (N, C, H, W) with equal (C, H, W), "
                             f"got {tuple(train_x.shape)} and {tuple(test_x.shape)}")
        self.mean = np.asarray(mean, dtype=np.float64).reshape(-1)
        self.std = np.asarray(std, dtype=np.float64).reshape(-1)
        if self.mean.shape != (train_x.shape[1],) or self.std.shape != (train_x.shape[1],):
            raise ValueError(f"mean and std must have one value per channel ({train_x.shape[1]}), "
                             f"got shapes {self.mean.shape} and {self.std.shape}")
        self.augment = bool(augment)
        self.crop_padding = int(crop_padding)
        self.flip = bool(flip)

    def _labels(self, field, labels, n):
        labels = np.asarray(labels, dtype=np.int64).reshape(-1)
        if labels.shape[0] != n:
            raise ValueError(f"{field} must have one label per image ({n}), got {labels.shape[0]}")
        if labels.size and (labels.min() < 0 or labels.max() >= len(self.classes)):
            raise ValueError(f"{field} must lie in 0..{len(self.classes) - 1}, "
                             f"got {labels.min()}..{labels.max()}")
        return labels

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def input_shape(self) -> tuple:
        return tuple(int(s) for s in self.train_x.shape[1:])

    @property
    def num_train(self) -> int:
        return len(self.train_x)

    @property
    def num_test(self) -> int:
        return len(self.test_x)

    def num_batches(self, split: str, batch_size: int) -> int:
        """How many batches :meth:`batches` yields (the last partial one included)."""
        x, _ = self._split(split)
        return math.ceil(len(x) / _check_batch_size(batch_size))

    def batches(self, split: str, batch_size: int, *, rng=None, shuffle=None, augment=None):
        """Iterator of (x, y) numpy batches covering every example of ``split`` once.

        ``shuffle`` defaults to True for "train", False for "test"; ``augment`` defaults to
        ``self.augment`` for "train" and must stay off for "test". The permutation
        ``rng.permutation(n)`` is drawn when this method is called, the augmentation draws batch
        by batch, so a given Generator state gives the same batches. Without ``rng`` a fresh,
        unseeded Generator is used. The last batch may be smaller than ``batch_size``.
        """
        x, y = self._split(split)
        batch_size = _check_batch_size(batch_size)
        shuffle = (split == "train") if shuffle is None else bool(shuffle)
        if augment is None:
            augment = self.augment and split == "train"
        elif augment and split == "test":
            raise ValueError("augment=True was asked for split='test'; test batches are never augmented")
        if rng is None:
            rng = np.random.default_rng()
        elif not isinstance(rng, np.random.Generator):
            raise TypeError("rng must be a numpy Generator (np.random.default_rng(seed)), "
                            f"got {type(rng).__name__}")
        order = rng.permutation(len(x)) if shuffle else np.arange(len(x))
        return self._iterate(x, y, order, batch_size, rng if augment else None)

    def _iterate(self, x, y, order, batch_size, augment_rng):
        pad_value = -self.mean / self.std
        for start in range(0, len(order), batch_size):
            index = order[start:start + batch_size]
            batch = np.asarray(x[index], dtype=np.float32)
            if augment_rng is not None:
                batch = augment_batch(batch, augment_rng, crop_padding=self.crop_padding,
                                      flip=self.flip, pad_value=pad_value)
            yield batch, y[index]

    def _split(self, split):
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        return (self.train_x, self.train_y) if split == "train" else (self.test_x, self.test_y)

    def subset(self, n_train=None, n_test=None):
        """A Dataset of the first ``n_train`` / ``n_test`` examples (None: all).

        The normalization stats stay those of the full training split.
        """
        n_train = _check_count("n_train", n_train, self.num_train)
        n_test = _check_count("n_test", n_test, self.num_test)
        return Dataset(self.name, _head(self.train_x, n_train), self.train_y[:n_train].copy(),
                       _head(self.test_x, n_test), self.test_y[:n_test].copy(), self.classes,
                       self.mean, self.std, augment=self.augment,
                       crop_padding=self.crop_padding, flip=self.flip)

    def __repr__(self):
        return (f"Dataset({self.name!r}, train={self.num_train}, test={self.num_test}, "
                f"input_shape={self.input_shape}, classes={self.num_classes}, augment={self.augment})")


def _check_batch_size(batch_size):
    return check_positive_int(batch_size, "batch_size")


def _check_count(field, n, available):
    """``n`` images of the ``available`` ones (None: all)."""
    return available if n is None else check_number(n, field, integer=True, minimum=0, maximum=available)


def _head(x, n):
    """The first n images: a copy for arrays (so the full split can be freed), lazily otherwise."""
    if isinstance(x, np.ndarray):
        return x[:n].copy()
    return x.head(n)
