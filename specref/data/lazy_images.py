"""A lazy (N, 3, size, size) float32 array of image files, decoded only when indexed.

Each image is opened with Pillow, converted to RGB, resized to size x size with
``Image.resize(..., BILINEAR)`` (aspect ratio not kept; Pillow widens the filter when shrinking,
so downscaling is antialiased), scaled to [0, 1] and normalized with the given per-channel
``mean`` / ``std``: x = (pixel / 255 - mean) / std.
"""
from __future__ import annotations

import numpy as np

from .errors import DataError


def decode_image(path, size: int):
    """(3, size, size) float32 in [0, 1]; DataError naming the file when Pillow cannot decode it."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            rgb = image.convert("RGB").resize((size, size), Image.Resampling.BILINEAR)
    except Exception as exc:  # Pillow raises OSError, SyntaxError, ValueError... for bad files
        raise DataError(path, f"undecodable image ({type(exc).__name__}: {exc})") from None
    return np.asarray(rgb, dtype=np.float32).transpose(2, 0, 1) / np.float32(255)


class LazyImages:
    """Array-like over image files: ``len``, ``shape``, ``dtype`` and ``x[index]`` (an int, a
    slice, an integer index array or a boolean mask) returning the decoded, normalized float32
    images. ``np.asarray(x)`` decodes them all: avoid it on a large set."""

    dtype = np.dtype(np.float32)
    ndim = 4

    def __init__(self, paths, size: int, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0)):
        self.paths = list(paths)
        self.size = int(size)
        self.mean = np.asarray(mean, dtype=np.float32).reshape(3, 1, 1)
        self.std = np.asarray(std, dtype=np.float32).reshape(3, 1, 1)

    def __len__(self):
        return len(self.paths)

    @property
    def shape(self):
        return (len(self.paths), 3, self.size, self.size)

    def __getitem__(self, key):
        index = np.arange(len(self.paths))[key]
        if np.ndim(index) == 0:
            return self._decode(int(index))
        out = np.empty((len(index), 3, self.size, self.size), dtype=np.float32)
        for row, i in enumerate(index):
            out[row] = self._decode(int(i))
        return out

    def _decode(self, i):
        return (decode_image(self.paths[i], self.size) - self.mean) / self.std

    def head(self, n: int):
        """A LazyImages of the first n images, same size and normalization."""
        return LazyImages(self.paths[:n], self.size, self.mean.ravel(), self.std.ravel())

    def __array__(self, dtype=None, copy=None):
        batch = self[:]
        return batch if dtype is None else batch.astype(dtype)

    def __repr__(self):
        return f"LazyImages({len(self.paths)} images, size={self.size})"
