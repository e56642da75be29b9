"""Audit SpecNet's gradient approximation: how far are SpecNet's gradients from the true ones?

The paper says that since feature maps are stored sparsely, "the gradients calculated in the
backward propagation are approximations to the true gradients". There are two readings
(DESIGN.md), and both are measured here against g0, the exact gradient of the beta = 0
network (no threshold anywhere) at the same weights and batch:

(a) Algorithm 1 as written: the threshold is part of the forward pass. specref's backward
    is exact for that thresholded network (tested against finite differences); g_a differs
    from g0 because the network itself differs.
(b) storage only: the forward pass is the beta = 0 network, and only the copies kept for
    backward are thresholded (a codec that zeroes |v| <= beta when it stores a map). The
    mask of each threshold is the stored map's non-zero pattern, as a sparse store gives it.

For each beta and each parameter: cosine(g, g0) and |g - g0| / |g0|, plus the density of
the kept maps, and the loss of (a) next to the loss of the beta = 0 network.

    python validation/gradient_audit.py                              # spec-lenet, digits
    python validation/gradient_audit.py --data cifar10 --data-dir ../shared/data/cifar10 \
        --betas 0.05 0.1 0.25 0.5 --out audit.json
"""
from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from specref import SoftmaxCrossEntropy, data, nets  # noqa: E402
from specref.memory import saved_bytes  # noqa: E402
from specref.storage import Codec, get_codec, set_storage  # noqa: E402


class ThresholdingCodec(Codec):
    """Stores a map with its entries |v| <= beta dropped (reading (b)); exact otherwise."""

    def __init__(self, beta, inner="csr"):
        inner = get_codec(inner)
        super().__init__(inner.structure, inner.values)
        self.beta, self.name = beta, f"threshold({beta})+{inner.name}"

    def encode(self, array):
        xp = np if isinstance(array, np.ndarray) else __import__("cupy")
        if xp.iscomplexobj(array):
            array = array * (xp.abs(array) > self.beta)
        return super().encode(array)


def gradients(net, x, y):
    loss = SoftmaxCrossEntropy()
    value = float(loss.forward(net.forward(x), y))
    kept = saved_bytes(net)
    net.backward(loss.backward())
    return value, {k: g.copy() for k, g in net.gradients().items()}, kept


def compare(g, g0):
    out = {}
    for name, ref in g0.items():
        diff = np.linalg.norm(g[name] - ref)
        norm0, norm = np.linalg.norm(ref), np.linalg.norm(g[name])
        cosine = float(np.vdot(g[name], ref) / (norm * norm0)) if norm and norm0 else float("nan")
        out[name] = {"cosine": cosine, "relative_error": float(diff / norm0) if norm0 else float("nan")}
    return out


def summarize(per_param):
    cos = [v["cosine"] for v in per_param.values()]
    rel = [v["relative_error"] for v in per_param.values()]
    return {"min_cosine": float(np.nanmin(cos)), "max_relative_error": float(np.nanmax(rel))}


def audit(args):
    if args.data == "digits":
        ds = data.load("digits")
    else:
        ds = data.load(args.data, root=args.data_dir)
    x = ds.test_x[: args.batch].astype(np.float64)
    y = ds.test_y[: args.batch]

    def build(beta):
        net = nets.build(args.net, beta=beta, seed=args.seed, dtype=np.float64,
                         input_shape=ds.input_shape, num_classes=ds.num_classes)
        if args.checkpoint:
            stored = np.load(args.checkpoint)
            for name, p in net.parameters().items():
                p[...] = stored["param/" + name] if "param/" + name in stored else stored[name]
        return net

    loss0, g0, dense_bytes = gradients(build(0.0), x, y)
    results = {"net": args.net, "data": args.data, "batch": args.batch, "fft_norm": "ortho",
               "checkpoint": args.checkpoint, "loss_beta0": loss0, "saved_bytes_beta0": dense_bytes,
               "betas": []}
    for beta in args.betas:
        loss_a, g_a, bytes_a = gradients(_with_storage(build(beta), "csr"), x, y)
        net_b = _with_storage(build(0.0), ThresholdingCodec(beta, "csr"))
        loss_b, g_b, bytes_b = gradients(net_b, x, y)
        a, b = compare(g_a, g0), compare(g_b, g0)
        results["betas"].append({
            "beta": beta,
            "a_algorithm1": {"loss": loss_a, "saved_bytes": bytes_a, **summarize(a), "params": a},
            "b_storage_only": {"loss": loss_b, "saved_bytes": bytes_b, **summarize(b), "params": b},
        })
    return results


def _with_storage(net, codec):
    set_storage(net, codec)
    return net


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--net", default="spec-lenet")
    parser.add_argument("--data", default="digits")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--checkpoint", default=None, help="a specref train checkpoint.npz")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--betas", type=float, nargs="+", default=[0.01, 0.05, 0.1, 0.25, 0.5])
    parser.add_argument("--out", default=None, help="write the full results as JSON here")
    args = parser.parse_args(argv)
    results = audit(args)
    if args.out:
        with open(args.out, "w") as f:
            json.dump(results, f, indent=1)
    print(f"{args.net} on {args.data}, batch {args.batch}, float64; loss at beta 0: {results['loss_beta0']:.4f}")
    print(f"{'beta':>6} | {'(a) loss':>9} {'min cos':>8} {'max rel':>8} {'MB kept':>8} |"
          f" {'(b) loss':>9} {'min cos':>8} {'max rel':>8} {'MB kept':>8}")
    for row in results["betas"]:
        a, b = row["a_algorithm1"], row["b_storage_only"]
        print(f"{row['beta']:>6g} | {a['loss']:>9.4f} {a['min_cosine']:>8.4f} {a['max_relative_error']:>8.4f}"
              f" {a['saved_bytes'] / 1e6:>8.3f} | {b['loss']:>9.4f} {b['min_cosine']:>8.4f}"
              f" {b['max_relative_error']:>8.4f} {b['saved_bytes'] / 1e6:>8.3f}")
    print(f"beta 0, dense: {results['saved_bytes_beta0'] / 1e6:.3f} MB kept")
    return 0


if __name__ == "__main__":
    sys.exit(main())
