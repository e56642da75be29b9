"""Training-time augmentation: random crop from a zero-padded image, then horizontal flip.

For a batch x of shape (B, C, H, W) already normalized, each image is padded by ``crop_padding``
pixels on every side with the normalized value of a black pixel, (0 - mean) / std per channel (the
"zero-padded image" of the usual CIFAR recipe, where padding happens before normalization), and an
H x W window is cut at offset (dy, dx), each drawn uniformly from 0 .. 2 * crop_padding. Then, if
``flip``, each image is mirrored left-right with probability 1/2.

Random draws, in this order, from the numpy Generator ``rng``:
``rng.integers(0, 2 * crop_padding + 1, size=(B, 2))`` (columns dy, dx; skipped when
crop_padding is 0), then ``rng.random(B) < 0.5`` (flip mask; skipped when flip is off).
"""
from __future__ import annotations

import numpy as np


def augment_batch(x, rng, *, crop_padding: int, flip: bool, pad_value):
    """A new float32 array: x randomly cropped and flipped as described in the module docstring."""
    if crop_padding < 0:
        raise ValueError(f"crop_padding must be >= 0, got {crop_padding}")
    out = np.array(x, dtype=np.float32, copy=True)
    batch, channels, height, width = out.shape
    if crop_padding > 0:
        p = crop_padding
        padded = np.empty((batch, channels, height + 2 * p, width + 2 * p), dtype=np.float32)
        padded[...] = np.asarray(pad_value, np.float32).reshape(1, channels, 1, 1)
        padded[:, :, p:p + height, p:p + width] = out
        offsets = rng.integers(0, 2 * p + 1, size=(batch, 2))
        rows = offsets[:, 0, None] + np.arange(height)          # (B, H)
        cols = offsets[:, 1, None] + np.arange(width)           # (B, W)
        out = padded[np.arange(batch)[:, None, None, None], np.arange(channels)[None, :, None, None],
                     rows[:, None, :, None], cols[:, None, None, :]]
    if flip:
        mirrored = rng.random(batch) < 0.5
        out[mirrored] = out[mirrored, :, :, ::-1]
    return out
