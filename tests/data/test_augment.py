"""augment_batch: a true zero-padded crop and a true mirror, drawn in the documented order."""
import numpy as np
import pytest

from specref.data.augment import augment_batch


def distinct_images(batch=16, channels=3, size=8, seed=0):
    return np.random.default_rng(seed).standard_normal((batch, channels, size, size)).astype(np.float32)


def test_flip_only_mirrors_exactly_the_images_the_rng_picks():
    x = distinct_images()
    out = augment_batch(x, np.random.default_rng(7), crop_padding=0, flip=True, pad_value=np.zeros(3))
    mirrored = np.random.default_rng(7).random(len(x)) < 0.5
    assert 0 < mirrored.sum() < len(x)
    np.testing.assert_array_equal(out[mirrored], x[mirrored][..., ::-1])
    np.testing.assert_array_equal(out[~mirrored], x[~mirrored])


def test_crop_is_the_window_of_the_padded_image_at_the_drawn_offsets():
    x = distinct_images()
    pad_value = np.array([-1.5, 0.25, 2.0], np.float32)
    out = augment_batch(x, np.random.default_rng(3), crop_padding=4, flip=False, pad_value=pad_value)
    offsets = np.random.default_rng(3).integers(0, 9, size=(len(x), 2))
    for image, source, (dy, dx) in zip(out, x, offsets):
        padded = np.stack([np.pad(plane, 4, constant_values=value) for plane, value in zip(source, pad_value)])
        np.testing.assert_array_equal(image, padded[:, dy:dy + 8, dx:dx + 8])
    assert not np.array_equal(out, x)


def test_crop_then_flip_uses_offsets_then_flip_mask():
    x = distinct_images()
    out = augment_batch(x, np.random.default_rng(11), crop_padding=2, flip=True, pad_value=np.zeros(3))
    rng = np.random.default_rng(11)
    offsets = rng.integers(0, 5, size=(len(x), 2))
    mirrored = rng.random(len(x)) < 0.5
    for image, source, (dy, dx), flipped in zip(out, x, offsets, mirrored):
        window = np.pad(source, ((0, 0), (2, 2), (2, 2)))[:, dy:dy + 8, dx:dx + 8]
        np.testing.assert_array_equal(image, window[..., ::-1] if flipped else window)


def test_input_is_not_modified_and_output_is_float32():
    x = distinct_images()
    before = x.copy()
    out = augment_batch(x, np.random.default_rng(0), crop_padding=4, flip=True, pad_value=np.zeros(3))
    np.testing.assert_array_equal(x, before)
    assert out.dtype == np.float32 and out.shape == x.shape


def test_negative_padding_is_refused():
    with pytest.raises(ValueError, match="crop_padding"):
        augment_batch(distinct_images(), np.random.default_rng(0), crop_padding=-1, flip=False, pad_value=np.zeros(3))
