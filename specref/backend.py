"""Array backends: NumPy on the host, CuPy on the device.

The backend is chosen once, at the public boundary (``train(..., backend="cupy")``); below it,
every function takes arrays and looks their module up with :func:`array_module`. Mixing NumPy
and CuPy arrays is a ``TypeError``: moving data between host and device is always explicit
(:meth:`Backend.asarray`, :meth:`Backend.move` for a whole network, :func:`to_numpy`).
"""
from __future__ import annotations

import numpy as np

from .tree import state_stores

BACKENDS = ("numpy", "cupy")
GPU_INSTALL_HINT = (
    'pip install -e ".[gpu]" (it installs cupy-cuda12x, CuPy for CUDA 12.x; with CUDA 11.x '
    'install cupy-cuda11x instead, with CUDA 13.x cupy-cuda13x)'
)
GPU_DRIVER_HINT = (
    "an NVIDIA GPU with a driver that supports the CUDA version of the installed CuPy wheel "
    "(cupy-cuda12x needs a CUDA 12 driver, 525 or newer)"
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
        # On the host a value is read back for free; on a device only at logging points.
        self.on_host = name == "numpy"
        if name == "cupy":
            self.xp = _import_cupy()
        else:
            self.xp = np

    def asarray(self, x, dtype=None):
        """``x`` moved to this backend (an explicit host-to-device copy for CuPy)."""
        if self.name == "numpy":
            return np.asarray(to_numpy(x), dtype=dtype)
        return self.xp.asarray(x, dtype=dtype)

    def move(self, net):
        """Every parameter and buffer of ``net`` (a network or one layer) moved to this backend,
        in place (no copy for an array already there); returns ``net``."""
        for store in state_stores(net):
            for key, value in store.items():
                store[key] = self.asarray(value)
        return net

    def synchronize(self):
        if self.name == "cupy":
            self.xp.cuda.Device().synchronize()

    def __repr__(self):
        return f"Backend({self.name!r})"


def _import_cupy():
    try:
        import cupy
    except ImportError as exc:
        raise ImportError(f'backend="cupy" needs CuPy, which is not installed; install it with: '
                          f'{GPU_INSTALL_HINT}') from exc
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:  # CUDA driver missing or broken
        raise RuntimeError(f'backend="cupy" needs {GPU_DRIVER_HINT}, but CUDA reports: {exc}') from exc
    if count < 1:
        raise RuntimeError(f'backend="cupy" needs {GPU_DRIVER_HINT}, but no GPU is visible')
    return cupy
