"""The one numeric argument check: what it accepts, and errors that name the parameter, the value
and the range."""
import math

import numpy as np
import pytest

from specref.checks import check_number, check_positive_int


@pytest.mark.parametrize("value, kwargs, expected", [
    (3, dict(integer=True, minimum=1), 3), (np.int64(0), dict(integer=True, minimum=0), 0),
    (0.5, dict(above=0), 0.5), (np.float32(0.25), dict(minimum=0, below=1), 0.25), (2, {}, 2.0),
])
def test_accepts_numbers_in_range(value, kwargs, expected):
    got = check_number(value, "x", **kwargs)
    assert got == expected and type(got) is type(expected)


@pytest.mark.parametrize("value, kwargs, message", [
    (True, dict(integer=True, minimum=1), "epochs must be an integer >= 1, got True"),
    (1.5, dict(integer=True, minimum=1), "epochs must be an integer >= 1, got 1.5"),
    (0.0, dict(above=0), "epochs must be a finite number > 0, got 0.0"),
    (1.0, dict(minimum=0, below=1), "epochs must be a finite number >= 0 and < 1, got 1.0"),
    (math.nan, {}, "epochs must be a finite number, got nan"),
    (math.inf, dict(minimum=0), "epochs must be a finite number >= 0, got inf"),
    ("3", dict(integer=True), "epochs must be an integer, got '3'"),
    (11, dict(integer=True, minimum=0, maximum=10), "epochs must be an integer >= 0 and <= 10, got 11"),
])
def test_refusals_name_parameter_value_and_range(value, kwargs, message):
    with pytest.raises(ValueError) as info:
        check_number(value, "epochs", **kwargs)
    assert str(info.value) == message


def test_positive_int_is_an_integer_of_at_least_one():
    assert check_positive_int(np.int32(4), "channels") == 4
    with pytest.raises(ValueError, match="channels must be an integer >= 1, got 0"):
        check_positive_int(0, "channels")
