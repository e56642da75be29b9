"""Scratch buffers shared by every layer of a kind, reused from step to step.

Some intermediates are large, short-lived and the same size at every step: im2col matrices in
Conv2d, kernel spectra and their gradient in SpectralConv2d. Layers run one at a time, so one
buffer per name serves them all; it grows to the largest request and is then reused, which
spares the allocator fresh pages (and their first-touch faults) on every call. What a buffer
holds is dead once the call that asked for it returns: nothing kept for backward lives here, so
the memory ledger does not count these buffers (the allocator peak of a step does).
"""
from __future__ import annotations

import numpy as np

from .backend import array_module

_BUFFERS = {}


def scratch(name, shape, dtype, like):
    """An uninitialized array of ``shape`` and ``dtype`` on ``like``'s device, a view of the
    buffer called ``name`` (grown on demand). Valid until the next request for that name."""
    xp = array_module(like)
    dtype = np.dtype(dtype)
    key = (name, xp.__name__, dtype.str)
    size = int(np.prod(shape))
    buffer = _BUFFERS.get(key)
    if buffer is None or buffer.size < size:
        _BUFFERS.pop(key, None)                 # let the smaller one go before the larger comes
        buffer = xp.empty(size, dtype=dtype)
        _BUFFERS[key] = buffer
    return buffer[:size].reshape(shape)


def release():
    """Free every scratch buffer (before a memory measurement, or to give the memory back)."""
    _BUFFERS.clear()
