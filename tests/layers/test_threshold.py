import numpy as np
import pytest
from hypothesis import given, strategies as st

from specref.layers.threshold import Threshold
from specref.spectrum import Spectrum
from specref.testing import layer_gradient_errors

maps = st.fixed_dictionaries({"p": st.integers(1, 10), "q": st.integers(1, 10),
                              "seed": st.integers(0, 2**16), "beta": st.floats(0, 3)})


@given(maps)
def test_kept_set_is_exactly_magnitude_above_beta(s):
    rng = np.random.default_rng(s["seed"])
    x = Spectrum.from_spatial(rng.standard_normal((2, 3, s["p"], s["q"])))
    y = Threshold(s["beta"]).forward(x).values
    magnitude = np.abs(x.values)
    keep = magnitude > s["beta"]
    np.testing.assert_array_equal(y[keep], x.values[keep])
    assert np.all(y[~keep] == 0)


def test_boundary_is_strict():
    v = np.array([1.0, 1.0 + 1e-12, 0.6 + 0.8j, 2j], dtype=complex).reshape(1, 1, 1, 4)
    y = Threshold(1.0).forward(Spectrum(v, (1, 6))).values.ravel()
    np.testing.assert_array_equal(y != 0, [False, True, np.abs(0.6 + 0.8j) > 1.0, True])


@given(maps, st.floats(0, 3))
def test_nonzeros_never_grow_with_beta(s, other):
    rng = np.random.default_rng(s["seed"])
    x = Spectrum.from_spatial(rng.standard_normal((2, 2, s["p"], s["q"])))
    low, high = sorted((s["beta"], other))
    count = lambda b: np.count_nonzero(Threshold(b).forward(x).values)  # noqa: E731
    assert count(high) <= count(low)


def test_gradient_away_from_the_kink(rng):
    x = Spectrum.from_spatial(rng.standard_normal((2, 3, 7, 6)))
    beta = 0.8
    assert np.min(np.abs(np.abs(x.values) - beta)) > 1e-4  # the step never crosses |Y| = beta
    layer = Threshold(beta)
    assert layer_gradient_errors(layer, x, rng)["input"] < 1e-6
    # The gradient passes exactly where the value passes.
    dy = x.like(np.ones_like(x.values))
    layer.forward(x)
    np.testing.assert_array_equal(layer.backward(dy).values != 0, np.abs(x.values) > beta)


@pytest.mark.parametrize("beta, error", [(-0.1, ValueError), (float("nan"), ValueError),
                                         (float("inf"), ValueError), ("big", TypeError)])
def test_bad_beta(beta, error):
    with pytest.raises(error, match="beta"):
        Threshold(beta)


def test_needs_a_spectrum():
    with pytest.raises(TypeError, match="must be a Spectrum"):
        Threshold(0.5).forward(np.ones((1, 1, 2, 2)))


@pytest.mark.parametrize("storage", ["dense", "bitmask", "csr", "bitmask-int8"])
@pytest.mark.parametrize("dtype", [np.complex64, np.complex128])
def test_shared_mask_gives_the_unshared_gradient(storage, dtype, rng):
    """Threshold -> ComplexTanh with the mask read from Z (and applied in tanh's backward pass
    where Z is kept losslessly) gives bit for bit the gradient of the pair keeping its own mask."""
    from specref import ComplexTanh
    from specref.storage import get_codec

    values = (rng.standard_normal((2, 3, 6, 4)) + 1j * rng.standard_normal((2, 3, 6, 4))).astype(dtype)
    x = Spectrum(values, (6, 6))
    dz = x.like((rng.standard_normal(values.shape) + 1j * rng.standard_normal(values.shape)).astype(dtype))
    grads = []
    for shared in (False, True):
        threshold, tanh = Threshold(0.8), ComplexTanh()
        tanh.storage = get_codec(storage)
        if shared:
            threshold.share_mask_with(tanh)
        tanh.forward(threshold.forward(x))
        grads.append(threshold.backward(tanh.backward(dz)).values)
    kept = np.abs(values) > np.finfo(dtype).dtype.type(0.8)
    assert 0 < kept.mean() < 1
    assert np.all(grads[1][~kept] == 0) and np.all(grads[1][kept] != 0)
    np.testing.assert_array_equal(grads[1], grads[0])   # a lossy Z moves both alike, not the mask
