"""A 3-block spectral network end to end, against central finite differences in float64.

All parameters and the input move together along one random direction t; the analytic
directional derivative <grad, t> from the hand-written backward passes must match
(L(theta + e t) - L(theta - e t)) / 2e. Inputs are drawn so that no |Y| lies near beta.
"""
import numpy as np
import pytest

from specref import (ComplexTanh, Dense, Flatten, Sequential, SoftmaxCrossEntropy, SpectralConv2d,
                     SpectralDownsample, Threshold, ToSpatial, fft)
from specref.testing import inner


def three_block_net(betas, norm, mode, rng):
    f64 = np.float64
    return Sequential([
        SpectralConv2d(2, 3, 3, dtype=f64, fft_norm=norm, rng=rng), Threshold(betas[0]), ComplexTanh(),
        SpectralConv2d(3, 4, 3, dtype=f64, rng=rng), Threshold(betas[1]), ComplexTanh(),
        SpectralDownsample(2, mode),
        SpectralConv2d(4, 3, 2, dtype=f64, rng=rng), Threshold(betas[2]), ComplexTanh(),
        ToSpatial(), Flatten(), Dense(3 * 4 * 4, 5, dtype=f64, rng=rng),
    ])


def threshold_margin(net, x):
    """Smallest | |Y| - beta | over every Threshold's input for this forward pass."""
    margin, out = np.inf, x
    for layer in net:
        if isinstance(layer, Threshold):
            margin = min(margin, float(np.min(np.abs(np.abs(out.values) - layer.beta))))
        out = layer.forward(out)
    return margin


def directional_derivative(objective, params, x, direction_x, directions, eps=1e-6):
    """Central difference of objective along (direction_x, directions) jointly."""
    originals = {k: p.copy() for k, p in params.items()}
    values = []
    for sign in (1, -1):
        for k, p in params.items():
            p[...] = originals[k] + sign * eps * directions.get(k, 0)
        values.append(objective(x + sign * eps * direction_x))
    for k, p in params.items():
        p[...] = originals[k]
    return (values[0] - values[1]) / (2 * eps)


@pytest.mark.parametrize("norm", fft.NORMS)
@pytest.mark.parametrize("mode", ["alias", "crop"])
def test_three_block_spectral_net_gradient(norm, mode):
    """Input and every parameter checked one at a time, each against its own magnitude."""
    # Scale the input so every norm gives spectra of the same size (tanh far from saturation).
    scale = {"ortho": 1.0, "backward": 1 / 7, "forward": 7.0}[norm]
    for seed in range(100):                          # draw until no |Y| lies near a beta
        rng = np.random.default_rng(seed)
        x = scale * rng.standard_normal((3, 2, 5, 5))    # 5 + 3 - 1 = 7 -> 7 -> ceil(7/2) = 4
        net = three_block_net((0.3, 0.05, 0.05), norm, mode, rng)
        if threshold_margin(net, x) > 1e-4:
            break
    assert threshold_margin(net, x) > 1e-4, "inputs too close to the threshold's kink"
    labels = np.array([0, 3, 4])
    loss = SoftmaxCrossEntropy()

    def objective(x_):
        return float(loss.forward(net.forward(x_), labels))

    objective(x)
    kept = [np.count_nonzero(layer.cache["mask"]) / layer.cache["mask"].size
            for layer in net if isinstance(layer, Threshold)]
    assert all(0.1 < k < 0.95 for k in kept), kept    # the thresholds really cut, not everything
    dx = net.backward(loss.backward())
    params, grads = net.parameters(), {k: g.copy() for k, g in net.gradients().items()}
    zero_x = np.zeros_like(x)
    checks = [("input", rng.standard_normal(x.shape), {})]
    checks += [(k, zero_x, {k: rng.standard_normal(p.shape)}) for k, p in params.items()]
    for name, t_x, directions in checks:
        analytic = inner(dx, t_x) + sum(inner(grads[k], t) for k, t in directions.items())
        numeric = directional_derivative(objective, params, x, t_x, directions)
        if name == "input" or name.endswith("weight"):
            assert abs(numeric) > 1e-6, f"{name}: no gradient signal"
        # A bias whose DC bin the threshold removed has a true gradient of 0: analytic must be 0.
        assert abs(numeric - analytic) <= 1e-5 * abs(numeric) + 1e-9, (name, numeric, analytic)
