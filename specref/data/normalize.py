"""Per-channel normalization x' = (x / scale - mean) / std.

``mean`` and ``std`` are per-channel statistics of the training split in units of the full pixel
range (raw / scale, so in [0, 1]); ``std`` is the population standard deviation over all pixels
of all images of that channel. Both are accumulated in float64, one chunk of images at a time, so
that normalizing never needs a float64 copy of the whole split.
"""
from __future__ import annotations

import numpy as np

CHUNK_ELEMENTS = 1 << 24  # ~128 MB of float64 per chunk, whatever the image size
MIN_STD = 1e-6  # a constant channel is left centred rather than divided by zero


def channel_stats(raw, scale: float):
    """(mean, std), float64 arrays of shape (C,), of ``raw / scale`` for raw shaped (N, C, H, W)."""
    n, channels = raw.shape[0], raw.shape[1]
    chunk_size = _chunk_size(raw.shape)
    if n == 0:
        raise ValueError("channel_stats needs at least one image, got an empty split")
    total = np.zeros(channels)
    total_sq = np.zeros(channels)
    for start in range(0, n, chunk_size):
        chunk = np.asarray(raw[start:start + chunk_size], dtype=np.float64) / scale
        total += chunk.sum(axis=(0, 2, 3))
        total_sq += np.square(chunk).sum(axis=(0, 2, 3))
    count = n * raw.shape[2] * raw.shape[3]
    mean = total / count
    var = np.maximum(total_sq / count - np.square(mean), 0.0)
    return mean, np.maximum(np.sqrt(var), MIN_STD)


def normalize(raw, scale: float, mean, std):
    """float32 array ``(raw / scale - mean) / std``, broadcasting the stats over (N, C, H, W)."""
    out = np.empty(raw.shape, dtype=np.float32)
    shift = np.asarray(mean, np.float64).reshape(1, -1, 1, 1)
    inv = 1.0 / np.asarray(std, np.float64).reshape(1, -1, 1, 1)
    chunk_size = _chunk_size(raw.shape)
    for start in range(0, raw.shape[0], chunk_size):
        chunk = np.asarray(raw[start:start + chunk_size], dtype=np.float64) / scale
        out[start:start + chunk_size] = (chunk - shift) * inv
    return out


def normalize_splits(train_raw, test_raw, scale: float):
    """Normalize both splits with the training split's stats; returns (train, test, mean, std)."""
    mean, std = channel_stats(train_raw, scale)
    return normalize(train_raw, scale, mean, std), normalize(test_raw, scale, mean, std), mean, std


def _chunk_size(shape):
    return max(1, CHUNK_ELEMENTS // max(1, int(np.prod(shape[1:]))))
