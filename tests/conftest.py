"""Shared test setup: Hypothesis profiles and the ``xp`` fixture.

Hypothesis runs the deterministic profile "ci" by default (derandomized, so every run tests the
same examples); ``SPECREF_HYPOTHESIS=random`` draws fresh examples, ``=thorough`` draws more,
``=gpu-check`` fewer (what validation/gpu_check.py runs).
The ``xp`` fixture runs a test body on NumPy, and on CuPy where CuPy and a GPU are present.
"""
import os

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

settings.register_profile("ci", derandomize=True, deadline=None, max_examples=30,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("random", deadline=None, max_examples=30,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("thorough", deadline=None, max_examples=300,
                          suppress_health_check=[HealthCheck.too_slow])
# validation/gpu_check.py's first device run: every kernel compiles on first use, so fewer examples.
settings.register_profile("gpu-check", derandomize=True, deadline=None, max_examples=8,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("SPECREF_HYPOTHESIS", "ci"))


def _cupy_reason():
    try:
        import cupy
    except ImportError:
        return "CuPy is not installed (pip install -e '.[gpu]')"
    try:
        if cupy.cuda.runtime.getDeviceCount() < 1:
            return "no CUDA GPU is visible"
    except Exception as exc:  # no driver
        return f"no usable CUDA GPU: {exc}"
    return None


CUPY_SKIP_REASON = _cupy_reason()


@pytest.fixture(params=["numpy", "cupy"])
def xp(request):
    if request.param == "numpy":
        return np
    if CUPY_SKIP_REASON:
        pytest.skip(f"CuPy backend test skipped: {CUPY_SKIP_REASON}")
    import cupy

    return cupy


@pytest.fixture
def rng():
    return np.random.default_rng(1234)
