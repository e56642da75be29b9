"""``specref audit``: the command around :func:`specref.audit.audit`, its table and its plot.

    specref audit --net spec-vgg11 --betas 0,0.25,0.5,1 [--threshold forward|storage]
        [--checkpoint PATH] [--data cifar10 --data-dir DIR] [--batch 32] [--seed 0] [--json] [--plot FILE]

Without --data the batch is Gaussian (x ~ N(0, 1) per pixel, uniform labels, drawn from --seed);
with it, the first --batch test images. --checkpoint loads trained weights (the net defaults to
the checkpoint's).
"""
from __future__ import annotations

import json
import os

import numpy as np

from . import nets
from .audit import READINGS, audit, check_betas
from .checkpoint import load_weights
from .data import load as load_dataset


def add_arguments(subparsers, handler):
    """The ``audit`` subcommand."""
    p = subparsers.add_parser("audit", help="gradient audit: SpecNet's gradient vs the beta = 0 one, "
                              "with a finite-difference check of the backward")
    p.add_argument("--net", default=None, help="registry name, e.g. spec-lenet (default: the checkpoint's)")
    p.add_argument("--betas", default="0,0.1,0.25,0.5,1", help="comma-separated thresholds (default 0,0.1,0.25,0.5,1)")
    p.add_argument("--threshold", choices=READINGS, default="forward",
                   help="forward: the threshold is part of the forward pass (Algorithm 1); storage: only "
                   "the maps kept for backward are thresholded")
    p.add_argument("--checkpoint", default=None, help="checkpoint.npz of `specref train` (trained weights)")
    p.add_argument("--data", default=None, help="first test batch of this dataset (default: a Gaussian batch)")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--batch", "--batch-size", dest="batch", type=int, default=32)
    p.add_argument("--seed", type=int, default=0, help="weights (without --checkpoint), Gaussian batch, directions")
    p.add_argument("--fd-directions", type=int, default=2, help="random directions per parameter (0: no check)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--plot", default=None, metavar="FILE", help="PNG: error and density against beta")
    p.set_defaults(handler=handler)


def command(args):
    """Run ``specref audit``: prints the table (or JSON), writes the plot; returns 0."""
    betas = parse_betas(args.betas)
    if args.batch < 1:
        raise ValueError(f"--batch must be an integer >= 1, got {args.batch}")
    config = {}
    if args.checkpoint:
        if not os.path.isfile(args.checkpoint):
            raise ValueError(f"no checkpoint at {args.checkpoint} (expected the checkpoint.npz of `specref train --out`)")
        with np.load(args.checkpoint, allow_pickle=False) as saved:
            config = json.loads(str(saved["config"])) if "config" in saved.files else {}
    if args.net and config.get("net") and config["net"] != args.net:
        raise ValueError(f"checkpoint {args.checkpoint} was written for net {config['net']!r}, not --net {args.net!r}")
    name = args.net or config.get("net")
    if name is None:
        raise ValueError("give --net (or a --checkpoint whose config names it)")
    dataset = load_dataset(args.data, root=args.data_dir) if args.data else None
    input_shape, classes = (dataset.input_shape, dataset.num_classes) if dataset else ((3, 32, 32), 10)
    options = {"fft_norm": config["fft_norm"]} if config.get("fft_norm") else {}
    net = nets.build(name, dtype=np.float64, seed=args.seed, input_shape=input_shape, num_classes=classes,
                     **options)
    if args.checkpoint:
        load_weights(net, args.checkpoint)
    if dataset is not None:
        x, y = next(iter(dataset.batches("test", args.batch, shuffle=False, augment=False)))
        source = f"{dataset.name} test[0:{len(y)}]"
    else:
        rng = np.random.default_rng(args.seed)
        x, y = rng.standard_normal((args.batch, *input_shape)), rng.integers(0, classes, args.batch)
        source = "gaussian"
    result = audit(net, x, y, betas, threshold=args.threshold, fd_directions=args.fd_directions, seed=args.seed)
    result.update({"input": source, "checkpoint": args.checkpoint,
                   "weights": "checkpoint" if args.checkpoint else f"untrained (seed {args.seed})"})
    print(json.dumps(result) if args.json else format_table(result))
    if args.plot:
        draw(result, args.plot)
        if not args.json:
            print(f"wrote {args.plot}")
    return 0


def parse_betas(text):
    """"0,0.25,0.5" -> [0.0, 0.25, 0.5]; ValueError naming --betas otherwise."""
    try:
        values = [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise ValueError(f"--betas must be comma-separated numbers >= 0, e.g. 0,0.25,0.5, got {text!r}") from None
    try:
        return check_betas(values)
    except ValueError as exc:
        raise ValueError(f"--betas {text!r}: {exc}") from None


def format_table(r):
    """One row per beta (worst parameter over the net), then each block's kept density."""
    reading = ("threshold in the forward pass (Algorithm 1)" if r["threshold"] == "forward"
               else "dense forward, thresholded storage")
    lines = [f"{r['net']}: {reading}; batch {r['batch']} ({r['input']}), {r['weights']}, float64, "
             f"fft_norm {r['fft_norm']}; loss at beta 0 {r['loss_beta0']:.4f}",
             f"{'beta':>6} {'loss':>8} {'change':>8} {'max rel err':>11} {'min cos':>8} {'min sign':>8} "
             f"{'density':>8}  {'worst parameter':<16} finite differences"]
    for row in r["betas"]:
        lines.append(f"{row['beta']:>6g} {row['loss']:>8.4f} {row['loss_change']:>+8.4f} {_num(row['max_relative_error'], 11, '.2e')} "
                     f"{_num(row['min_cosine'], 8, '.4f')} {_num(row['min_sign_agreement'], 8, '.4f')} "
                     f"{_num(row['density_mean'], 8, '.3f')}  {row['worst_parameter'] or '-':<16} {_verdict(row)}")
    lines.append("kept density per block: " + "; ".join(
        f"{name}: " + " ".join(_num(row["density"][name], 0, ".3f") for row in r["betas"])
        for name in (r["betas"][0]["density"] if r["betas"] else {})))
    return "\n".join(lines)


def _verdict(row):
    check = row.get("finite_difference")
    if check is None:
        return "not run"
    text = check["verdict"]
    if check["max_error"] is not None:
        text += f" (max error {check['max_error']:.1e})"
    if check["failed"]:
        text += " in " + ", ".join(check["failed"])
    if check["too_close"]:
        text += "; too close to |Y| = beta: " + ", ".join(check["too_close"])
    return text


def _num(value, width, spec):
    return f"{'n/a':>{width}}" if value is None else f"{value:>{width}{spec}}"


def draw(r, output):
    """Relative error against beta per layer (its worst parameter), density against beta per block."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    betas = [row["beta"] for row in r["betas"]]
    figure = Figure(figsize=(10, 4), dpi=100)
    FigureCanvasAgg(figure)
    error_axes, density_axes = figure.subplots(1, 2)
    layers = sorted({name.rsplit(".", 1)[0] for row in r["betas"] for name in row["params"]},
                    key=lambda n: [int(p) if p.isdigit() else p for p in n.split(".")])
    for layer in layers:
        errors = [max((v["relative_error"] for k, v in row["params"].items()
                       if k.rsplit(".", 1)[0] == layer and v["relative_error"] is not None), default=np.nan)
                  for row in r["betas"]]
        error_axes.plot(betas, errors, marker="o", markersize=3, label=f"layer {layer}")
    for block in (r["betas"][0]["density"] if r["betas"] else {}):
        density = [np.nan if row["density"][block] is None else row["density"][block] for row in r["betas"]]
        density_axes.plot(betas, density, marker="o", markersize=3, label=block)
    error_axes.set(xlabel="beta", ylabel="|g - g0| / |g0|", title=f"{r['net']}: gradient error ({r['threshold']})")
    density_axes.set(xlabel="beta", ylabel="kept density", title="kept density per block")
    for axes in (error_axes, density_axes):
        axes.grid(alpha=0.3)
        axes.legend(fontsize=7)
    figure.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
    figure.savefig(output, format="png")
