"""A sweep's tables and its Fig. 1 plot (:mod:`specref.sweep` writes the cells).

Each Spec cell is compared with its spatial baseline of the same seed (``base``):

    relative accuracy  = acc / acc_base
    relative error     = (1 - acc) / (1 - acc_base)
    relative memory    = bytes / bytes_base, for the mean and the peak of the bytes kept for
                         backward over the run (``saved_bytes_mean``, ``saved_bytes_peak``, the
                         paper's average and peak memory) and the allocator peak (``peak_bytes``)

A figure is None where an input is missing (the cell or its baseline failed) or the ratio is
undefined (a zero denominator). The cells are then grouped by (net, beta, activation, storage):
per figure the mean, the sample standard deviation over seeds (None for one seed), min and max.

Files in OUT: ``table.csv`` (one row per cell), ``table_mean.csv`` (one row per group) and
``table.json`` ({"sweep": configuration, "cells": [...], "groups": [...]}), each written to a
temporary file and renamed, so a reader never sees half a table.
"""
from __future__ import annotations

import csv
import io
import json
import os
import statistics

from .checkpoint import write_text_atomic

IDENTITY = ("name", "net", "base", "beta", "activation", "storage", "seed")
CELL_COLUMNS = IDENTITY + (
    "status", "epochs", "test_accuracy", "relative_accuracy", "relative_error", "saved_bytes_mean",
    "saved_bytes_peak", "peak_bytes", "relative_saved_mean", "relative_saved_peak", "relative_peak_bytes",
    "density", "step_ms", "seconds", "error")
GROUP_KEYS = ("net", "beta", "activation", "storage")
SPREAD_OF = ("test_accuracy", "relative_accuracy", "relative_error", "relative_saved_mean",
             "relative_saved_peak", "relative_peak_bytes", "density", "step_ms")
STATISTICS = ("mean", "std", "min", "max")
GROUP_COLUMNS = GROUP_KEYS + ("seeds", "failed") + tuple(f"{m}_{s}" for m in SPREAD_OF for s in STATISTICS)
TABLE_FILE = "table.json"


def run_figures(history):
    """What a cell's row takes from its :func:`specref.training.train` History: the summary's
    figures (saved bytes averaged and peaked over the run) and the mean kept density of its epochs."""
    s = history.summary
    densities = [e["density"] for e in history if e.get("density") is not None]
    return {"epochs": s["epochs"], "test_accuracy": s["test_accuracy"], "test_loss": s["test_loss"],
            "saved_bytes_mean": s["saved_bytes_mean"], "saved_bytes_peak": s["saved_bytes_peak"],
            "peak_bytes": s["peak_bytes"], "density": sum(densities) / len(densities) if densities else None,
            "step_ms": s["step_ms"], "seconds": s["seconds"], "fft_norm": s.get("fft_norm")}


def ratio(numerator, denominator):
    """numerator / denominator, or None when either is missing or the denominator is 0."""
    if numerator is None or denominator is None or denominator == 0:
        return None
    return numerator / denominator


def relative(row, baseline):
    """The relative figures of ``row`` against ``baseline`` (a row, or None)."""
    ok = row.get("status") == "ok" and baseline is not None and baseline.get("status") == "ok"
    get = (lambda r, key: r.get(key)) if ok else (lambda r, key: None)
    accuracy, base_accuracy = get(row, "test_accuracy"), get(baseline, "test_accuracy")
    return {"relative_accuracy": ratio(accuracy, base_accuracy),
            "relative_error": ratio(None if accuracy is None else 1 - accuracy,
                                    None if base_accuracy is None else 1 - base_accuracy),
            "relative_saved_mean": ratio(get(row, "saved_bytes_mean"), get(baseline, "saved_bytes_mean")),
            "relative_saved_peak": ratio(get(row, "saved_bytes_peak"), get(baseline, "saved_bytes_peak")),
            "relative_peak_bytes": ratio(get(row, "peak_bytes"), get(baseline, "peak_bytes"))}


def cell_table(rows):
    """Every row with its relative figures (a baseline against itself: 1 where defined)."""
    baselines = {(r["net"], r["seed"]): r for r in rows if r.get("baseline")}
    return [{**row, **relative(row, baselines.get((row["base"], row["seed"])))} for row in rows]


def spread(values):
    """{"mean", "std" (sample, None for fewer than two), "min", "max"} of the non-None values."""
    values = [v for v in values if v is not None]
    if not values:
        return dict.fromkeys(STATISTICS)
    return {"mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else None,
            "min": min(values), "max": max(values)}


def groups(cells):
    """One row per (net, beta, activation, storage), in order of appearance: the spread over
    seeds of each of :data:`SPREAD_OF`, with ``seeds`` (cells that finished) and ``failed``."""
    grouped = {}
    for row in cells:
        grouped.setdefault(tuple(row.get(k) for k in GROUP_KEYS), []).append(row)
    table = []
    for key, members in grouped.items():
        done = [r for r in members if r.get("status") == "ok"]
        entry = {**dict(zip(GROUP_KEYS, key)), "seeds": len(done), "failed": len(members) - len(done)}
        for metric in SPREAD_OF:
            entry.update({f"{metric}_{s}": v for s, v in spread([r.get(metric) for r in done]).items()})
        table.append(entry)
    return table


def write(out, config, rows):
    """table.csv, table_mean.csv and table.json in ``out`` from the cells' ``rows``."""
    cells = cell_table(rows)
    grouped = groups(cells)
    write_text_atomic(os.path.join(out, "table.csv"), _csv(cells, CELL_COLUMNS))
    write_text_atomic(os.path.join(out, "table_mean.csv"), _csv(grouped, GROUP_COLUMNS))
    write_text_atomic(os.path.join(out, TABLE_FILE),
                      json.dumps({"sweep": config, "cells": cells, "groups": grouped}, indent=2) + "\n")


def read(out):
    """OUT's table.json as a dict; ValueError if there is none."""
    path = os.path.join(out, TABLE_FILE)
    if not os.path.isfile(path):
        raise ValueError(f"{out} has no {TABLE_FILE} (is it the --out folder of `specref sweep`?)")
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def _csv(rows, columns):
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows({k: "" if row.get(k) is None else row[k] for k in columns} for row in rows)
    return buffer.getvalue()


def format_groups(grouped):
    """The groups as a text table: mean +- std over seeds."""
    def cell(entry, metric, digits):
        mean, std = entry[f"{metric}_mean"], entry[f"{metric}_std"]
        if mean is None:
            return "n/a"
        return f"{mean:.{digits}f}" + ("" if std is None else f"+-{std:.{digits}f}")

    header = (f"{'net':<14} {'beta':>6} {'activation':<12} {'storage':<8} {'seeds':>5} {'accuracy':>14} "
              f"{'rel. error':>14} {'rel. mem mean':>14} {'rel. mem peak':>14}")
    lines = [header, "-" * len(header)]
    for g in grouped:
        beta = "-" if g["beta"] is None else f"{g['beta']:g}"
        seeds = f"{g['seeds']}" + (f"/{g['seeds'] + g['failed']}" if g["failed"] else "")
        lines.append(f"{g['net']:<14} {beta:>6} {g['activation'] or '-':<12} {g['storage']:<8} {seeds:>5} "
                     f"{cell(g, 'test_accuracy', 4):>14} {cell(g, 'relative_error', 3):>14} "
                     f"{cell(g, 'relative_saved_mean', 3):>14} {cell(g, 'relative_saved_peak', 3):>14}")
    return "\n".join(lines)


def plot(out, output=None):
    """The paper's Fig. 1 panels from OUT's table: relative memory (average solid, peak dashed)
    and relative error against beta, one line per (net, activation, storage), error bars one
    standard deviation over seeds. Writes a PNG (default OUT/fig1.png); returns its path."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    table = read(out)
    lines = {}
    for g in table["groups"]:
        if g["beta"] is not None:
            lines.setdefault((g["net"], g["activation"], g["storage"]), []).append(g)
    if not lines:
        raise ValueError(f"{out}'s table holds no Spec cells yet")
    figure = Figure(figsize=(12, 4.5), dpi=100)
    FigureCanvasAgg(figure)
    memory_axes, error_axes = figure.subplots(1, 2)
    for i, ((net, activation, storage), members) in enumerate(lines.items()):
        members = sorted(members, key=lambda g: g["beta"])
        betas, label = [g["beta"] for g in members], f"{net} {activation} ({storage})"
        color = f"C{i % 10}"
        marker = "o" if i < 10 else "s"         # matplotlib's cycle has 10 colours
        _errorbar(memory_axes, betas, members, "relative_saved_mean", color, "-", label, marker)
        _errorbar(memory_axes, betas, members, "relative_saved_peak", color, "--", None, marker)
        _errorbar(error_axes, betas, members, "relative_error", color, "-", None, marker)
    memory_axes.set(xlabel="beta", ylabel="memory / spatial net's (solid: average, dashed: peak)",
                    title="relative memory kept for backward")
    error_axes.set(xlabel="beta", ylabel="error / spatial net's", title="relative test error")
    for axes in (memory_axes, error_axes):
        axes.axhline(1.0, color="gray", linewidth=0.8)
        axes.grid(alpha=0.3)
    # one legend for both panels, outside them: with many lines it would hide the data
    figure.legend(loc="center right", fontsize=8, frameon=False)
    figure.tight_layout(rect=(0, 0, 0.78, 1))
    output = output or os.path.join(out, "fig1.png")
    os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
    figure.savefig(output, format="png")
    return output


def _errorbar(axes, betas, members, metric, color, linestyle, label, marker="o"):
    means = [float("nan") if g[f"{metric}_mean"] is None else g[f"{metric}_mean"] for g in members]
    stds = [0.0 if g[f"{metric}_std"] is None else g[f"{metric}_std"] for g in members]
    axes.errorbar(betas, means, yerr=stds, color=color, linestyle=linestyle, marker=marker, markersize=3,
                  capsize=2, label=label)
