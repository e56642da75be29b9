"""SpectralConv2d against direct convolution, and its gradients against finite differences."""
import numpy as np
import pytest
from hypothesis import given, strategies as st
from scipy.signal import correlate2d

from specref import fft
from specref.layers.spectral_conv import SpectralConv2d
from specref.layers.to_spatial import ToSpatial
from specref.spectrum import Spectrum
from specref.testing import layer_gradient_errors
from tests.references import circular_convolution, full_convolution

shapes = st.fixed_dictionaries({
    "batch": st.integers(1, 3), "cin": st.integers(1, 4), "cout": st.integers(1, 3),
    "m": st.integers(1, 12), "n": st.integers(1, 12), "k": st.integers(1, 7),
    "seed": st.integers(0, 2**16), "norm": st.sampled_from(fft.NORMS),
})


@given(shapes)
def test_first_layer_is_linear_convolution(s):
    rng = np.random.default_rng(s["seed"])
    x = rng.standard_normal((s["batch"], s["cin"], s["m"], s["n"]))
    conv = SpectralConv2d(s["cin"], s["cout"], s["k"], dtype=np.float64, fft_norm=s["norm"], rng=rng)
    y = conv.forward(x)
    assert y.size == (s["m"] + s["k"] - 1, s["n"] + s["k"] - 1)
    expected = full_convolution(x, conv.params["weight"], conv.params["bias"])
    np.testing.assert_allclose(y.to_spatial(), expected, atol=1e-10)


@given(shapes)
def test_spectrum_input_is_circular_convolution(s):
    rng = np.random.default_rng(s["seed"])
    p, q = max(s["m"], s["k"]), max(s["n"], s["k"])
    x = rng.standard_normal((s["batch"], s["cin"], p, q))
    conv = SpectralConv2d(s["cin"], s["cout"], s["k"], dtype=np.float64, rng=rng)
    y = conv.forward(Spectrum.from_spatial(x, norm=s["norm"]))
    assert y.size == (p, q) and y.norm == s["norm"]
    expected = circular_convolution(x, conv.params["weight"], conv.params["bias"])
    np.testing.assert_allclose(y.to_spatial(), expected, atol=1e-10)


@pytest.mark.parametrize("k", [1, 3, 4, 5])
def test_cropped_to_same_equals_spatial_conv2d(k, rng):
    from specref.layers.conv2d import Conv2d

    x = rng.standard_normal((2, 3, 7, 6))
    spectral = SpectralConv2d(3, 4, k, dtype=np.float64, rng=0)
    spatial = Conv2d(3, 4, k, padding="same", dtype=np.float64, rng=0)
    spatial.params["weight"][...] = spectral.params["weight"]
    spatial.params["bias"][...] = spectral.params["bias"]
    s = (k - 1) // 2
    full = spectral.forward(x).to_spatial()
    np.testing.assert_allclose(full[..., s:s + 7, s:s + 6], spatial.forward(x), atol=1e-10)


def test_stride_is_convolution_then_subsampling(rng):
    x = rng.standard_normal((2, 2, 6, 7))
    strided = SpectralConv2d(2, 3, 3, stride=2, dtype=np.float64, rng=5)
    y = strided.forward(x)
    expected = full_convolution(x, strided.params["weight"], strided.params["bias"])[..., ::2, ::2]
    np.testing.assert_allclose(y.to_spatial(), expected, atol=1e-10)
    errors = layer_gradient_errors(strided, x, rng)
    assert max(errors.values()) < 1e-6, errors


@given(shapes)
def test_gradients_spatial_input(s):
    rng = np.random.default_rng(s["seed"])
    x = rng.standard_normal((s["batch"], s["cin"], s["m"], s["n"]))
    conv = SpectralConv2d(s["cin"], s["cout"], s["k"], dtype=np.float64, fft_norm=s["norm"], rng=rng)
    errors = layer_gradient_errors(conv, x, rng)
    assert max(errors.values()) < 1e-6, errors


@given(shapes)
def test_gradients_spectrum_input(s):
    rng = np.random.default_rng(s["seed"])
    p, q = max(s["m"], s["k"]), max(s["n"], s["k"])
    x = Spectrum.from_spatial(rng.standard_normal((s["batch"], s["cin"], p, q)), norm=s["norm"])
    conv = SpectralConv2d(s["cin"], s["cout"], s["k"], dtype=np.float64, rng=rng)
    errors = layer_gradient_errors(conv, x, rng)
    assert max(errors.values()) < 1e-6, errors


@pytest.mark.parametrize("norm", fft.NORMS)
def test_weight_gradient_equals_spatial_correlation(norm, rng):
    """dL/dw[o, c] = sum_b correlate2d(dy[b, o], x[b, c], "valid") for y = x (*) w (full)."""
    x = rng.standard_normal((3, 2, 5, 6))
    conv = SpectralConv2d(2, 4, 3, dtype=np.float64, fft_norm=norm, rng=1)
    to_spatial = ToSpatial()
    y = to_spatial.forward(conv.forward(x))
    dy = rng.standard_normal(y.shape)
    conv.backward(to_spatial.backward(dy))
    expected = np.zeros_like(conv.params["weight"])
    for o in range(4):
        for c in range(2):
            for b in range(3):
                expected[o, c] += correlate2d(dy[b, o], x[b, c], mode="valid")
    np.testing.assert_allclose(conv.grads["weight"], expected, atol=1e-10)
    np.testing.assert_allclose(conv.grads["bias"], dy.sum(axis=(0, 2, 3)), atol=1e-10)


def test_float32_gives_complex64_end_to_end(rng):
    x = rng.standard_normal((2, 3, 8, 8)).astype(np.float32)
    conv = SpectralConv2d(3, 4, 3, rng=0)
    y = conv.forward(x)
    assert y.dtype == np.complex64
    dx = conv.backward(y)
    assert dx.dtype == np.float32 and conv.grads["weight"].dtype == np.float32
    assert conv.grads["bias"].dtype == np.float32


def test_bad_inputs_name_the_problem(rng):
    conv = SpectralConv2d(3, 4, 5, dtype=np.float64)
    with pytest.raises(ValueError, match="4-D"):
        conv.forward(rng.standard_normal((3, 8, 8)))
    with pytest.raises(ValueError, match="2 channels, expected in_channels=3"):
        conv.forward(rng.standard_normal((1, 2, 8, 8)))
    with pytest.raises(TypeError, match="real floating"):
        conv.forward(np.ones((1, 3, 8, 8), dtype=np.int64))
    with pytest.raises(TypeError, match="dtype float32 but this layer's dtype is float64"):
        conv.forward(np.ones((1, 3, 8, 8), dtype=np.float32))
    small = Spectrum.from_spatial(rng.standard_normal((1, 3, 4, 8)))
    with pytest.raises(ValueError, match=r"kernel_size=5 is larger than the FFT size \(4, 8\)"):
        conv.forward(small)
    with pytest.raises(ValueError, match="kernel_size must be an integer >= 1, got 0"):
        SpectralConv2d(3, 4, 0)
    with pytest.raises(ValueError, match="norm"):
        SpectralConv2d(3, 4, 3, fft_norm="unitary")
    with pytest.raises(TypeError, match="float32 or float64"):
        SpectralConv2d(3, 4, 3, dtype=np.int32)
    with pytest.raises(RuntimeError, match="before forward"):
        SpectralConv2d(3, 4, 3).backward(small)
