"""specref.data.load: names, missing roots."""
import pytest

from specref.data import DATASETS, DataError, Dataset, load


def test_known_names():
    assert DATASETS == ("digits", "cifar10", "svhn", "imagefolder")


def test_unknown_name_lists_the_known_ones():
    with pytest.raises(ValueError, match="unknown dataset 'mnist'; known datasets: digits, cifar10, svhn, imagefolder"):
        load("mnist")


@pytest.mark.parametrize("name", ["cifar10", "svhn", "imagefolder"])
def test_root_is_required(name):
    with pytest.raises(ValueError, match=rf"load\('{name}'\) needs root=") as info:
        load(name)
    assert not isinstance(info.value, DataError)


@pytest.mark.parametrize("name", ["cifar10", "svhn", "imagefolder"])
def test_root_must_exist(tmp_path, name):
    with pytest.raises(DataError, match="is not an existing directory"):
        load(name, tmp_path / "nowhere")


def test_data_error_is_a_value_error_that_names_the_file():
    error = DataError("/data/x.bin", "truncated record")
    assert isinstance(error, ValueError) and str(error) == "/data/x.bin: truncated record"
    assert error.path == "/data/x.bin"


def test_unknown_option_is_refused():
    with pytest.raises(TypeError, match="colour"):
        load("digits", colour=True)


def test_default_dataset_needs_no_files():
    assert isinstance(load("digits"), Dataset)
