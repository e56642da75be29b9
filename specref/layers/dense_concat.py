"""DenseConcat: a DenseNet connection, the input next to what a branch makes of it.

Forward, for x with C channels (axis 1) and the branch g (a chain of layers):

    y = concat([x, g(x)], axis=1)                       C + C_g channels

on spatial arrays (B, C, M, N), or on Spectra, where the half-spectrum values are concatenated
(the branch must keep the size and the FFT norm: concatenation happens in the spectral domain,
which is the same as concatenating the spatial maps, since the FFT acts per channel).

Adjoint (backward): the identity path and the branch both carry x forward, so their adjoints add,

    dx = dy[:, :C] + g^T(dy[:, C:])

On Spectra whose two halves were kept by earlier layers, the concatenation's ``stored`` handle
is rebuilt from those in backward (:func:`specref.storage.stored_concatenation`), so a later
layer that keeps it adds no bytes.

Being a Sequential, it names its parameters like one ("3.0.weight" for the first layer of the
branch at position 3).
"""
from __future__ import annotations

from ..backend import array_module
from ..spectrum import Spectrum
from ..storage import stored_concatenation
from .sequential import Sequential


class DenseConcat(Sequential):
    """y = [x, branch(x)] along channels; works on arrays and on Spectra."""

    def forward(self, x):
        out = super().forward(x)
        if isinstance(x, Spectrum):
            _check_same_grid(x, out)
            xp = array_module(x.values, out.values)
            values = xp.concatenate([x.values, out.values], axis=1)
            result = x.like(values)
            if x.stored is not None and out.stored is not None:
                # both halves are kept already: a later layer that keeps the concatenation
                # rebuilds it from them in backward (no quadratic growth of kept maps)
                result.stored = stored_concatenation([x.stored, out.stored], axis=1)
        else:
            if isinstance(out, Spectrum):
                raise TypeError("DenseConcat got a spatial array but its branch returned a Spectrum: "
                                "the branch must keep the domain of its input")
            _check_same_map(x, out)
            result = array_module(x, out).concatenate([x, out], axis=1)
        self.cache = {"channels": x.shape[1]}
        return result

    def backward(self, dy):
        (channels,) = self._need_cache("channels")
        if isinstance(dy, Spectrum):
            d_branch = super().backward(dy.like(dy.values[:, channels:]))
            return dy.like(dy.values[:, :channels] + d_branch.values)
        d_branch = super().backward(dy[:, channels:])
        return dy[:, :channels] + d_branch

    def clear_cache(self):
        super().clear_cache()
        self.cache = {}


def _check_same_grid(x, out):
    if not isinstance(out, Spectrum):
        raise TypeError("DenseConcat got a Spectrum but its branch returned a spatial array: "
                        "the branch must keep the domain of its input")
    if out.size != x.size or out.norm != x.norm:
        raise ValueError(f"DenseConcat branch must keep the spectrum's size and norm: input has size "
                         f"{x.size}, norm {x.norm!r}; branch output has size {out.size}, norm {out.norm!r}")
    _check_same_map(x.values, out.values)


def _check_same_map(x, out):
    if out.ndim != x.ndim or out.shape[0] != x.shape[0] or out.shape[2:] != x.shape[2:]:
        raise ValueError(f"DenseConcat branch must keep the batch and map shape: input {tuple(x.shape)}, "
                         f"branch output {tuple(out.shape)}")
    if out.dtype != x.dtype:
        raise TypeError(f"DenseConcat branch changed the dtype from {x.dtype} to {out.dtype}")
