import numpy as np
import pytest

from specref.layers.activation import ComplexTanh
from specref.layers.conv2d import Conv2d
from specref.layers.dense_concat import DenseConcat
from specref.layers.downsample import SpectralDownsample
from specref.layers.sequential import Sequential
from specref.layers.spatial_activation import Tanh
from specref.layers.spectral_conv import SpectralConv2d
from specref.layers.threshold import Threshold
from specref.spectrum import Spectrum
from specref.testing import inner, layer_gradient_errors, random_like

BETA = 0.05


def spatial_concat(rng):
    return DenseConcat([Conv2d(3, 4, 3, padding="same", dtype=np.float64, rng=rng), Tanh()])


def spectral_concat(rng):
    return DenseConcat([SpectralConv2d(3, 4, 3, dtype=np.float64, rng=rng), Threshold(BETA), ComplexTanh()])


def parameter_gradient_error(layer, x, rng, eps=1e-6):
    """Relative error of <grad, t> against central differences along one direction t of all params."""
    c = random_like(layer.forward(x), rng)
    layer.backward(c)
    params, grads = layer.parameters(), layer.gradients()
    directions = {name: random_like(p, rng) for name, p in params.items()}
    originals = {name: p.copy() for name, p in params.items()}

    def shifted(step):
        for name, p in params.items():
            p[...] = originals[name] + step * directions[name]
        return inner(c, layer.forward(x))

    numeric = (shifted(eps) - shifted(-eps)) / (2 * eps)
    shifted(0.0)
    analytic = sum(inner(grads[name], directions[name]) for name in params)
    return abs(numeric - analytic) / max(1.0, abs(numeric))


def test_spatial_forward_is_input_then_branch(rng):
    layer = spatial_concat(rng)
    x = rng.standard_normal((2, 3, 5, 5))
    y = layer.forward(x)
    assert y.shape == (2, 7, 5, 5)
    np.testing.assert_array_equal(y[:, :3], x)
    np.testing.assert_allclose(y[:, 3:], Sequential(layer.layers).forward(x))


def test_spectral_forward_is_input_then_branch(rng):
    layer = spectral_concat(rng)
    x = Spectrum.from_spatial(rng.standard_normal((2, 3, 6, 5)))
    y = layer.forward(x)
    assert isinstance(y, Spectrum) and y.shape == (2, 7, 6, 3)
    assert y.size == x.size and y.norm == x.norm
    np.testing.assert_array_equal(y.values[:, :3], x.values)
    np.testing.assert_allclose(y.values[:, 3:], Sequential(layer.layers).forward(x).values)


def test_spatial_gradients(rng):
    x = rng.standard_normal((2, 3, 5, 4))
    assert layer_gradient_errors(spatial_concat(rng), x, rng)["input"] < 1e-6
    assert parameter_gradient_error(spatial_concat(rng), x, rng) < 1e-6


def test_spectral_gradients_away_from_the_kink(rng):
    x = Spectrum.from_spatial(rng.standard_normal((2, 3, 6, 5)))
    layer = spectral_concat(rng)
    magnitudes = np.abs(layer.layers[0].forward(x).values)
    assert np.min(np.abs(magnitudes - BETA)) > 1e-4   # the threshold's kink is not crossed
    assert layer_gradient_errors(layer, x, rng)["input"] < 1e-6
    assert parameter_gradient_error(layer, x, rng) < 1e-6


def test_nested_concats_grow_channels_and_gradients_hold(rng):
    inner_concat = spectral_concat(rng)
    outer = DenseConcat([inner_concat, SpectralConv2d(7, 2, 1, dtype=np.float64, rng=rng)])
    x = Spectrum.from_spatial(rng.standard_normal((1, 3, 5, 6)))
    assert outer.forward(x).shape == (1, 5, 5, 4)   # 3 + (3 + 4 -> 2)
    assert layer_gradient_errors(outer, x, rng)["input"] < 1e-6
    assert parameter_gradient_error(outer, x, rng) < 1e-6


def test_parameters_are_named_through_the_concat(rng):
    net = Sequential([Conv2d(3, 3, 1, dtype=np.float64, rng=rng), spatial_concat(rng)])
    assert set(net.parameters()) == {"0.weight", "0.bias", "1.0.weight", "1.0.bias"}
    assert net.parameters()["1.0.weight"] is net.layers[1].layers[0].params["weight"]


def test_branch_that_changes_the_size_is_refused(rng):
    layer = DenseConcat([SpectralConv2d(3, 2, 1, dtype=np.float64, rng=rng), SpectralDownsample(2, "crop")])
    with pytest.raises(ValueError, match="size"):
        layer.forward(Spectrum.from_spatial(rng.standard_normal((1, 3, 6, 6))))


def test_branch_that_changes_the_domain_is_refused(rng):
    layer = DenseConcat([SpectralConv2d(3, 2, 3, dtype=np.float64, rng=rng)])
    with pytest.raises(TypeError, match="domain"):
        layer.forward(rng.standard_normal((1, 3, 6, 6)))


def test_backward_before_forward(rng):
    with pytest.raises(RuntimeError, match="before forward"):
        spatial_concat(rng).backward(np.ones((1, 7, 3, 3)))
