"""Independent references the tests compare against: direct sums, no FFT."""
import numpy as np
from scipy.signal import convolve2d


def full_convolution(x, w, bias=None):
    """y[b, o] = sum_c convolve2d(x[b, c], w[o, c], "full") + bias[o]."""
    b, c, m, n = x.shape
    o, _, k, _ = w.shape
    y = np.zeros((b, o, m + k - 1, n + k - 1))
    for i in range(b):
        for j in range(o):
            for ch in range(c):
                y[i, j] += convolve2d(x[i, ch], w[j, ch], mode="full")
            if bias is not None:
                y[i, j] += bias[j]
    return y


def circular_convolution(x, w, bias=None):
    """y[i, j] = sum_{a, b} w[a, b] x[(i - a) mod P, (j - b) mod Q], summed over channels."""
    nb, c, p, q = x.shape
    o, _, k, _ = w.shape
    y = np.zeros((nb, o, p, q))
    for a in range(k):
        for b in range(k):
            shifted = np.roll(x, shift=(a, b), axis=(2, 3))          # x[i - a, j - b]
            y += np.einsum("bcpq,oc->bopq", shifted, w[:, :, a, b])
    if bias is not None:
        y += bias[None, :, None, None]
    return y
