"""Both readings of the gradient audit side by side: a thin wrapper around :func:`specref.audit`.

The audit itself (what the two readings are, the finite-difference verdict) lives in
``specref/audit.py``; ``specref audit`` is the command for one reading with its table, JSON and
plot. This script prints both readings in one table, as README's "Gradient audit" section did:

    python validation/gradient_audit.py                              # spec-lenet, digits
    python validation/gradient_audit.py --data cifar10 --data-dir ../shared/data/cifar10 \\
        --betas 0.05 0.1 0.25 0.5 --out audit.json
"""
from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from specref import audit, data, nets  # noqa: E402
from specref.checkpoint import load_weights  # noqa: E402


def run(args):
    """{"forward": audit, "storage": audit} of --net on the first --batch test examples."""
    ds = data.load(args.data, root=args.data_dir)
    net = nets.build(args.net, seed=args.seed, dtype=np.float64, input_shape=ds.input_shape,
                     num_classes=ds.num_classes)
    if args.checkpoint:
        load_weights(net, args.checkpoint)
    x, y = ds.test_x[: args.batch], ds.test_y[: args.batch]
    return {reading: audit(net, x, y, args.betas, threshold=reading, fd_directions=args.fd_directions)
            for reading in ("forward", "storage")}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--net", default="spec-lenet")
    parser.add_argument("--data", default="digits")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--checkpoint", default=None, help="a specref train checkpoint.npz")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--betas", type=float, nargs="+", default=[0.01, 0.05, 0.1, 0.25, 0.5])
    parser.add_argument("--fd-directions", type=int, default=1)
    parser.add_argument("--out", default=None, help="write the full results as JSON here")
    args = parser.parse_args(argv)
    results = run(args)
    if args.out:
        with open(args.out, "w") as f:
            json.dump(results, f, indent=1)
    forward, storage = results["forward"], results["storage"]
    print(f"{args.net} on {args.data}, batch {args.batch}, float64; loss at beta 0: {forward['loss_beta0']:.4f}")
    print(f"{'beta':>6} | {'(a) loss':>9} {'min cos':>8} {'max rel':>8} {'density':>8} |"
          f" {'(b) min cos':>11} {'max rel':>8} {'density':>8} | finite differences")
    for a, b in zip(forward["betas"], storage["betas"]):
        check = a.get("finite_difference", {}).get("verdict", "not run")
        print(f"{a['beta']:>6g} | {a['loss']:>9.4f} {_f(a['min_cosine'])} {_f(a['max_relative_error'])}"
              f" {_f(a['density_mean'])} | {_f(b['min_cosine'], 11)} {_f(b['max_relative_error'])}"
              f" {_f(b['density_mean'])} | {check}")
    return 0


def _f(value, width=8):
    return f"{'n/a':>{width}}" if value is None else f"{value:>{width}.4f}"


if __name__ == "__main__":
    sys.exit(main())
