"""Gradient checks for layers and networks, usable on any implementation.

The check is a dot-product test along one random direction (JAX's ``check_vjp`` recipe):
for a cotangent c and a direction t, central differences give

    d/de <c, f(x + e t)>  ~=  (<c, f(x + e t)> - <c, f(x - e t)>) / (2 e)

which must equal <J^T c, t>, computed by ``backward``. <a, b> = Re(sum(conj(a) * b)) is the real
inner product, which makes the test complex-aware (it checks the dL/dRe + i dL/dIm convention).
Run it in float64.
"""
from __future__ import annotations

import numpy as np

from .backend import array_module
from .spectrum import Spectrum

TOLERANCES = {np.dtype(np.float64): 1e-6, np.dtype(np.complex128): 1e-6,
              np.dtype(np.float32): 2e-2, np.dtype(np.complex64): 2e-2}


def values_of(x):
    return x.values if isinstance(x, Spectrum) else x


def inner(a, b) -> float:
    """Re(sum(conj(a) * b)) over arrays or Spectra."""
    a, b = values_of(a), values_of(b)
    xp = array_module(a, b)
    return float(xp.real(xp.vdot(a.ravel(), b.ravel())))


def random_like(x, rng):
    """A standard-normal array (complex when x is) shaped like x's values, on x's device."""
    v = values_of(x)
    xp = array_module(v)
    real_dtype = np.empty(0, v.dtype).real.dtype
    r = rng.standard_normal(v.shape).astype(real_dtype)
    if np.iscomplexobj(v):
        r = r + 1j * rng.standard_normal(v.shape).astype(real_dtype)
    r = xp.asarray(r)
    return x.like(r) if isinstance(x, Spectrum) else r


def _shift(x, t, eps):
    if isinstance(x, Spectrum):
        return x.like(x.values + eps * t.values)
    return x + eps * t


def check_vjp(forward, backward, x, rng, eps=1e-6, cotangent=None):
    """(numeric, analytic) directional derivatives of <c, forward(x)> along a random t."""
    y = forward(x)
    c = random_like(y, rng) if cotangent is None else cotangent
    dx = backward(c)
    t = random_like(x, rng)
    analytic = inner(dx, t)
    numeric = (inner(c, forward(_shift(x, t, eps))) - inner(c, forward(_shift(x, t, -eps)))) / (2 * eps)
    return numeric, analytic


def layer_gradient_errors(layer, x, rng, eps=1e-6):
    """Relative errors of a layer's input gradient and of every parameter gradient.

    Returns {"input": err, "<param>": err, ...}; err = |numeric - analytic| / max(1, |numeric|).
    """
    y = layer.forward(x)
    c = random_like(y, rng)
    dx = layer.backward(c)
    grads = {k: g.copy() for k, g in layer.grads.items()}
    errors = {}

    t = random_like(x, rng)
    plus = inner(c, layer.forward(_shift(x, t, eps)))
    minus = inner(c, layer.forward(_shift(x, t, -eps)))
    errors["input"] = _relative((plus - minus) / (2 * eps), inner(dx, t))

    for name, p in layer.params.items():
        original = p.copy()
        t = random_like(p, rng)
        p[...] = original + eps * t
        plus = inner(c, layer.forward(x))
        p[...] = original - eps * t
        minus = inner(c, layer.forward(x))
        p[...] = original
        errors[name] = _relative((plus - minus) / (2 * eps), inner(grads[name], t))
    layer.forward(x)
    return errors


def _relative(numeric, analytic):
    return abs(numeric - analytic) / max(1.0, abs(numeric))
