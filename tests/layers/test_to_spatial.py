import numpy as np
import pytest

from specref import fft
from specref.layers.to_spatial import ToSpatial
from specref.spectrum import Spectrum
from specref.testing import layer_gradient_errors


@pytest.mark.parametrize("norm", fft.NORMS)
@pytest.mark.parametrize("size", [(4, 6), (5, 7), (3, 2), (1, 1)])
def test_round_trip_and_gradient(norm, size, rng):
    x = rng.standard_normal((2, 3, *size))
    s = Spectrum.from_spatial(x, norm=norm)
    layer = ToSpatial()
    np.testing.assert_allclose(layer.forward(s), x, atol=1e-12)
    assert layer_gradient_errors(layer, s, rng)["input"] < 1e-6
