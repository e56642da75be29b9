"""Diagnostics behind statements in README.md, each printed as one JSON line.

    python validation/diagnostics.py blas [--busy 2]   # stacked small matmuls: threaded BLAS vs specref.batched
    python validation/diagnostics.py depth       # Spec-VGG-16 spectra at initialization (and LSUV), block by block
    python validation/diagnostics.py ablation    # Spec-LeNet on CIFAR: threshold vs normalization (slow)

``depth`` and ``ablation`` read the CIFAR-10 subset from --data-dir (default ../shared/data/cifar10).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import specref  # noqa: E402
from specref import SpectralConv2d, Threshold, data, nets  # noqa: E402
from specref.batched import batched_matmul  # noqa: E402


def _spin(seconds):
    end = time.time() + seconds
    while time.time() < end:
        pass


def blas(args):
    """complex64 (F, B, C) @ (F, C, O) for the 64 -> 64 block at 34 x 34: GFLOP/s both ways.

    ``--busy N`` keeps N other processes spinning meanwhile (a shared machine), bounded in time.
    """
    import multiprocessing

    busy = [multiprocessing.Process(target=_spin, args=(120,), daemon=True) for _ in range(args.busy)]
    for p in busy:
        p.start()
    try:
        _blas(args)
    finally:
        for p in busy:
            p.terminate()


def _blas(args):
    rng = np.random.default_rng(0)
    f, b, c, o = 612, 32, 64, 64
    x = (rng.standard_normal((f, b, c)) + 1j * rng.standard_normal((f, b, c))).astype(np.complex64)
    k = (rng.standard_normal((f, c, o)) + 1j * rng.standard_normal((f, c, o))).astype(np.complex64)
    flops = 8.0 * f * b * c * o
    for name, run in (("numpy.matmul (threaded BLAS)", lambda: np.matmul(x, k)),
                      ("specref.batched.batched_matmul", lambda: batched_matmul(x, k))):
        run()
        times = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            run()
            times.append(time.perf_counter() - start)
        median = float(np.median(times))
        print(json.dumps({"diagnostic": "blas", "case": name, "busy_processes": args.busy,
                          "median_ms": round(median * 1e3, 2),
                          "gflops": round(flops / median / 1e9, 2)}), flush=True)


def depth(args):
    """RMS of |Y| entering each Threshold of Spec-VGG-16 (beta 0): weights as built, x sqrt(3),
    and after specref.lsuv on 128 training images (measured on 16 test images)."""
    dataset = data.load("cifar10", root=args.data_dir)
    x = dataset.test_x[:16]
    for init in ("scale 1", "scale sqrt(3)", "lsuv"):
        net = nets.build("spec-vgg16", beta=0.0, seed=0)
        if init == "lsuv":
            specref.lsuv(net, dataset.train_x[:128])
        elif init == "scale sqrt(3)":
            for layer in net:
                if isinstance(layer, SpectralConv2d):
                    layer.params["weight"] *= np.float32(np.sqrt(3))
        out, rms = x, []
        for layer in net:
            if isinstance(layer, Threshold):
                rms.append(round(float(np.sqrt(np.mean(np.abs(out.values) ** 2))), 4))
            out = layer.forward(out)
        net.clear_cache()
        print(json.dumps({"diagnostic": "depth", "init": init, "rms_per_block": rms,
                          "logit_std": round(float(out.std()), 4)}), flush=True)


def ablation(args):
    """Spec-LeNet on CIFAR, 4 epochs, no augmentation, batch 128, paper lr/momentum."""
    ds = data.load("cifar10", root=args.data_dir, augment=False)
    for beta, norm in ((0.1, "ortho"), (0.0, "ortho"), (0.0, "forward")):
        net = nets.build("spec-lenet", beta=beta, seed=0, fft_norm=norm)
        history = specref.train(net, ds, epochs=4, batch_size=128, progress=False)
        print(json.dumps({"diagnostic": "ablation", "beta": beta, "fft_norm": norm,
                          "test_accuracy": [round(e["test_accuracy"], 4) for e in history],
                          "train_accuracy": round(history[-1]["train_accuracy"], 4)}), flush=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("which", choices=("blas", "depth", "ablation"))
    parser.add_argument("--data-dir", default=os.path.join("..", "shared", "data", "cifar10"))
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--busy", type=int, default=0, help="blas: spinning processes meanwhile")
    args = parser.parse_args(argv)
    {"blas": blas, "depth": depth, "ablation": ablation}[args.which](args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
