"""Array backends: NumPy on the host, CuPy on the device.

The backend is chosen once, at the public boundary (``train(..., backend="cupy")``); below it,
every function takes arrays and looks their module up with :func:`array_module`. Mixing NumPy
and CuPy arrays is a ``TypeError``: moving data between host and device is always explicit
(:meth:`Backend.asarray`, :func:`to_numpy`).
"""
from __future__ import annotations

import numpy as np

BACKENDS = ("numpy", "cupy")
GPU_INSTALL_HINT = (
    'install CuPy for your CUDA version, e.g. `pip install -e ".[gpu]"` (cupy-cuda12x for CUDA 12)'
)


def _cupy_or_none():
    """The cupy module if it is already imported, else None (never imports it)."""
    import sys

    return sys.modules.get("cupy")


def is_cupy_array(x) -> bool:
    cp = _cupy_or_none()
    return cp is not None and isinstance(x, cp.ndarray)


def array_module(*arrays):
    """The module (numpy or cupy) of ``arrays``; ``TypeError`` if they mix host and device.

    Non-array arguments (None, Python scalars) are ignored.
    """
    kinds = set()
    for a in arrays:
        if a is None or np.isscalar(a):
            continue
        if is_cupy_array(a):
            kinds.add("cupy")
        elif isinstance(a, np.ndarray):
            kinds.add("numpy")
        else:
            raise TypeError(
                f"expected a numpy.ndarray or cupy.ndarray, got {type(a).__module__}.{type(a).__name__}"
            )
    if len(kinds) > 1:
        raise TypeError(
            "mixed NumPy and CuPy arrays: move them explicitly to one device "
            "(cupy.asarray / cupy.asnumpy) before calling"
        )
    if kinds == {"cupy"}:
        return _cupy_or_none()
    return np


def to_numpy(x):
    """A host (NumPy) copy of ``x``; a NumPy array is returned as it is."""
    if is_cupy_array(x):
        return x.get()
    return np.asarray(x)


class Backend:
    """The array backend named at the boundary: ``Backend("numpy")`` or ``Backend("cupy")``."""

    def __init__(self, name: str = "numpy"):
        if isinstance(name, Backend):
            name = name.name
        if name not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {name!r}")
        self.name = name
        if name == "cupy":
            self.xp = _import_cupy()
        else:
            self.xp = np

    def asarray(self, x, dtype=None):
        """``x`` moved to this backend (an explicit host-to-device copy for CuPy)."""
        if self.name == "numpy":
            return np.asarray(to_numpy(x), dtype=dtype)
        return self.xp.asarray(x, dtype=dtype)

    def synchronize(self):
        if self.name == "cupy":
            self.xp.cuda.Device().synchronize()

    def __repr__(self):
        return f"Backend({self.name!r})"


def _import_cupy():
    try:
        import cupy
    except ImportError as exc:
        raise ImportError(f'backend="cupy" needs CuPy, which is not installed: {GPU_INSTALL_HINT}') from exc
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:  # CUDA driver missing or broken
        raise RuntimeError(f'backend="cupy" needs a CUDA GPU, but CUDA reports: {exc}') from exc
    if count < 1:
        raise RuntimeError('backend="cupy" needs a CUDA GPU, but none is visible')
    return cupy
