"""The embedded digits dataset: shapes, the fixed stratified split, the bilinear upsampling."""
import numpy as np
import pytest
from PIL import Image
from sklearn.datasets import load_digits as sklearn_digits

from specref.data import load
from specref.data.digits import split_indices, upsample_bilinear


@pytest.fixture(scope="module")
def digits():
    return load("digits")


@pytest.fixture(scope="module")
def source():
    bunch = sklearn_digits()
    return bunch.images, bunch.target


def test_shapes_dtypes_labels_and_classes(digits):
    assert (digits.num_train, digits.num_test) == (1437, 360)
    assert digits.train_x.shape == (1437, 1, 32, 32) and digits.test_x.shape == (360, 1, 32, 32)
    assert digits.train_x.dtype == digits.test_x.dtype == np.float32
    assert digits.train_y.dtype == digits.test_y.dtype == np.int64
    assert digits.classes == [str(d) for d in range(10)] and digits.num_classes == 10
    assert set(np.unique(digits.train_y)) == set(range(10)) == set(np.unique(digits.test_y))
    assert digits.input_shape == (1, 32, 32) and digits.name == "digits"


def test_train_split_is_normalized(digits):
    np.testing.assert_allclose(digits.train_x.mean(axis=(0, 2, 3)), 0, atol=1e-4)
    np.testing.assert_allclose(digits.train_x.std(axis=(0, 2, 3)), 1, atol=1e-4)
    assert 0 < digits.mean[0] < 1 and 0 < digits.std[0] < 1


def test_split_is_fixed_stratified_and_partitions_the_images(source):
    _, labels = source
    train_index, test_index = split_indices(labels)
    again = split_indices(labels)
    np.testing.assert_array_equal(train_index, again[0])
    np.testing.assert_array_equal(test_index, again[1])
    np.testing.assert_array_equal(np.sort(np.concatenate([train_index, test_index])), np.arange(labels.size))
    per_class = np.bincount(labels[test_index], minlength=10) / np.bincount(labels, minlength=10)
    np.testing.assert_allclose(per_class, 360 / 1797, atol=0.01)
    # pins the split itself: a change here silently changes every reported digits accuracy
    np.testing.assert_array_equal(test_index[:8], [5, 9, 12, 14, 16, 17, 19, 23])
    assert test_index.sum() == 326571


def test_images_are_the_upsampled_originals_in_split_order(digits, source):
    images, labels = source
    train_index, test_index = split_indices(labels)
    np.testing.assert_array_equal(digits.test_y, labels[test_index])
    restored = digits.test_x[:, 0] * digits.std[0] + digits.mean[0]
    np.testing.assert_allclose(restored * 16, upsample_bilinear(images[test_index], 4), atol=1e-4)


def test_bilinear_upsampling_matches_pillow(source):
    images, _ = source
    ours = upsample_bilinear(images[:20], 4)
    for image, up in zip(images[:20], ours):
        reference = np.asarray(Image.fromarray(image.astype(np.float32), mode="F")
                               .resize((32, 32), Image.Resampling.BILINEAR))
        np.testing.assert_allclose(up, reference, atol=1e-4)


def test_no_augmentation_by_default_and_never_a_flip(digits):
    assert digits.augment is False and digits.flip is False
    x, _ = next(digits.batches("train", 64, rng=np.random.default_rng(0), shuffle=False))
    np.testing.assert_array_equal(x, digits.train_x[:64])
    assert load("digits", augment=True).augment is True


def test_digits_takes_no_root():
    with pytest.raises(ValueError, match="no root"):
        load("digits", root="/tmp")
