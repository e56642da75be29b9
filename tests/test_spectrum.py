import numpy as np
import pytest

from specref import fft
from specref.spectrum import Spectrum


def test_from_spatial_pads_and_round_trips(rng):
    x = rng.standard_normal((2, 3, 4, 5))
    s = Spectrum.from_spatial(x, size=(6, 7))
    assert s.shape == (2, 3, 6, 4) and s.size == (6, 7)
    back = s.to_spatial()
    np.testing.assert_allclose(back[..., :4, :5], x, atol=1e-12)
    np.testing.assert_allclose(back[..., 4:, :], 0, atol=1e-12)
    np.testing.assert_allclose(back[..., :, 5:], 0, atol=1e-12)


@pytest.mark.parametrize("size", [(4, 6), (5, 7), (1, 1), (3, 2)])
def test_full_matches_fft2(size, rng):
    x = rng.standard_normal((1, 2, *size))
    s = Spectrum.from_spatial(x, norm="backward")
    np.testing.assert_allclose(s.full(), np.fft.fft2(x), atol=1e-12)


def test_dtype_follows_input(rng):
    s32 = Spectrum.from_spatial(rng.standard_normal((1, 1, 4, 4)).astype(np.float32))
    s64 = Spectrum.from_spatial(rng.standard_normal((1, 1, 4, 4)))
    assert s32.dtype == np.complex64 and s64.dtype == np.complex128


def test_size_must_match_values():
    with pytest.raises(ValueError, match=r"size \(4, 6\) needs values of shape \(B, C, 4, 4\)"):
        Spectrum(np.zeros((1, 1, 4, 3), complex), (4, 6))
    with pytest.raises(ValueError, match="4-D"):
        Spectrum(np.zeros((4, 3), complex), (4, 4))
    with pytest.raises(TypeError, match="complex"):
        Spectrum(np.zeros((1, 1, 4, 3)), (4, 4))
    with pytest.raises(ValueError, match="positive integers"):
        Spectrum(np.zeros((1, 1, 4, 3), complex), (0, 4))


def test_from_spatial_validates():
    with pytest.raises(TypeError, match="real floating"):
        Spectrum.from_spatial(np.ones((1, 1, 3, 3), dtype=int))
    with pytest.raises(ValueError, match="smaller than the map"):
        Spectrum.from_spatial(np.ones((1, 1, 3, 3)), size=(2, 3))
    with pytest.raises(ValueError, match="norm"):
        Spectrum.from_spatial(np.ones((1, 1, 3, 3)), norm="none")


def test_default_norm_is_ortho_and_unitary(rng):
    x = rng.standard_normal((1, 1, 8, 8))
    s = Spectrum.from_spatial(x)
    assert s.norm == fft.DEFAULT_NORM == "ortho"
    # Parseval on the full spectrum: a unitary transform keeps the energy.
    assert np.sum(np.abs(s.full()) ** 2) == pytest.approx(np.sum(x**2))
