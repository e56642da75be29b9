"""Conjugate symmetry survives every spectral layer: the maps stay spectra of real signals."""
import numpy as np
from hypothesis import given, strategies as st

from specref.layers.activation import ComplexTanh
from specref.layers.downsample import SpectralDownsample
from specref.layers.spectral_conv import SpectralConv2d
from specref.layers.threshold import Threshold
from specref.spectrum import Spectrum


def assert_real_spectrum(s: Spectrum):
    v = s.values
    p, q = s.size
    flip = (-np.arange(p)) % p
    np.testing.assert_allclose(v[..., :, 0], np.conj(v[..., flip, 0]), atol=1e-10)
    if q % 2 == 0:
        np.testing.assert_allclose(v[..., :, -1], np.conj(v[..., flip, -1]), atol=1e-10)
    full = Spectrum(v, s.size, "backward").full()
    assert np.max(np.abs(np.fft.ifft2(full).imag)) < 1e-10


@given(st.integers(1, 10), st.integers(1, 10), st.integers(1, 4), st.floats(0, 2),
       st.sampled_from(["alias", "crop"]), st.integers(0, 2**16))
def test_every_spectral_layer_keeps_conjugate_symmetry(m, n, k, beta, mode, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((2, 2, m, n))
    layers = [SpectralConv2d(2, 3, k, dtype=np.float64, rng=rng), Threshold(beta), ComplexTanh(),
              SpectralConv2d(3, 2, 1, dtype=np.float64, rng=rng), Threshold(beta / 2), ComplexTanh(),
              SpectralDownsample(2, mode), SpectralDownsample(2, mode, prefilter="box")]
    out = x
    for layer in layers:
        out = layer.forward(out)
        assert_real_spectrum(out)
