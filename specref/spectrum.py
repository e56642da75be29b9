"""``Spectrum``: a batch of real feature maps held as half spectra, with their spatial size.

values: complex (B, C, P, Q//2 + 1) in ``rfft2`` layout; size: (P, Q); norm: the FFT
normalization the values were made with (see :mod:`specref.fft`). A gradient with respect to a
Spectrum is a Spectrum of the same size, layout and norm.
"""
from __future__ import annotations

from . import fft
from .backend import array_module


class Spectrum:
    __slots__ = ("values", "size", "norm", "stored")

    def __init__(self, values, size, norm=fft.DEFAULT_NORM):
        xp = array_module(values)
        if not xp.iscomplexobj(values):
            raise TypeError(f"Spectrum values must be complex, got dtype {values.dtype}")
        if values.ndim != 4:
            raise ValueError(
                f"Spectrum values must be 4-D (B, C, P, Q//2+1), got shape {tuple(values.shape)}"
            )
        size = _check_size(size)
        expected = (size[0], fft.half_width(size[1]))
        if tuple(values.shape[-2:]) != expected:
            raise ValueError(
                f"Spectrum size {size} needs values of shape (B, C, {expected[0]}, {expected[1]}), "
                f"got {tuple(values.shape)}"
            )
        self.values = values
        self.size = size
        self.norm = fft.check_norm(norm)
        # The copy a layer kept for backward (specref.storage), so the next layer that needs the
        # same map keeps this handle instead of a second copy.
        self.stored = None

    @classmethod
    def from_spatial(cls, x, size=None, norm=fft.DEFAULT_NORM):
        """rfft2 of real x (B, C, M, N), zero-padded at the end to ``size`` (default (M, N))."""
        xp = array_module(x)
        if x.ndim != 4:
            raise ValueError(f"x must be 4-D (B, C, M, N), got shape {tuple(x.shape)}")
        if not xp.issubdtype(x.dtype, xp.floating):
            raise TypeError(f"x must be a real floating array, got dtype {x.dtype}")
        size = _check_size(x.shape[-2:] if size is None else size)
        if size[0] < x.shape[-2] or size[1] < x.shape[-1]:
            raise ValueError(f"size {size} is smaller than the map {tuple(x.shape[-2:])}")
        return cls(fft.rfft2(x, size, norm), size, norm)

    def to_spatial(self):
        """The real maps (B, C, P, Q)."""
        return fft.irfft2(self.values, self.size, self.norm)

    def like(self, values):
        """A Spectrum with new values and this one's size and norm."""
        return Spectrum(values, self.size, self.norm)

    def full(self):
        """The full (B, C, P, Q) spectrum, the missing half filled by conjugate symmetry."""
        xp = array_module(self.values)
        p, q = self.size
        h = self.values.shape[-1]
        missing = q - h
        if missing == 0:
            return self.values.copy()
        # X[p, q] = conj(X[-p mod P, Q - q]) for the columns the half layout does not store.
        rows = (-xp.arange(p)) % p
        cols = q - xp.arange(h, q)
        mirrored = xp.conj(self.values[..., rows, :][..., cols])
        return xp.concatenate([self.values, mirrored], axis=-1)

    @property
    def shape(self):
        return tuple(self.values.shape)

    @property
    def dtype(self):
        return self.values.dtype

    @property
    def nbytes(self):
        return int(self.values.nbytes)

    def __repr__(self):
        return f"Spectrum(shape={self.shape}, size={self.size}, norm={self.norm!r}, dtype={self.dtype})"


def _check_size(size):
    try:
        p, q = (int(s) for s in size)
    except (TypeError, ValueError):
        raise ValueError(f"size must be a pair of positive integers (P, Q), got {size!r}") from None
    if p < 1 or q < 1:
        raise ValueError(f"size must be a pair of positive integers (P, Q), got {size!r}")
    return (p, q)
