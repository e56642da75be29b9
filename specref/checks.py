"""The one validator of numeric arguments: ``check_number``.

Booleans are refused (``True`` is an ``int`` to Python, never a count or a rate here), NaN and
infinities too; the error names the parameter, the value received and the range expected.
"""
from __future__ import annotations

import math
import numbers


def check_number(value, name, *, integer=False, minimum=None, above=None, below=None, maximum=None):
    """``value`` as an ``int`` (``integer=True``) or ``float``, checked to lie in the range given.

    minimum: value >= minimum; above: value > above; below: value < below; maximum: value <=
    maximum. Raises ValueError naming ``name``, ``value`` and the range otherwise.
    """
    kind = numbers.Integral if integer else numbers.Real
    ok = isinstance(value, kind) and not isinstance(value, bool) and math.isfinite(value)
    ok = ok and (minimum is None or value >= minimum) and (above is None or value > above)
    ok = ok and (below is None or value < below) and (maximum is None or value <= maximum)
    if not ok:
        bounds = [f">= {minimum}" if minimum is not None else None, f"> {above}" if above is not None else None,
                  f"< {below}" if below is not None else None, f"<= {maximum}" if maximum is not None else None]
        expected = "an integer" if integer else "a finite number"
        expected += "".join(f" {b}" if i == 0 else f" and {b}" for i, b in enumerate(filter(None, bounds)))
        raise ValueError(f"{name} must be {expected}, got {value!r}")
    return int(value) if integer else float(value)


def check_positive_int(value, name, minimum=1):
    """An integer >= ``minimum`` (1 by default): counts, sizes, channels."""
    return check_number(value, name, integer=True, minimum=minimum)
