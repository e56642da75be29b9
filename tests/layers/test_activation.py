import numpy as np
import pytest

from specref.layers.activation import ComplexActivation, ComplexTanh
from specref.spectrum import Spectrum
from specref.testing import layer_gradient_errors


def test_complex_tanh_values(rng):
    x = Spectrum.from_spatial(rng.standard_normal((2, 3, 5, 6)))
    z = ComplexTanh().forward(x).values
    np.testing.assert_allclose(z.real, np.tanh(x.values.real))
    np.testing.assert_allclose(z.imag, np.tanh(x.values.imag))


def test_complex_tanh_gradient(rng):
    x = Spectrum.from_spatial(rng.standard_normal((2, 3, 5, 6)) * 2)
    assert layer_gradient_errors(ComplexTanh(), x, rng)["input"] < 1e-6


def _softsign(t):
    return t / (1 + np.abs(t))


def test_custom_odd_monotone_activation_and_its_gradient(rng):
    act = ComplexActivation(_softsign, lambda t: 1 / (1 + np.abs(t)) ** 2, name="softsign")
    x = Spectrum.from_spatial(rng.standard_normal((1, 2, 4, 7)))
    z = act.forward(x).values
    np.testing.assert_allclose(z, _softsign(x.values.real) + 1j * _softsign(x.values.imag))
    assert layer_gradient_errors(act, x, rng)["input"] < 1e-6


def test_non_odd_activation_is_refused():
    with pytest.raises(ValueError, match="not odd"):
        ComplexActivation(lambda t: np.maximum(t, 0), lambda t: (t > 0) * 1.0, name="relu")
    with pytest.raises(ValueError, match="not odd"):
        ComplexActivation(lambda t: 1 / (1 + np.exp(-t)), lambda u: u * (1 - u), "output")


def test_non_monotone_activation_is_refused():
    with pytest.raises(ValueError, match="not monotone"):
        ComplexActivation(np.sin, np.cos, name="sin")


def test_wrong_derivative_is_refused():
    with pytest.raises(ValueError, match="derivative"):
        ComplexActivation(np.tanh, lambda t: 1 - t**2, name="tanh-with-input-formula")


def test_zero_stays_zero_so_sparsity_survives(rng):
    v = np.zeros((1, 1, 4, 3), complex)
    v[0, 0, 1, 1] = 0.5 - 2j
    z = ComplexTanh().forward(Spectrum(v, (4, 4))).values
    assert np.count_nonzero(z) == 1
