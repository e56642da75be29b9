"""The fast paths end to end against the plain formulas they replace, float64, to 1e-12.

Spec-LeNet and Spec-VGG-11 (LSUV-scaled, so every block keeps entries) run one training step
twice: as specref runs it (numba kernel spectra and elementwise kernels, block-copy spectral
downsampling, thread-pool products), and with each of those swapped for its defining formula:
kernel spectra as ``numpy.fft.rfft2`` of the zero-padded kernels, their adjoint as the explicit
sum Re(sum_f conj(E) dK), per-frequency products as ``numpy.einsum``, the downsampling as the
matrix products R X Ca + conj(Rf X Cb) of its docstring, the elementwise steps as NumPy formulas.
Loss, logits, every parameter gradient and the input gradient must agree to 1e-12 (relative).
"""
import numpy as np
import pytest

from specref import fft, kernels, nets
from specref.init import lsuv
from specref.layers import downsample, spectral_conv
from specref.layers.loss import SoftmaxCrossEntropy


def reference_kernel_spectrum(w, size, conjugate=False, out=None, order="OC"):
    spectra = np.fft.rfft2(w, s=size)                                   # (O, C, P, H)
    o, c = w.shape[:2]
    spectra = spectra.reshape(o, c, -1).transpose(2, 0, 1)              # (F, O, C)
    spectra = spectra.conj() if conjugate else spectra
    return spectra.transpose(0, 2, 1) if order == "CO" else spectra


def reference_kernel_spectrum_adjoint(grad, k, size):
    p, q = size
    freq_p = np.arange(p)[:, None, None, None]
    freq_h = np.arange(q // 2 + 1)[None, :, None, None]
    a, b = np.arange(k)[None, None, :, None], np.arange(k)[None, None, None, :]
    dft = np.exp(-2j * np.pi * (freq_p * a / p + freq_h * b / q)).reshape(-1, k, k)   # E (F, k, k)
    return np.einsum("fab,foc->ocab", dft.conj(), grad).real


def reference_resample(X, plan, scale, out_shape, adjoint):
    R, Rf, Ca, Cb = downsample._matrices(*plan)
    if adjoint:
        return scale * (R.T @ X @ Ca.T + np.conj(Rf.T @ X @ Cb.T))
    return scale * (R @ X @ Ca + Rf @ np.conj(X) @ Cb)


def one_step(net, x, y):
    loss = SoftmaxCrossEntropy()
    logits = net.forward(x)
    value = loss.forward(logits, y)
    dx = net.backward(loss.backward())
    out = {"loss": np.asarray(value), "logits": logits.copy(), "input": dx.copy()}
    out.update({k: g.copy() for k, g in net.gradients().items()})
    net.clear_cache()
    return out


@pytest.mark.parametrize("name", ["spec-lenet", "spec-vgg11"])
def test_fast_paths_equal_the_formulas(name, monkeypatch):
    rng = np.random.default_rng(5)
    net = nets.build(name, beta=0.1, seed=3, dtype=np.float64)
    x = rng.standard_normal((3, 3, 32, 32))
    y = np.array([1, 4, 7])
    lsuv(net, x)
    fast = one_step(net, x, y)
    monkeypatch.setattr(kernels, "_numba_kernels", False)
    monkeypatch.setattr(fft, "kernel_spectrum_frequency_major", reference_kernel_spectrum)
    monkeypatch.setattr(fft, "kernel_spectrum_adjoint_frequency_major", reference_kernel_spectrum_adjoint)
    monkeypatch.setattr(spectral_conv, "batched_matmul", lambda A, B, out=None: np.einsum("fnk,fkm->fnm", A, B))
    monkeypatch.setattr(downsample, "_plan", lambda *key: key)
    monkeypatch.setattr(downsample, "_apply_blocks", reference_resample)
    reference = one_step(net, x, y)
    assert set(fast) == set(reference)
    for key, expected in reference.items():
        error = np.linalg.norm(fast[key] - expected) / np.linalg.norm(expected)
        assert error < 1e-12, (key, error)
    weights = [k for k in reference if k.endswith("weight")]
    assert all(np.linalg.norm(reference[k]) > 0 for k in weights), "a layer got no gradient"
