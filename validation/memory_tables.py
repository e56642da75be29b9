"""Memory tables: Spec nets under each storage codec vs their spatial baselines (one step each).

    .venv/bin/python validation/memory_tables.py --net vgg16 --beta 0.1 1.0 --batch 32 \
        [--checkpoint runs/x/checkpoint.npz | --init lsuv] [--storages dense csr bitmask bitmask-fp16]

For the Spec form of --net at each --beta, on the first test batch of the CIFAR-10 subset (or a Gaussian batch
with --gaussian), :func:`specref.memory.measure` runs one training step per storage codec and the
spatial net of the same architecture twice (tanh without batch norm; ReLU with batch norm), all
dense, in this process. Prints one JSON line per row and a table (MiB = 2^20 bytes; relative =
Spec / spatial), and appends the rows to --out (JSON lines) when given.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

from specref import data, lsuv, memory, nets
from specref.checkpoint import load_weights


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--net", required=True, help="spatial base name: lenet, vgg16, densenet121, ...")
    parser.add_argument("--beta", type=float, nargs="+", required=True)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--checkpoint", default=None, help="a `specref train` checkpoint of spec-NET")
    parser.add_argument("--init", choices=("default", "lsuv"), default="default",
                        help="without --checkpoint: lsuv rescales the drawn weights on 128 training images first")
    parser.add_argument("--storages", nargs="+", default=["dense", "csr", "bitmask", "bitmask-fp16"])
    parser.add_argument("--data-dir", default=os.path.join("..", "shared", "data", "cifar10"))
    parser.add_argument("--gaussian", action="store_true", help="x ~ N(0, 1) per pixel instead of CIFAR-10")
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    if args.gaussian:
        rng = np.random.default_rng(0)
        x, y, source = (rng.standard_normal((args.batch, 3, 32, 32)).astype(np.float32),
                        rng.integers(0, 10, args.batch), "gaussian")
    else:
        dataset = data.load("cifar10", root=args.data_dir)
        x, y = next(iter(dataset.batches("test", args.batch, shuffle=False, augment=False)))
        source = f"cifar10 test[0:{len(y)}]"
    weights = args.checkpoint or f"untrained (seed 0, init {args.init})"
    if args.init == "lsuv" and args.checkpoint is None:
        train_x = rng.standard_normal((128, 3, 32, 32)).astype(np.float32) if args.gaussian else dataset.train_x[:128]
    rows, baselines = [], None
    for beta, storage in [(beta, storage) for beta in args.beta for storage in args.storages]:
        net = nets.build("spec-" + args.net, beta=beta)
        if args.checkpoint:
            load_weights(net, args.checkpoint)
        elif args.init == "lsuv":
            lsuv(net, train_x)
        started = time.perf_counter()
        m = memory.measure(net, x, y, storage=storage, baseline=baselines is None)
        if baselines is None:
            baselines = {k: m[k] for k in m if k.startswith(("baseline", "relative"))}
            rows += [_baseline_row(m, ""), _baseline_row(m, "_bn")]
        row = {"net": m["net"], "storage": storage, "beta": m["beta"], "fft_norm": m["fft_norm"],
               "batch": m["batch"], "input": source, "weights": weights, "saved_bytes": m["saved_bytes"],
               "peak_bytes": m["peak_bytes"], "density": m["density"],
               "relative_saved": m["saved_bytes"] / baselines["baseline_saved_bytes"],
               "relative_saved_bn": m["saved_bytes"] / baselines["baseline_bn_saved_bytes"],
               "relative_peak": m["peak_bytes"] / baselines["baseline_peak_bytes"],
               "relative_peak_bn": m["peak_bytes"] / baselines["baseline_bn_peak_bytes"],
               "seconds": time.perf_counter() - started}
        rows.append(row)
        print(json.dumps(row), flush=True)
    print(_table(rows, f"spec-{args.net}, batch {len(y)}, {source}, weights {weights}"))
    if args.out:
        with open(args.out, "a", encoding="utf-8") as f:
            f.writelines(json.dumps(r) + "\n" for r in rows)


def _baseline_row(m, suffix):
    return {"net": m[f"baseline{suffix}"], "storage": "dense", "saved_bytes": m[f"baseline{suffix}_saved_bytes"],
            "peak_bytes": m[f"baseline{suffix}_peak_bytes"], "density": None, "batch": m["batch"]}


def _table(rows, title):
    mib = lambda b: f"{b / 2**20:10.2f}"  # noqa: E731
    rel = lambda v: f"{v:8.3f}" if v is not None else " " * 8  # noqa: E731
    lines = [title, f"{'net':<32} {'beta':>5} {'storage':<13} {'saved MiB':>10} {'rel':>8} {'rel bn':>8} {'peak MiB':>10} "
                    f"{'rel':>8} {'rel bn':>8} {'density':>8}"]
    for r in rows:
        beta = "" if r.get("beta") is None else f"{r['beta']:g}"
        lines.append(f"{r['net']:<32} {beta:>5} {r['storage']:<13} {mib(r['saved_bytes'])} {rel(r.get('relative_saved'))} "
                     f"{rel(r.get('relative_saved_bn'))} {mib(r['peak_bytes'])} {rel(r.get('relative_peak'))} "
                     f"{rel(r.get('relative_peak_bn'))} {rel(r['density'])}")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
