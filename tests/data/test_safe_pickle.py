"""The restricted unpickler: numpy arrays and plain data load, every other global is refused."""
import os
import pickle

import numpy as np
import pytest

from specref.data import DataError
from specref.data.safe_pickle import ALLOWED_GLOBALS, load_pickle


def write(tmp_path, payload, name="batch"):
    path = tmp_path / name
    path.write_bytes(payload)
    return path


def test_plain_data_and_uint8_arrays_load(tmp_path):
    obj = {"data": np.arange(12, dtype=np.uint8).reshape(3, 4), "labels": [1, 2, 3],
           "name": b"batch", "scale": 0.5, "nested": ({"a": None}, [True])}
    loaded = load_pickle(write(tmp_path, pickle.dumps(obj, protocol=4)))
    np.testing.assert_array_equal(loaded["data"], obj["data"])
    assert loaded["data"].dtype == np.uint8
    assert {k: v for k, v in loaded.items() if k != "data"} == {k: v for k, v in obj.items() if k != "data"}


def test_the_whitelist_is_exactly_the_numpy_array_pieces():
    assert set(ALLOWED_GLOBALS) == {("numpy.core.multiarray", "_reconstruct"),
                                    ("numpy._core.multiarray", "_reconstruct"),
                                    ("numpy", "ndarray"), ("numpy", "dtype")}


def global_pickle(module, name):
    """A protocol-2 pickle that calls module.name(\"x\")."""
    return b"\x80\x02c" + f"{module}\n{name}\n".encode() + b"X\x01\x00\x00\x00x\x85R."


@pytest.mark.parametrize("module, name", [("posix", "system"), ("os", "system"), ("builtins", "eval"),
                                          ("numpy", "load"), ("numpy", "frombuffer"),
                                          ("numpy._core.numeric", "_frombuffer"), ("subprocess", "call")])
def test_other_globals_are_refused(tmp_path, module, name):
    with pytest.raises(DataError, match=rf"batch: refused to load global {module}\.{name}"):
        load_pickle(write(tmp_path, global_pickle(module, name)))


def test_a_reduce_to_os_system_never_runs(tmp_path):
    marker = tmp_path / "ran"

    class Exploit:
        def __reduce__(self):
            return os.system, (f"touch {marker}",)

    with pytest.raises(DataError, match="refused"):
        load_pickle(write(tmp_path, pickle.dumps([Exploit()], protocol=4)))
    assert not marker.exists()


def test_the_unrestricted_pickle_would_have_accepted_the_test_payload(tmp_path):
    # guards the refusal tests above: their payloads are valid pickles, refused only by the whitelist
    assert pickle.loads(global_pickle("builtins", "len")) == 1
    with pytest.raises(DataError, match="builtins.len"):
        load_pickle(write(tmp_path, global_pickle("builtins", "len")))


@pytest.mark.parametrize("payload", [b"", b"not a pickle at all", pickle.dumps({"a": list(range(100))})[:-5]])
def test_garbage_and_truncated_pickles(tmp_path, payload):
    with pytest.raises(DataError, match="batch: not a readable pickle"):
        load_pickle(write(tmp_path, payload))


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match="cannot read"):
        load_pickle(tmp_path / "absent")
