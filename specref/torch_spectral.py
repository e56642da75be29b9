"""The Spec layers in PyTorch (``torch.fft`` and autograd), written from specref's conventions.

An independent second implementation of what the Spec layers compute (README Conventions,
specref.fft's docstring), for validating specref and for training a Spec net under PyTorch. It
calls none of specref's layer or FFT code; its backward passes are autograd's. A spectral map
travels as :class:`Half` (values complex (B, C, P, Q//2+1) in rfft2 layout, the spatial size
(P, Q), the FFT norm), since Q cannot be recovered from the values.

    SpectralConv2d  Y[b, o] = sum_c X[b, c] K[o, c] + bias[o] dc_scale delta(nu = 0),
                    K = rfft2(w, s=(P, Q)) unnormalized: the product of spectra *is* the true
                    (flipped-kernel) convolution, linear for a real input zero-padded to
                    (M+k-1, N+k-1), circular at the input's size for a Half
    Threshold       Y * [|Y| > beta]  (complex magnitude, strict)
    ComplexTanh     tanh(Re Y) + i tanh(Im Y)
    SpectralDownsample  "alias" = x[::f, ::f]; "crop" keeps the ceil(P/f) lowest frequencies,
                    an even output's Nyquist bin receiving both +-P'/2 (the fold); "box"
                    prefilter multiplies by the f x f box mean's transfer function first
    ToSpatial       irfft2(X, s=(P, Q), norm)

Downsampling acts on the full spectrum rebuilt from the stored half (columns Q//2+1.. are
conj(X[-p, Q - h]) of stored ones; stored values are used as they are, also on the DC and
Nyquist columns), then keeps the output's half: the stored values are the free variables.

Gradients. For a real loss L and a complex tensor z, PyTorch's ``z.grad`` is 2 dL/d conj(z)
(the conjugate Wirtinger derivative, doubled), which equals dL/dRe(z) + i dL/dIm(z): specref's
convention, so complex gradients compare with no conversion factor (tested on |z|^2).

The module-level functions (``kernel_spectrum``, ``dc_scale``, ``to_spectrum``, ``to_spatial``,
``threshold``, ``split_tanh``, ``crop_axis``) are the conventions; the layers look them up at
call time, so a test can swap one for a wrong convention and check that validation catches it.
"""
from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import nn

NORMS = ("backward", "ortho", "forward")


class Half(NamedTuple):
    """A batch of real maps as rfft2 half spectra: values (B, C, P, Q//2+1), size (P, Q), norm."""
    values: torch.Tensor
    size: tuple
    norm: str


# --- the conventions --------------------------------------------------------------------------
def kernel_spectrum(weight, size):
    """K = rfft2(w zero-padded at the end to size), unnormalized: (O, C, P, Q//2+1)."""
    return torch.fft.rfft2(weight, s=tuple(size), norm="backward")


def dc_scale(size, norm):
    """DC bin of F_norm(ones(P, Q)): sqrt(PQ) ("ortho"), PQ ("backward"), 1 ("forward")."""
    p, q = size
    return {"backward": p * q, "ortho": math.sqrt(p * q), "forward": 1.0}[norm]


def to_spectrum(x, size, norm):
    """rfft2 of real x (B, C, M, N) zero-padded at the end to size."""
    return torch.fft.rfft2(x, s=tuple(size), norm=norm)


def to_spatial(values, size, norm):
    """irfft2 of a half spectrum to the real (B, C, P, Q) maps."""
    return torch.fft.irfft2(values, s=tuple(size), norm=norm)


def threshold(values, beta):
    """values where |values| > beta, else 0; autograd passes the gradient where kept."""
    return torch.where(values.abs() > beta, values, torch.zeros_like(values))


def split_tanh(values):
    """tanh(a) + i tanh(b)."""
    return torch.complex(torch.tanh(values.real), torch.tanh(values.imag))


def resample_scale(size, out_size, norm):
    """Keeps spatial values: r = P'Q'/(PQ) ("backward"), sqrt(r) ("ortho"), 1 ("forward")."""
    ratio = out_size[0] * out_size[1] / (size[0] * size[1])
    return {"backward": ratio, "ortho": math.sqrt(ratio), "forward": 1.0}[norm]


def crop_axis(full, axis, n_out):
    """The n_out lowest frequencies of one axis of a full spectrum (numpy order): 0 ..
    ceil(n_out/2)-1, then -(n_out//2) .. -1; an even n_out's Nyquist bin -n_out/2 also receives
    +n_out/2 (two bins of the input, one of the output)."""
    n = full.shape[axis]
    low, high = (n_out + 1) // 2, n_out // 2
    negative = full.narrow(axis, n - high, high)
    if n_out % 2 == 0 and high % n != (n - high) % n:
        folded = negative.narrow(axis, 0, 1) + full.narrow(axis, high, 1)
        negative = torch.cat([folded, negative.narrow(axis, 1, high - 1)], axis)
    return torch.cat([full.narrow(axis, 0, low), negative], axis)


def alias_axis(full, axis, n_out):
    """Output frequency nu sums the aliases nu + a n_out (a < f) of one axis of a full spectrum."""
    n = full.shape[axis]
    axis = axis % full.ndim
    return full.unflatten(axis, (n // n_out, n_out)).sum(axis)


def full_spectrum(values, size):
    """(..., P, Q) from the half (..., P, Q//2+1): column h > Q//2 is conj(X[-p mod P, Q - h])."""
    p, q = size
    h = values.shape[-1]
    if q == h:
        return values
    rows = (-torch.arange(p, device=values.device)) % p
    cols = q - torch.arange(h, q, device=values.device)
    return torch.cat([values, values[..., rows, :][..., cols].conj()], dim=-1)


def box_response(size, factor, like):
    """d_P(nu) d_Q(mu) on the half grid, d_n(nu) = mean over a < f of exp(+2 pi i nu a / n):
    the transfer function of z[m, l] = mean over a, b < f of x[m + a, l + b] (circular)."""
    p, q = size
    taps = torch.arange(factor, dtype=torch.float64)

    def mean_phase(n, count):
        angle = 2 * math.pi * torch.outer(torch.arange(count, dtype=torch.float64), taps) / n
        return torch.polar(torch.ones_like(angle), angle).mean(dim=1)

    return torch.outer(mean_phase(p, p), mean_phase(q, q // 2 + 1)).to(like.device, like.dtype)


# --- the layers -------------------------------------------------------------------------------
class SpectralConv2d(nn.Module):
    """Spectral convolution (see the module docstring); ``stride`` s > 1 then alias-downsamples by s."""

    def __init__(self, weight, bias=None, fft_norm="ortho", stride=1):
        super().__init__()
        if fft_norm not in NORMS:
            raise ValueError(f"fft_norm must be one of {NORMS}, got {fft_norm!r}")
        self.weight = nn.Parameter(weight)
        self.bias = None if bias is None else nn.Parameter(bias)
        self.fft_norm = fft_norm
        self.downsample = SpectralDownsample(stride, "alias") if stride > 1 else None

    def forward(self, x):
        k = self.weight.shape[-1]
        if isinstance(x, Half):
            X, size, norm = x.values, x.size, x.norm
        else:
            size, norm = (x.shape[-2] + k - 1, x.shape[-1] + k - 1), self.fft_norm
            X = to_spectrum(x, size, norm)
        if X.shape[1] != self.weight.shape[1]:
            raise ValueError(f"x has {X.shape[1]} channels, expected in_channels={self.weight.shape[1]}")
        Y = torch.einsum("bcph,ocph->boph", X, kernel_spectrum(self.weight, size))
        if self.bias is not None:
            dc = (self.bias * dc_scale(size, norm))[:, None, None]
            Y = Y + nn.functional.pad(dc, (0, Y.shape[-1] - 1, 0, Y.shape[-2] - 1))
        out = Half(Y, tuple(size), norm)
        return out if self.downsample is None else self.downsample(out)


class Threshold(nn.Module):
    def __init__(self, beta):
        super().__init__()
        self.beta = float(beta)

    def forward(self, x):
        return x._replace(values=threshold(x.values, self.beta))


class ComplexTanh(nn.Module):
    def forward(self, x):
        return x._replace(values=split_tanh(x.values))


class SpectralDownsample(nn.Module):
    """Output size ceil(P/f) x ceil(Q/f); values scaled by resample_scale so spatial values stay."""

    def __init__(self, factor=2, mode="alias", prefilter=None):
        super().__init__()
        if mode not in ("alias", "crop"):
            raise ValueError(f"mode must be 'alias' or 'crop', got {mode!r}")
        if prefilter not in (None, "box"):
            raise ValueError(f"prefilter must be None or 'box', got {prefilter!r}")
        self.factor, self.mode, self.prefilter = int(factor), mode, prefilter

    def forward(self, x):
        (p, q), f = x.size, self.factor
        out_size = (-(-p // f), -(-q // f))
        X = x.values
        if self.prefilter == "box":
            X = X * box_response(x.size, f, X)
        if self.mode == "alias" and (p % f or q % f):
            # f does not divide the size: x[::f, ::f] taken in space
            spatial = to_spatial(X, x.size, x.norm)[..., ::f, ::f]
            return Half(to_spectrum(spatial, out_size, x.norm), out_size, x.norm)
        resample = alias_axis if self.mode == "alias" else crop_axis
        full = full_spectrum(X, x.size)
        full = resample(resample(full, -2, out_size[0]), -1, out_size[1])
        scale = resample_scale(x.size, out_size, x.norm)
        return Half(full[..., : out_size[1] // 2 + 1] * scale, out_size, x.norm)


class ToSpatial(nn.Module):
    def forward(self, x):
        return to_spatial(x.values, x.size, x.norm)


class DenseConcat(nn.Sequential):
    """[x, branch(x)] along channels, for real maps and for Half spectra (same size and norm)."""

    def forward(self, x):
        out = super().forward(x)
        if isinstance(x, Half):
            if not isinstance(out, Half) or out.size != x.size or out.norm != x.norm:
                raise ValueError("a DenseConcat branch must keep the spectrum's size and norm")
            return x._replace(values=torch.cat([x.values, out.values], dim=1))
        return torch.cat([x, out], dim=1)


class GlobalAvgPool2d(nn.Module):
    def forward(self, x):
        return x.mean(dim=(2, 3))
