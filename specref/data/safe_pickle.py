"""A restricted unpickler for the CIFAR-10 python batches.

A pickle can call any importable function while it loads, so a data file must never go through
plain ``pickle.load``. :class:`RestrictedUnpickler` refuses every global except the three a
pickled numpy array needs, and nothing else:

- ``numpy.core.multiarray._reconstruct`` / ``numpy._core.multiarray._reconstruct`` (numpy 1 / 2
  spelling of the same function: builds an empty ndarray of a given subtype, shape and dtype),
- ``numpy.ndarray`` (the only subtype it may be given),
- ``numpy.dtype``.

Everything else in the file must be a plain container, bytes, string or number. The allowed
names resolve to the functions of the numpy already imported; the deprecated ``numpy.core``
module is never imported. Arrays of dtype object could only hold what the pickle itself builds,
which is again restricted; callers still check the dtype of what they get.
"""
from __future__ import annotations

import io
import pickle

import numpy as np

from .errors import DataError

_RECONSTRUCT = np.ndarray.__reduce__(np.zeros(0))[0]
ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy._core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
}


class RefusedGlobal(pickle.UnpicklingError):
    """The pickle asked for a global outside :data:`ALLOWED_GLOBALS`."""


class RestrictedUnpickler(pickle.Unpickler):
    """``pickle.Unpickler`` whose ``find_class`` only returns :data:`ALLOWED_GLOBALS`."""

    def find_class(self, module, name):
        try:
            return ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise RefusedGlobal(f"refused to load global {module}.{name} (only numpy arrays, "
                                "plain containers, bytes, strings and numbers are allowed)") from None

    def persistent_load(self, pid):
        raise RefusedGlobal("refused a persistent id (not used by data files)")


def load_pickle(path):
    """The object pickled in ``path``, loaded restrictedly (``encoding="bytes"`` as for Python 2
    pickles); any failure is a :class:`DataError` naming the file."""
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError as exc:
        raise DataError(path, f"cannot read file ({exc.strerror or exc})") from None
    try:
        return RestrictedUnpickler(io.BytesIO(data), encoding="bytes").load()
    except RefusedGlobal as exc:
        raise DataError(path, str(exc)) from None
    except Exception as exc:  # a malformed pickle can fail in many ways, all meaning "bad file"
        raise DataError(path, f"not a readable pickle ({type(exc).__name__}: {exc})") from None
