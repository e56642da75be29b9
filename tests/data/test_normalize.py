"""Per-channel stats and normalization against numpy's own mean/std."""
import numpy as np

from specref.data import normalize as norm


def test_channel_stats_match_numpy_mean_and_std(monkeypatch):
    raw = np.random.default_rng(0).integers(0, 256, size=(50, 3, 6, 5), dtype=np.uint8)
    raw[:, 1] //= 4  # make the channels differ
    expected_mean = (raw / 255.0).mean(axis=(0, 2, 3))
    expected_std = (raw / 255.0).std(axis=(0, 2, 3))
    monkeypatch.setattr(norm, "CHUNK_ELEMENTS", 7 * 3 * 6 * 5)  # several chunks, a partial last one
    mean, std = norm.channel_stats(raw, 255.0)
    np.testing.assert_allclose(mean, expected_mean, rtol=1e-12)
    np.testing.assert_allclose(std, expected_std, rtol=1e-10)


def test_normalize_splits_centres_train_and_reuses_its_stats_for_test():
    rng = np.random.default_rng(1)
    train = rng.integers(0, 256, size=(40, 2, 4, 4), dtype=np.uint8)
    test = rng.integers(0, 128, size=(10, 2, 4, 4), dtype=np.uint8)
    train_x, test_x, mean, std = norm.normalize_splits(train, test, 255.0)
    assert train_x.dtype == test_x.dtype == np.float32
    np.testing.assert_allclose(train_x.mean(axis=(0, 2, 3)), 0, atol=1e-5)
    np.testing.assert_allclose(train_x.std(axis=(0, 2, 3)), 1, atol=1e-5)
    expected_test = (test / 255.0 - mean[None, :, None, None]) / std[None, :, None, None]
    np.testing.assert_allclose(test_x, expected_test, rtol=1e-5, atol=1e-5)


def test_constant_channel_gives_finite_values():
    raw = np.zeros((4, 1, 3, 3), dtype=np.uint8)
    train_x, _, _, std = norm.normalize_splits(raw, raw, 255.0)
    assert np.all(np.isfinite(train_x)) and std[0] > 0
