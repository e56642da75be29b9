"""README's sweep tables from a `specref sweep` output folder (its table_mean.csv, via sweep_table.read).

    python validation/sweep_markdown.py sweeps/lenet-cifar [--metric relative_accuracy]

One row per (net, activation, storage), one column per beta; each cell is the mean over seeds of
``--metric`` and of the average saved memory relative to the spatial net, "metric / memory", with
the spread over seeds (min to max) when there is more than one seed.
"""
from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from specref import sweep_table  # noqa: E402


def markdown(out, metric="relative_accuracy"):
    groups = [g for g in sweep_table.read(out)["groups"] if g["beta"] is not None]
    betas = sorted({g["beta"] for g in groups})
    rows = {}
    for g in groups:
        rows.setdefault((g["net"], g["activation"], g["storage"]), {})[g["beta"]] = g
    lines = [f"| net | activation | {' | '.join(f'beta {b:g}' for b in betas)} |",
             "|---|---|" + "---|" * len(betas)]
    for (net, activation, _storage), by_beta in rows.items():
        cells = [_cell(by_beta.get(b), metric) for b in betas]
        lines.append(f"| {net} | {activation} | {' | '.join(cells)} |")
    return "\n".join(lines)


def _cell(g, metric):
    if g is None or g.get(f"{metric}_mean") is None:
        return ""
    text = f"{g[f'{metric}_mean']:.3f}"
    if g["seeds"] > 1:
        text += f" [{g[f'{metric}_min']:.3f}, {g[f'{metric}_max']:.3f}]"
    return f"{text} / {g['relative_saved_mean_mean']:.2f}"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", help="the sweep's output folder")
    parser.add_argument("--metric", default="relative_accuracy",
                        help="a table column: relative_accuracy, relative_error, test_accuracy, ...")
    args = parser.parse_args(argv)
    print(markdown(args.out, args.metric))


if __name__ == "__main__":
    main()
