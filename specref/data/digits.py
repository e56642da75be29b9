"""The embedded default: scikit-learn's 8x8 handwritten digits, upsampled to 32x32.

Source: ``sklearn.datasets.load_digits`` (1,797 real images, values 0..16, bundled with
scikit-learn, so no file is needed). Each image is upsampled by 4 with bilinear interpolation at
pixel centres (half-pixel convention, edges clamped): output pixel i samples the input at
coordinate s = (i + 0.5) / 4 - 0.5, clamped to [0, 7], mixing pixels floor(s) and floor(s) + 1
with weights 1 - frac(s) and frac(s). This is the same as Pillow's ``Image.resize(...,
BILINEAR)`` for upsampling. One channel; raw pixels are divided by 16 before normalization.

Split: stratified and fixed. The 360 test images are spread over the classes in proportion to
their counts (largest remainders get the rounding), and within class c (in label order) the first
quota of ``rng.permutation(indices of class c)`` is taken, with one
``rng = np.random.default_rng(0)`` shared by the classes. Both splits keep the original order of
``load_digits`` (sorted indices): 1,437 train, 360 test. No augmentation by default (a flipped
digit is another symbol; ``augment=True`` crops only, with 4 pixels of padding).
"""
from __future__ import annotations

import numpy as np

from .dataset import Dataset
from .normalize import normalize_splits

TEST_SIZE = 360
SPLIT_SEED = 0
UPSAMPLE = 4
PIXEL_MAX = 16.0


def load_digits(root=None, *, augment=False):
    """Dataset "digits": (1, 32, 32) images, classes "0".."9"."""
    if root is not None:
        raise ValueError(f"the digits dataset is embedded in scikit-learn and takes no root, "
                         f"got root={root!r}")
    from sklearn.datasets import load_digits as sklearn_digits

    bunch = sklearn_digits()
    images = upsample_bilinear(bunch.images, UPSAMPLE)[:, None]       # (N, 1, 32, 32)
    labels = np.asarray(bunch.target, dtype=np.int64)
    train_index, test_index = split_indices(labels)
    train_x, test_x, mean, std = normalize_splits(images[train_index], images[test_index], PIXEL_MAX)
    return Dataset("digits", train_x, labels[train_index], test_x, labels[test_index],
                   [str(d) for d in range(10)], mean, std, augment=augment, crop_padding=4, flip=False)


def bilinear_matrix(size_in: int, factor: int):
    """(size_in * factor, size_in) interpolation matrix of the half-pixel bilinear upsampling."""
    size_out = size_in * factor
    coord = np.clip((np.arange(size_out) + 0.5) / factor - 0.5, 0, size_in - 1)
    low = np.floor(coord).astype(int)
    high = np.minimum(low + 1, size_in - 1)
    frac = coord - low
    matrix = np.zeros((size_out, size_in))
    np.add.at(matrix, (np.arange(size_out), low), 1 - frac)
    np.add.at(matrix, (np.arange(size_out), high), frac)
    return matrix


def upsample_bilinear(images, factor: int):
    """(N, H, W) images upsampled to (N, H * factor, W * factor): rows then columns, separably."""
    rows = bilinear_matrix(images.shape[1], factor)
    cols = bilinear_matrix(images.shape[2], factor)
    return np.einsum("ij,njk,lk->nil", rows, images, cols)


def split_indices(labels, test_size: int = TEST_SIZE, seed: int = SPLIT_SEED):
    """(train_index, test_index), sorted int arrays: the stratified split of the module docstring."""
    classes, counts = np.unique(labels, return_counts=True)
    quota_exact = counts * test_size / labels.size
    quota = np.floor(quota_exact).astype(int)
    leftover = test_size - quota.sum()
    quota[np.argsort(-(quota_exact - quota), kind="stable")[:leftover]] += 1
    rng = np.random.default_rng(seed)
    test = [rng.permutation(np.flatnonzero(labels == c))[:q] for c, q in zip(classes, quota)]
    test_index = np.sort(np.concatenate(test))
    train_index = np.setdiff1d(np.arange(labels.size), test_index)
    return train_index, test_index
