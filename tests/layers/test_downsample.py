"""SpectralDownsample against spatial subsampling, average pooling and band-limited maps."""
import math

import numpy as np
import pytest
from hypothesis import given, strategies as st

from specref import fft
from specref.layers.downsample import SpectralDownsample
from specref.spectrum import Spectrum
from specref.testing import layer_gradient_errors

cases = st.fixed_dictionaries({"p": st.integers(1, 12), "q": st.integers(1, 12),
                               "factor": st.integers(1, 4), "seed": st.integers(0, 2**16),
                               "norm": st.sampled_from(fft.NORMS)})


@given(cases)
def test_alias_is_spatial_subsampling_at_every_size(s):
    rng = np.random.default_rng(s["seed"])
    x = rng.standard_normal((2, 3, s["p"], s["q"]))
    f = s["factor"]
    y = SpectralDownsample(f, "alias").forward(Spectrum.from_spatial(x, norm=s["norm"]))
    assert y.size == (math.ceil(s["p"] / f), math.ceil(s["q"] / f)) and y.norm == s["norm"]
    np.testing.assert_allclose(y.to_spatial(), x[..., ::f, ::f], atol=1e-10)


@given(st.integers(1, 5), st.integers(1, 5), st.sampled_from([2, 3]), st.integers(0, 2**16))
def test_box_prefilter_then_alias_is_average_pooling(pm, qm, f, seed):
    rng = np.random.default_rng(seed)
    p, q = pm * f, qm * f
    x = rng.standard_normal((2, 2, p, q))
    y = SpectralDownsample(f, "alias", prefilter="box").forward(Spectrum.from_spatial(x))
    expected = x.reshape(2, 2, pm, f, qm, f).mean(axis=(3, 5))
    np.testing.assert_allclose(y.to_spatial(), expected, atol=1e-10)


@given(cases)
def test_crop_equals_alias_on_band_limited_maps(s):
    """Keeping the low band is exact aliasing when nothing lies above the output's Nyquist."""
    rng = np.random.default_rng(s["seed"])
    f = s["factor"]
    p, q = s["p"] * f, s["q"] * f            # divisible, so the alias fold applies
    out = (s["p"], s["q"])
    nu_p = np.abs(np.fft.fftfreq(p, 1 / p))
    nu_q = np.abs(np.fft.rfftfreq(q, 1 / q))
    band = (nu_p[:, None] <= out[0] / 2) & (nu_q[None, :] <= out[1] / 2)
    x = Spectrum.from_spatial(rng.standard_normal((1, 2, p, q)), norm=s["norm"])
    limited = Spectrum.from_spatial(x.like(x.values * band).to_spatial(), norm=s["norm"])
    alias = SpectralDownsample(f, "alias").forward(limited)
    crop = SpectralDownsample(f, "crop").forward(limited)
    np.testing.assert_allclose(crop.values, alias.values, atol=1e-10)


@given(cases)
def test_crop_keeps_low_frequencies_and_stays_real(s):
    rng = np.random.default_rng(s["seed"])
    x = Spectrum.from_spatial(rng.standard_normal((1, 2, s["p"], s["q"])), norm=s["norm"])
    y = SpectralDownsample(s["factor"], "crop").forward(x)
    full = Spectrum(y.values, y.size, "backward").full()
    assert np.max(np.abs(np.fft.ifft2(full).imag)) < 1e-10
    scale = fft.resample_scale(x.size, y.size, s["norm"])
    assert y.values[..., 0, 0] == pytest.approx(scale * x.values[..., 0, 0])


@pytest.mark.parametrize("mode", ["alias", "crop"])
@pytest.mark.parametrize("prefilter", [None, "box"])
@given(cases)
def test_gradients(mode, prefilter, s):
    rng = np.random.default_rng(s["seed"])
    x = Spectrum.from_spatial(rng.standard_normal((2, 2, s["p"], s["q"])), norm=s["norm"])
    layer = SpectralDownsample(s["factor"], mode, prefilter)
    assert layer_gradient_errors(layer, x, rng)["input"] < 1e-6


def test_bad_arguments():
    with pytest.raises(ValueError, match="mode must be one of"):
        SpectralDownsample(2, "nearest")
    with pytest.raises(ValueError, match="factor must be an integer >= 1, got 0"):
        SpectralDownsample(0)
    with pytest.raises(ValueError, match="prefilter"):
        SpectralDownsample(2, prefilter="gauss")
    with pytest.raises(TypeError, match="must be a Spectrum"):
        SpectralDownsample(2).forward(np.ones((1, 1, 4, 4)))


def test_resampling_plan_is_built_once_per_size():
    """Forward, backward and the recomputation from a kept map reuse one cached plan of block
    copies (no resampling matrices rebuilt and copied to the device on every call)."""
    from specref.layers.downsample import _plan

    layer = SpectralDownsample(2, "alias")
    x = Spectrum.from_spatial(np.random.default_rng(0).standard_normal((2, 3, 14, 10)), norm="ortho")
    layer.forward(x)
    layer.backward(layer.forward(x))
    before = _plan.cache_info()
    for _ in range(3):
        layer.backward(layer.forward(x))
    after = _plan.cache_info()
    assert after.misses == before.misses and after.hits >= before.hits + 6


def test_box_response_is_built_once_per_size():
    """The box prefilter's transfer function is cached like the plan (Spec-DenseNet pools with
    it), and the cached array is the one the layer multiplies by."""
    from specref.layers import downsample

    layer = SpectralDownsample(2, "alias", prefilter="box")
    x = Spectrum.from_spatial(np.random.default_rng(1).standard_normal((2, 3, 12, 8)), norm="ortho")
    layer.backward(layer.forward(x))
    cached = dict(downsample._BOX_RESPONSES)
    for _ in range(3):
        layer.backward(layer.forward(x))
    assert downsample._BOX_RESPONSES.keys() == cached.keys()
    assert all(downsample._BOX_RESPONSES[k] is v for k, v in cached.items())
