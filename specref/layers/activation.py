"""Split complex activations f(a + ib) = h(a) + i h(b) (paper eq. (3)), ComplexTanh (eq. (4)).

    Z = h(Re Y) + i h(Im Y)          dY = Re(dZ) h'(Re Y) + i Im(dZ) h'(Im Y)

h must be odd (so f(conj Y) = conj f(Y): the conjugate symmetry of a real map's spectrum
survives, and f(0) = 0 keeps the threshold's zeros) and monotone non-decreasing; both are
checked numerically when the activation is built. For tanh, h' = 1 - h^2 is read from the output,
so only Z is kept for backward.

:class:`SpectralActivation` is what every activation of a Spec block shares with the Threshold
before it: the map kept for backward under ``"u"`` and, when that map is non-zero exactly where
the threshold kept an entry, the threshold's mask read from it (``Threshold.share_mask_with``).
The other spectral activations (named ``name[:param]``) are in :mod:`specref.layers.spectral_activation`.
"""
from __future__ import annotations

import numpy as np

from .. import kernels
from ..backend import array_module
from ..storage import DenseStored
from .base import Layer, check_spectrum

_PROBE = np.concatenate([np.linspace(-6.0, 6.0, 241), [-50.0, -1e-3, 1e-3, 50.0]])


class SpectralActivation(Layer):
    """Base of the activations of a Spec block: the map backward needs is kept under ``"u"``.

    ``zero_only_at_zero`` (what ``Threshold.share_mask_with`` reads) must be True only when that
    kept map is non-zero exactly where the activation's input is: the input itself (Y_hat, zero
    exactly where |Y| <= beta), or f(Y_hat) for an f that is zero only at zero. The Threshold
    then reads its mask from :meth:`kept_pattern` instead of keeping one.
    """

    zero_only_at_zero = False
    mask_in_backward = False        # set by Threshold.share_mask_with where supported

    def kept_pattern(self):
        """Where the kept map is non-zero (what a Threshold sharing its mask reads)."""
        return self._need_cache("u")[0].pattern()

    def where_kept_nonzero(self, grad):
        """``grad * kept_pattern()``; one fused pass when the map is kept dense (no mask array)."""
        (stored,) = self._need_cache("u")
        if isinstance(stored, DenseStored):
            return kernels.where_nonzero(grad, stored.decode())
        return grad * stored.pattern()


class ComplexActivation(SpectralActivation):
    """f(a + ib) = h(a) + i h(b) on a Spectrum.

    fn(t) -> h(t) and derivative(u) -> h'(t) take real arrays (use ``array_module(t)`` inside to
    stay backend-generic); ``derivative_of="input"`` means u = t, ``"output"`` means u = h(t).
    ``kinks``: the points where h is not differentiable (the derivative check skips them).
    """

    def __init__(self, fn, derivative, derivative_of="input", name=None, kinks=()):
        super().__init__()
        if derivative_of not in ("input", "output"):
            raise ValueError(f"derivative_of must be 'input' or 'output', got {derivative_of!r}")
        self.fn, self.derivative, self.derivative_of = fn, derivative, derivative_of
        self.name = name or getattr(fn, "__name__", "h")
        _check_activation(fn, derivative, derivative_of, self.name, kinks)
        nonzero_probe = _PROBE[_PROBE != 0]
        # Kept input: Y_hat is zero exactly where the threshold zeroed it, whatever h is.
        self.zero_only_at_zero = (derivative_of == "input"
                                  or bool(np.all(np.asarray(fn(nonzero_probe)) != 0)))

    def forward(self, x):
        check_spectrum(x)
        v = x.values
        out = self.fn(v.real) + 1j * self.fn(v.imag)
        result = x.like(out.astype(v.dtype, copy=False))
        self.cache = {}
        self.keep("u", result if self.derivative_of == "output" else x)
        return result

    def backward(self, dy):
        u = self.kept("u")
        check_spectrum(dy, "dy")
        g = dy.values
        dx = g.real * self.derivative(u.real) + 1j * (g.imag * self.derivative(u.imag))
        return dy.like(dx.astype(g.dtype, copy=False))

    def __repr__(self):
        return f"{type(self).__name__}({self.name})"


class ComplexTanh(ComplexActivation):
    """tanh(a) + i tanh(b); backward uses 1 - tanh^2 computed from the kept output.

    forward and backward run the fused kernels of :mod:`specref.kernels` (one pass each);
    what is kept, and how, is the generic activation's. After a Threshold that shares its mask
    with it, backward also zeroes dY where Z = 0 (the mask), in the same pass.
    """

    can_mask_in_backward = True

    def __init__(self):
        super().__init__(_tanh, _tanh_derivative_from_output, derivative_of="output", name="tanh")

    def forward(self, x):
        check_spectrum(x)
        result = x.like(kernels.split_tanh(x.values))
        self.cache = {}
        self.keep("u", result)
        return result

    def backward(self, dy):
        u = self.kept("u")
        check_spectrum(dy, "dy")
        # Paired with a Threshold (share_mask_with), zero dY where Z = 0 in this same pass: the
        # threshold's mask, exact when Z was kept losslessly. That Threshold then passes dY on.
        masked = self.mask_in_backward and not self.storage.lossy
        self.cache["masked"] = masked
        return dy.like(kernels.split_tanh_backward(dy.values, u, mask_zeros=masked))


def _tanh(t):
    return array_module(t).tanh(t)


def _tanh_derivative_from_output(out):
    return 1 - out * out


def _check_activation(fn, derivative, derivative_of, name, kinks=()):
    t = _PROBE
    h = np.asarray(fn(t), dtype=np.float64)
    if h.shape != t.shape or not np.all(np.isfinite(h)):
        raise ValueError(f"activation {name!r} must map real arrays elementwise to finite values")
    scale = max(1.0, float(np.max(np.abs(h))))
    if np.max(np.abs(np.asarray(fn(-t)) + h)) > 1e-6 * scale:
        raise ValueError(f"activation {name!r} is not odd (h(-t) != -h(t)): it would break the "
                         "conjugate symmetry of the spectrum")
    order = np.argsort(t)
    if np.any(np.diff(h[order]) < -1e-9 * scale):
        raise ValueError(f"activation {name!r} is not monotone non-decreasing")
    step = 1e-5
    inner = t[np.abs(t) < 5.9]
    for kink in kinks:
        inner = inner[np.abs(inner - kink) > 2 * step]
    numeric = (np.asarray(fn(inner + step)) - np.asarray(fn(inner - step))) / (2 * step)
    u = inner if derivative_of == "input" else np.asarray(fn(inner))
    claimed = np.asarray(derivative(u), dtype=np.float64)
    if np.max(np.abs(claimed - numeric)) > 1e-4 * max(1.0, float(np.max(np.abs(numeric)))):
        raise ValueError(f"derivative of activation {name!r} does not match finite differences of it")
