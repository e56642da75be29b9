import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from hypothesis.extra.numpy import arrays
from scipy.signal import convolve2d, correlate2d

from specref.backend import to_numpy
from specref.layers.conv2d import Conv2d, padding_widths
from specref.testing import layer_gradient_errors

MODES = ("full", "same", "valid")
unit_floats = st.floats(-1, 1, allow_subnormal=False)


def reference_conv(x, w, b, mode):
    """y[b, o] = sum_c convolve2d(x[b, c], w[o, c], mode) + b[o], with SciPy."""
    return np.stack([
        np.stack([sum(convolve2d(x[n, c], w[o, c], mode) for c in range(x.shape[1])) + b[o]
                  for o in range(w.shape[0])])
        for n in range(x.shape[0])])


def full_size_gradient(dy, k, mode, M, N):
    """dy of a cropped output placed where it sits inside the full output (zeros elsewhere)."""
    start = {"full": 0, "same": (k - 1) // 2, "valid": k - 1}[mode]
    full = np.zeros(dy.shape[:2] + (M + k - 1, N + k - 1))
    full[:, :, start:start + dy.shape[2], start:start + dy.shape[3]] = dy
    return full


@st.composite
def conv_cases(draw):
    k = draw(st.integers(1, 4))
    mode = draw(st.sampled_from(MODES))
    B, C, O = draw(st.integers(1, 2)), draw(st.integers(1, 3)), draw(st.integers(1, 4))
    M, N = draw(st.integers(k, 7)), draw(st.integers(k, 7))
    x = draw(arrays(np.float64, (B, C, M, N), elements=unit_floats))
    dy_seed = draw(st.integers(0, 2**32 - 1))
    return k, mode, x, O, dy_seed


@settings(max_examples=40)
@given(conv_cases())
def test_forward_and_gradients_match_scipy(case):
    k, mode, x, O, dy_seed = case
    B, C, M, N = x.shape
    layer = Conv2d(C, O, k, padding=mode, dtype=np.float64, rng=dy_seed)
    w, b = layer.params["weight"], layer.params["bias"]
    y = layer.forward(x)
    np.testing.assert_allclose(y, reference_conv(x, w, b, mode), rtol=1e-10, atol=1e-12)

    dy = np.random.default_rng(dy_seed).standard_normal(y.shape)
    dx = layer.backward(dy)
    dy_full = full_size_gradient(dy, k, mode, M, N)
    # dW[o, c] = sum_b correlate(dy_full[b, o], x[b, c]); dx[b, c] = sum_o correlate(dy_full[b, o], w[o, c])
    dW = np.array([[sum(correlate2d(dy_full[n, o], x[n, c], "valid") for n in range(B))
                    for c in range(C)] for o in range(O)])
    dx_ref = np.array([[sum(correlate2d(dy_full[n, o], w[o, c], "valid") for o in range(O))
                        for c in range(C)] for n in range(B)])
    np.testing.assert_allclose(layer.grads["weight"], dW, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(layer.grads["bias"], dy.sum(axis=(0, 2, 3)), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(dx, dx_ref, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("k", [1, 2, 3, 4, 5])
def test_same_crop_starts_at_half_kernel_like_scipy(k, rng):
    x = rng.standard_normal((7, 6))
    w = rng.standard_normal((k, k))
    start = (k - 1) // 2
    assert padding_widths("same", k) == (k - 1 - start, start)
    np.testing.assert_allclose(convolve2d(x, w, "same"), convolve2d(x, w, "full")[start:start + 7, start:start + 6])
    layer = Conv2d(1, 1, k, padding="same", bias=False, dtype=np.float64)
    layer.params["weight"][0, 0] = w
    np.testing.assert_allclose(layer.forward(x[None, None])[0, 0], convolve2d(x, w, "same"), atol=1e-12)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("k", [1, 2, 3])
@pytest.mark.parametrize("channels", [(1, 4), (3, 2)], ids=["few-in-channels", "many-in-channels"])
def test_gradient_check(xp, rng, mode, k, channels):
    C, O = channels  # the two cover both ways of computing dx (col2im and the dy correlation)
    layer = Conv2d(C, O, k, padding=mode, dtype=np.float64, rng=rng)
    layer.params = {key: xp.asarray(value) for key, value in layer.params.items()}
    x = xp.asarray(rng.standard_normal((2, C, 5, 6)))
    errors = layer_gradient_errors(layer, x, rng)
    assert set(errors) == {"input", "weight", "bias"}
    assert max(errors.values()) < 1e-6, errors


def test_float32_forward_matches_float64_reference(xp, rng):
    layer = Conv2d(3, 5, 3, rng=0)
    x = rng.standard_normal((2, 3, 9, 8)).astype(np.float32)
    layer.params = {key: xp.asarray(value) for key, value in layer.params.items()}
    y = layer.forward(xp.asarray(x))
    assert y.dtype == np.float32 and y.shape == (2, 5, 9, 8)
    reference = reference_conv(x.astype(np.float64), to_numpy(layer.params["weight"]).astype(np.float64),
                               to_numpy(layer.params["bias"]).astype(np.float64), "same")
    np.testing.assert_allclose(to_numpy(y), reference, rtol=1e-4, atol=1e-5)


def test_no_bias_and_the_cache_follows_the_latest_forward(rng):
    layer = Conv2d(2, 3, 3, bias=False, dtype=np.float64, rng=0)
    assert set(layer.params) == {"weight"}
    x1, x2 = rng.standard_normal((2, 2, 6, 6)), rng.standard_normal((1, 2, 4, 5))
    layer.forward(x1)
    y2 = layer.forward(x2)
    dy = rng.standard_normal(y2.shape)
    assert layer.backward(dy).shape == x2.shape
    dW = np.array([[correlate2d(full_size_gradient(dy, 3, "same", 4, 5)[0, o], x2[0, c], "valid")
                    for c in range(2)] for o in range(3)])
    np.testing.assert_allclose(layer.grads["weight"], dW, atol=1e-12)
    assert set(layer.grads) == {"weight"}


def test_init_is_uniform_within_fan_in_bound_and_seeded():
    layer = Conv2d(4, 6, 3, dtype=np.float32, rng=7)
    bound = 1 / np.sqrt(4 * 9)
    for value in layer.params.values():
        assert value.dtype == np.float32
        assert np.abs(value).max() <= bound
    assert np.abs(layer.params["weight"]).max() > 0.8 * bound
    np.testing.assert_array_equal(layer.params["weight"], Conv2d(4, 6, 3, rng=7).params["weight"])
    assert not np.array_equal(layer.params["weight"], Conv2d(4, 6, 3, rng=8).params["weight"])


def test_bad_inputs_name_the_parameter():
    layer = Conv2d(3, 2, 3, padding="valid")
    with pytest.raises(ValueError, match=r"x must be 4-D, got shape \(3, 8, 8\)"):
        layer.forward(np.zeros((3, 8, 8), np.float32))
    with pytest.raises(ValueError, match=r"3 channels \(in_channels\), got shape \(1, 2, 8, 8\)"):
        layer.forward(np.zeros((1, 2, 8, 8), np.float32))
    with pytest.raises(TypeError, match="x has dtype float64 but the layer's dtype is float32"):
        layer.forward(np.zeros((1, 3, 8, 8)))
    with pytest.raises(TypeError, match="x must be a real floating array.*int64"):
        layer.forward(np.zeros((1, 3, 8, 8), np.int64))
    with pytest.raises(ValueError, match=r"at least 3 x 3 for padding='valid'"):
        layer.forward(np.zeros((1, 3, 2, 8), np.float32))
    with pytest.raises(RuntimeError, match="backward called before forward"):
        layer.backward(np.zeros((1, 2, 6, 6), np.float32))
    layer.forward(np.zeros((1, 3, 8, 8), np.float32))
    with pytest.raises(ValueError, match=r"dy must have the output's shape \(1, 2, 6, 6\)"):
        layer.backward(np.zeros((1, 2, 8, 8), np.float32))
    layer.clear_cache()
    with pytest.raises(RuntimeError, match="backward called before forward"):
        layer.backward(np.zeros((1, 2, 6, 6), np.float32))


def test_bad_constructor_arguments():
    with pytest.raises(ValueError, match="padding must be one of .*got 'circular'"):
        Conv2d(1, 1, 3, padding="circular")
    with pytest.raises(ValueError, match="kernel_size must be an integer >= 1, got 0"):
        Conv2d(1, 1, 0)
    with pytest.raises(ValueError, match="out_channels must be an integer >= 1, got 2.5"):
        Conv2d(1, 2.5, 3)
    with pytest.raises(TypeError, match="dtype must be float32 or float64, got int32"):
        Conv2d(1, 1, 3, dtype=np.int32)


def test_repr():
    assert repr(Conv2d(3, 8, 5, padding="full", dtype=np.float64)) == (
        "Conv2d(3, 8, kernel_size=5, padding='full', bias=True, dtype=float64)")
