"""What the lossy value codecs cost in test accuracy: one net trained with each storage codec.

    .venv/bin/python validation/codec_accuracy.py --data-dir ../shared/data/cifar10 --out runs/codec_accuracy

Trains ``--net`` (Spec-LeNet by default) at one beta with every ``--storages`` codec and every
``--seeds`` seed, the same recipe otherwise. A lossless codec (``csr``, ``bitmask``) gives
gradients identical to ``dense``, so the lossless run of a seed is the control: the differences
from it are the value codec's doing (plus the chaos of training, which the spread over seeds
shows). Prints one JSON line per run and a table (mean and spread of test accuracy, saved bytes
averaged over the run), writes OUT/codecs.json.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np

from specref import data
from specref.training import train


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--net", default="spec-lenet")
    parser.add_argument("--data", default="cifar10")
    parser.add_argument("--data-dir", default=os.path.join("..", "shared", "data", "cifar10"))
    parser.add_argument("--out", default=os.path.join("runs", "codec_accuracy"))
    parser.add_argument("--beta", type=float, default=0.5)
    parser.add_argument("--storages", nargs="+", default=["bitmask", "bitmask-fp16", "bitmask-int8"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=0.02)
    parser.add_argument("--limit-train", type=int, default=4000)
    parser.add_argument("--limit-test", type=int, default=None)
    args = parser.parse_args(argv)
    dataset = data.load(args.data, root=args.data_dir).subset(args.limit_train, args.limit_test)
    recipe = dict(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, lr_halve_every=None,
                  beta=args.beta, progress=False, memory_every=0)
    print(f"# {args.net} on {dataset.name}: {dataset.num_train} train / {dataset.num_test} test, {recipe}",
          flush=True)
    runs = []
    for seed in args.seeds:
        for storage in args.storages:
            label = f"{args.net}-{storage}-seed{seed}"
            s = train(args.net, dataset, storage=storage, seed=seed, out=os.path.join(args.out, label),
                      **recipe).summary
            run = {"run": label, "storage": storage, "seed": seed, "test_accuracy": s["test_accuracy"],
                   "test_loss": s["test_loss"], "saved_bytes_mean": s["saved_bytes_mean"]}
            runs.append(run)
            print(json.dumps(run), flush=True)
    rows = _rows(runs, args.storages)
    with open(os.path.join(args.out, "codecs.json"), "w", encoding="utf-8") as f:
        json.dump({"net": args.net, "data": dataset.name, "recipe": recipe, "runs": runs, "rows": rows}, f,
                  indent=2)
    print(_table(rows))


def _rows(runs, storages):
    """Per codec: mean/min/max test accuracy, mean change from the same seed's first codec, bytes."""
    control = {r["seed"]: r for r in runs if r["storage"] == storages[0]}
    rows = []
    for storage in storages:
        mine = [r for r in runs if r["storage"] == storage]
        acc = np.array([r["test_accuracy"] for r in mine])
        delta = np.array([r["test_accuracy"] - control[r["seed"]]["test_accuracy"] for r in mine])
        rows.append({"storage": storage, "runs": len(mine), "accuracy_mean": float(acc.mean()),
                     "accuracy_min": float(acc.min()), "accuracy_max": float(acc.max()),
                     "change_mean": float(delta.mean()), "change_min": float(delta.min()),
                     "change_max": float(delta.max()),
                     "saved_bytes_mean": float(np.mean([r["saved_bytes_mean"] for r in mine]))})
    return rows


def _table(rows):
    lines = [f"{'storage':<14} {'runs':>4} {'test acc mean':>13} {'[min, max]':>16} "
             f"{'change vs ' + rows[0]['storage']:>22} {'saved MiB':>9}"]
    for r in rows:
        lines.append(f"{r['storage']:<14} {r['runs']:>4} {r['accuracy_mean']:>13.4f} "
                     f"[{r['accuracy_min']:.4f}, {r['accuracy_max']:.4f}] "
                     f"{r['change_mean']:>+9.4f} [{r['change_min']:+.4f}, {r['change_max']:+.4f}] "
                     f"{r['saved_bytes_mean'] / 2**20:>9.3f}")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
