"""Beta sweep of Spec-LeNet: relative saved memory and relative accuracy (the paper's Fig. 1).

    .venv/bin/python validation/memory_sweep.py --data-dir ../shared/data/cifar10 --out runs/memory_sweep

Trains LeNet (tanh, no batch norm, dense storage: the baseline) and Spec-LeNet at every beta with
the same recipe, each into OUT/<name> (``specref plot`` reads them), Spec-LeNet keeping its maps
with ``--storage`` (bitmask by default). Relative memory is the run's average of the bytes saved
for backward after each forward (``saved_bytes_mean`` of summary.json) over LeNet's, and also the
run's peak of it; relative accuracy is the final test accuracy over LeNet's. After training,
``specref.memory.measure`` takes one step on the first test batch with the trained weights, with
csr and bitmask, for the density and the allocator peak. Prints one JSON line per run and a
table, writes OUT/sweep.json and OUT/fig1.png.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

from specref import data, memory, nets
from specref.training import train

BETAS = (0.0, 0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="cifar10")
    parser.add_argument("--data-dir", default=os.path.join("..", "shared", "data", "cifar10"))
    parser.add_argument("--out", default=os.path.join("runs", "memory_sweep"))
    parser.add_argument("--betas", type=float, nargs="+", default=BETAS)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--limit-train", type=int, default=4000)
    parser.add_argument("--limit-test", type=int, default=None)
    parser.add_argument("--lr", type=float, default=0.02)
    parser.add_argument("--storage", default="bitmask")
    parser.add_argument("--measure-batch", type=int, default=128)
    args = parser.parse_args(argv)
    dataset = data.load(args.data, root=args.data_dir).subset(args.limit_train, args.limit_test)
    recipe = dict(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, lr_halve_every=None,
                  progress=False, memory_every=50)
    print(f"# {dataset.name}: {dataset.num_train} train / {dataset.num_test} test, recipe {recipe}, "
          f"Spec storage {args.storage}", flush=True)
    x, y = next(iter(dataset.batches("test", args.measure_batch, shuffle=False, augment=False)))
    rows = [_run("lenet", None, "dense", dataset, recipe, args, x, y)]
    for beta in args.betas:
        rows.append(_run("spec-lenet", beta, args.storage, dataset, recipe, args, x, y))
    base = rows[0]
    for row in rows:
        row["relative_saved_mean"] = row["saved_bytes_mean"] / base["saved_bytes_mean"]
        row["relative_saved_peak"] = row["saved_bytes_peak"] / base["saved_bytes_peak"]
        row["relative_accuracy"] = row["test_accuracy"] / base["test_accuracy"]
    with open(os.path.join(args.out, "sweep.json"), "w", encoding="utf-8") as f:
        json.dump({"recipe": recipe, "data": dataset.name, "num_train": dataset.num_train,
                   "storage": args.storage, "rows": rows}, f, indent=2)
    print(_table(rows))
    _figure(rows, os.path.join(args.out, "fig1.png"))
    print(f"wrote {os.path.join(args.out, 'sweep.json')} and fig1.png")


def _run(name, beta, storage, dataset, recipe, args, x, y):
    label = name if beta is None else f"{name}-beta{beta:g}"
    started = time.perf_counter()
    history = train(name, dataset, beta=beta, storage=storage, out=os.path.join(args.out, label), **recipe)
    s = history.summary
    row = {"run": label, "net": name, "beta": beta, "storage": storage, "test_accuracy": s["test_accuracy"],
           "saved_bytes_mean": s["saved_bytes_mean"], "saved_bytes_peak": s["saved_bytes_peak"],
           "peak_bytes": s["peak_bytes"], "density_last_epoch": history[-1].get("density"),
           "train_seconds": time.perf_counter() - started}
    for codec in ("csr", "bitmask") if name.startswith("spec-") else ("dense",):
        m = memory.measure(history.net, x, y, storage=codec, baseline=False)
        row[f"trained_{codec}"] = {k: m[k] for k in ("saved_bytes", "peak_bytes", "density", "batch")}
    print(json.dumps(row), flush=True)
    return row


def _table(rows):
    lines = [f"{'run':<22} {'test acc':>8} {'rel acc':>7} {'saved avg MiB':>13} {'rel avg':>7} "
             f"{'rel peak':>8} {'density':>7}"]
    for r in rows:
        density = "" if r["density_last_epoch"] is None else f"{r['density_last_epoch']:.3f}"
        lines.append(f"{r['run']:<22} {r['test_accuracy']:>8.4f} {r['relative_accuracy']:>7.3f} "
                     f"{r['saved_bytes_mean'] / 2**20:>13.3f} {r['relative_saved_mean']:>7.3f} "
                     f"{r['relative_saved_peak']:>8.3f} {density:>7}")
    return "\n".join(lines)


def _figure(rows, path):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    spec = [r for r in rows if r["beta"] is not None]
    betas = [r["beta"] for r in spec]
    figure = Figure(figsize=(6, 4), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.subplots()
    axes.plot(betas, [r["relative_saved_mean"] for r in spec], "o-", label="relative memory (average)")
    axes.plot(betas, [r["relative_saved_peak"] for r in spec], "s--", label="relative memory (peak)")
    axes.plot(betas, [r["relative_accuracy"] for r in spec], "^-", label="relative accuracy")
    axes.axhline(1.0, color="gray", linewidth=0.8)
    axes.set(xlabel="beta (fft_norm ortho)", ylabel="Spec-LeNet / LeNet",
             title=f"Spec-LeNet, {spec[0]['storage']} storage, vs LeNet (dense)")
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, format="png")


if __name__ == "__main__":
    sys.exit(main())
