"""The layer contract shared by every layer.

``forward(x)`` computes the output and keeps in ``self.cache`` exactly what ``backward`` needs;
``backward(dy)`` returns ``dx`` (the same kind of object ``forward`` took: array or Spectrum) and
sets ``self.grads`` for every key of ``self.params``. Optimizers update ``params`` in place.
"""
from __future__ import annotations

import numpy as np

from ..backend import array_module
from ..checks import check_positive_int  # noqa: F401  (the layers' argument check, one for all)
from ..spectrum import Spectrum
from ..storage import get_codec


class Layer:
    """Base class: parameters, gradients, cache and train/eval mode.

    Feature maps that backward needs go through ``keep(name, map)`` / ``kept(name)``, which
    store them with the layer's ``storage`` codec (dense by default; see specref.storage). A
    Spectrum already kept by an earlier layer is shared, not stored again.
    """

    storage = get_codec("dense")

    def __init__(self):
        self.params = {}
        self.grads = {}
        self.cache = {}
        self.training = True

    def forward(self, x):
        raise NotImplementedError

    def backward(self, dy):
        raise NotImplementedError

    def __call__(self, x):
        return self.forward(x)

    def zero_grad(self):
        for name, value in self.params.items():
            self.grads[name] = array_module(value).zeros_like(value)

    def train(self, mode: bool = True):
        self.training = bool(mode)
        return self

    def eval(self):
        return self.train(False)

    def clear_cache(self):
        self.cache = {}

    def keep(self, name, value):
        """Store a feature map (array or Spectrum) for backward with this layer's codec."""
        if isinstance(value, Spectrum):
            if value.stored is None:
                value.stored = self.storage.encode(value.values)
            self.cache[name] = value.stored
        else:
            self.cache[name] = self.storage.encode(value)

    def kept(self, name):
        """The map kept under ``name``, decoded."""
        return self._need_cache(name)[0].decode()

    def _need_cache(self, *keys):
        missing = [k for k in keys if k not in self.cache]
        if missing:
            raise RuntimeError(f"{type(self).__name__}.backward called before forward (no cached {missing[0]!r})")
        return [self.cache[k] for k in keys]

    def __repr__(self):
        return f"{type(self).__name__}()"


def check_spatial(x, name="x", ndim=4):
    """x must be a real floating array of ``ndim`` dimensions."""
    if isinstance(x, Spectrum):
        raise TypeError(f"{name} must be a spatial array, got a Spectrum (add ToSpatial before this layer)")
    xp = array_module(x)
    if not hasattr(x, "ndim"):
        raise TypeError(f"{name} must be an array, got {type(x).__name__}")
    if x.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-D, got shape {tuple(x.shape)}")
    if not xp.issubdtype(x.dtype, xp.floating):
        raise TypeError(f"{name} must be a real floating array (float32 or float64), got dtype {x.dtype}")
    return xp


def check_spectrum(x, name="x"):
    if not isinstance(x, Spectrum):
        raise TypeError(f"{name} must be a Spectrum, got {type(x).__name__}")
    return array_module(x.values)


def check_float_dtype(dtype, name="dtype"):
    dtype = np.dtype(dtype)
    if dtype not in (np.float32, np.float64):
        raise TypeError(f"{name} must be float32 or float64, got {dtype}")
    return dtype


def make_rng(rng):
    """A numpy Generator from None, a seed or a Generator (initial values are drawn on the host)."""
    if isinstance(rng, np.random.Generator):
        return rng
    return np.random.default_rng(rng)
