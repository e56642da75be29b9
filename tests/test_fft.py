"""The transforms' adjoints, by the dot-product test <A x, y> = <x, A^T y>, for every norm."""
import numpy as np
import pytest
from hypothesis import given, strategies as st

from specref import fft
from specref.testing import inner

sizes = st.tuples(st.integers(1, 9), st.integers(1, 9))


@pytest.mark.parametrize("norm", fft.NORMS)
@given(size=sizes, seed=st.integers(0, 2**16))
def test_rfft2_adjoint(norm, size, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((2, *size))
    g = rng.standard_normal((2, size[0], fft.half_width(size[1]))) * (1 + 1j)
    g = g + 1j * rng.standard_normal(g.shape)
    lhs = inner(g, fft.rfft2(x, size, norm))
    rhs = inner(fft.rfft2_adjoint(g, size, norm), x)
    assert lhs == pytest.approx(rhs, rel=1e-10, abs=1e-10)


@pytest.mark.parametrize("norm", fft.NORMS)
@given(size=sizes, seed=st.integers(0, 2**16))
def test_irfft2_adjoint_on_free_half_spectra(norm, size, seed):
    """The adjoint holds for any complex half array, not only Hermitian-consistent ones."""
    rng = np.random.default_rng(seed)
    shape = (2, size[0], fft.half_width(size[1]))
    z = rng.standard_normal(shape) + 1j * rng.standard_normal(shape)
    g = rng.standard_normal((2, *size))
    lhs = inner(g, fft.irfft2(z, size, norm))
    rhs = inner(fft.irfft2_adjoint(g, size, norm), z)
    assert lhs == pytest.approx(rhs, rel=1e-10, abs=1e-10)


@pytest.mark.parametrize("norm", fft.NORMS)
def test_convolution_theorem_with_unnormalized_kernel(norm, rng):
    """F_norm(x (*) k) = F_norm(x) * F_backward(k), the identity the conv layer relies on."""
    from tests.references import circular_convolution

    x = rng.standard_normal((1, 1, 6, 5))
    k = rng.standard_normal((1, 1, 3, 3))
    y = circular_convolution(x, k)
    lhs = fft.rfft2(y, (6, 5), norm)
    rhs = fft.rfft2(x, (6, 5), norm) * fft.rfft2(k, (6, 5), "backward")
    np.testing.assert_allclose(lhs, rhs, atol=1e-12)


def test_dc_scale_matches_transform_of_constant():
    for norm in fft.NORMS:
        ones = np.ones((5, 6))
        assert fft.rfft2(ones, (5, 6), norm)[0, 0].real == pytest.approx(fft.dc_scale((5, 6), norm))


def test_bad_norm_is_refused():
    with pytest.raises(ValueError, match="norm"):
        fft.rfft2(np.ones((2, 2)), (2, 2), "unitary")


def test_single_precision_is_kept():
    x = np.ones((3, 4), np.float32)
    assert fft.rfft2(x, (3, 4)).dtype == np.complex64
    assert fft.irfft2(fft.rfft2(x, (3, 4)), (3, 4)).dtype == np.float32


@pytest.fixture(params=["numba", "matrix product"])
def kernel_spectrum_path(request, monkeypatch):
    """Kernel spectra through numba's small_dft (the host default) and the matrix product."""
    from specref import kernels

    if request.param == "numba":
        assert kernels._numba() is not None, "numba is a dependency of specref and must import (and SPECREF_NUMBA=0 must not be set)"
    else:
        monkeypatch.setattr(kernels, "_numba_kernels", False)
    return request.param


@pytest.mark.parametrize("size", [(5, 6), (7, 7), (3, 4)])
def test_kernel_spectrum_is_unnormalized_rfft2_and_its_adjoint(size, rng, kernel_spectrum_path):
    w = rng.standard_normal((2, 3, 3, 3))
    np.testing.assert_allclose(fft.kernel_spectrum(w, size), np.fft.rfft2(w, s=size), atol=1e-12)
    g = rng.standard_normal((2, 3, size[0], fft.half_width(size[1])))
    g = g + 1j * rng.standard_normal(g.shape)
    lhs = inner(g, fft.kernel_spectrum(w, size))
    rhs = inner(fft.kernel_spectrum_adjoint(g, 3, size), w)
    assert lhs == pytest.approx(rhs, rel=1e-10)


@pytest.mark.parametrize("k", [3, 2, 5])               # 3: the numba kernels spelled out for 9 taps
@pytest.mark.parametrize("conjugate", [False, True])
@pytest.mark.parametrize("order", ["OC", "CO"])
def test_kernel_spectrum_in_float32_over_many_kernels(k, conjugate, order, rng, kernel_spectrum_path):
    """More kernels than one block of the numba kernel, complex64 out, frequency-major, in both
    channel orders; and the adjoint over as many kernels."""
    w = rng.standard_normal((37, 29, k, k)).astype(np.float32)    # 1,073 kernels: 3 blocks of 512
    size = (9, 10)
    got = fft.kernel_spectrum_frequency_major(w, size, conjugate=conjugate, order=order)
    assert got.dtype == np.complex64
    expected = np.fft.rfft2(w.astype(np.float64), s=size).reshape(37, 29, -1).transpose(2, 0, 1)
    expected = expected.conj() if conjugate else expected
    expected = expected.transpose(0, 2, 1) if order == "CO" else expected
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
    g = (rng.standard_normal(expected.shape) + 1j * rng.standard_normal(expected.shape)).astype(np.complex64)
    g = g.transpose(0, 2, 1) if order == "CO" else g                # the adjoint takes (F, O, C)
    dw = fft.kernel_spectrum_adjoint_frequency_major(g, k, size)
    taps = np.arange(k)
    dft = np.exp(-2j * np.pi * (np.arange(9)[:, None, None, None] * taps[:, None] / 9
                                + np.arange(6)[None, :, None, None] * taps / 10)).reshape(-1, k, k)
    np.testing.assert_allclose(dw, np.einsum("fab,foc->ocab", dft.conj(), g.astype(np.complex128)).real,
                               rtol=1e-4, atol=1e-3)
