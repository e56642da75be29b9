"""The ``specref`` command line: train, compare, memory, plot, bench, validate and audit.

    specref train --net spec-lenet --data digits --epochs 10 --out runs/x [--resume]
    specref compare --net lenet --data digits          # spatial vs Spec form, side by side
    specref plot runs/compare/lenet runs/compare/spec-lenet
    specref memory --net spec-vgg16 --beta 0.5 --batch 128 --storage csr --json
    specref bench step --net spec-vgg16 --batch 32     # specref.bench
    specref validate export --net spec-lenet --out golden.npz   # specref.golden
    specref validate compare golden.npz candidate.npz [--json]
    specref audit --net spec-vgg11 --betas 0,0.25,0.5,1 --threshold storage   # specref.audit_report
    specref sweep --nets spec-lenet --betas 0,0.5,1 --data digits --epochs 5 --out sweeps/x   # specref.sweep

Every subcommand returns 0 on success, 1 on a user error (bad file, bad value, divergence; the
message goes to stderr without a traceback) and 2 on a usage error.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import warnings

import numpy as np
from tqdm import tqdm

from . import audit_report, bench, golden, golden_compare, golden_torch, memory, nets, sweep, sweep_table
from .backend import Backend, array_module, to_numpy
from .checkpoint import load_weights
from .data import DataError
from .data import load as load_dataset
from .training import TrainingDiverged, train

# `specref compare --net lenet --data digits` defaults, measured on the 2-core CPU machine: both
# nets train in about 45 s together. Small batches give many updates per epoch on 1,437 images and
# the lr halves every 5 epochs since the run is short; beta is the registry's default
# (nets.DEFAULT_BETA): Spec-LeNet reaches about 0.95 test accuracy, LeNet about 0.96.
COMPARE_EPOCHS = 15
COMPARE_BATCH_SIZE = 32
COMPARE_LR = 0.02
COMPARE_LR_HALVE_EVERY = 5


class CLIError(Exception):
    """A user-facing error: printed as one line, exit status 1."""


def main(argv=None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _warning_printer(args.command)
            return args.handler(args) or 0
    except (CLIError, DataError, TrainingDiverged, FileNotFoundError, ValueError) as exc:
        print(f"specref {args.command}: error: {exc}", file=sys.stderr)
        return 1


def _warning_printer(command):
    """Warnings as one line on stderr, "specref COMMAND: Category: message" (above any progress bar)."""
    def show(message, category, filename, lineno, file=None, line=None):
        tqdm.write(f"specref {command}: {category.__name__}: {message}", file=sys.stderr)
    return show


def _parser():
    parser = argparse.ArgumentParser(prog="specref", description="SpecNet reference implementation")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    train = sub.add_parser("train", help="train one network")
    train.add_argument("--net", required=True, help="registry name, e.g. lenet, spec-lenet, spec-vgg16")
    _add_recipe(train, required=True, epochs=None, batch_size=128)
    train.add_argument("--out", help="run directory (metrics.jsonl, checkpoint.npz, summary.json)")
    train.add_argument("--resume", action="store_true", help="continue the run saved in --out")
    train.set_defaults(handler=_train)

    compare = sub.add_parser("compare", help="train a spatial net and its Spec form with the same recipe")
    compare.add_argument("--net", default="lenet", help="spatial registry name (default lenet)")
    _add_recipe(compare, required=False, epochs=COMPARE_EPOCHS, batch_size=COMPARE_BATCH_SIZE, lr=COMPARE_LR,
                lr_halve_every=COMPARE_LR_HALVE_EVERY)
    compare.add_argument("--out", default=os.path.join("runs", "compare"),
                         help="writes OUT/NAME and OUT/spec-NAME (default runs/compare)")
    compare.set_defaults(handler=_compare)

    memory = sub.add_parser("memory", help="bytes one training step keeps for backward, vs the spatial net")
    memory.add_argument("--net", default=None, help="registry name (default: the checkpoint's)")
    memory.add_argument("--beta", type=float, default=None,
                        help=f"threshold (default: the checkpoint's, else {nets.DEFAULT_BETA:g})")
    memory.add_argument("--batch", "--batch-size", dest="batch", type=int, default=128)
    memory.add_argument("--checkpoint", default=None, help="checkpoint.npz of `specref train` (trained weights)")
    memory.add_argument("--data", default=None, help="take the first test batch of this dataset "
                        "(default: a Gaussian batch, x ~ N(0, 1) per pixel, uniform labels)")
    memory.add_argument("--data-dir", default=None)
    memory.add_argument("--storage", default=None, help="storage codec (default: the checkpoint's, else dense)")
    memory.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    memory.add_argument("--backend", choices=("numpy", "cupy"), default="numpy")
    memory.add_argument("--seed", type=int, default=0, help="weights (without --checkpoint) and Gaussian batch")
    memory.add_argument("--no-baseline", dest="baseline", action="store_false", help="skip the spatial nets")
    memory.add_argument("--json", action="store_true", help="print one JSON object")
    memory.set_defaults(handler=_memory)

    plot = sub.add_parser("plot", help="training curves of one or more runs as a PNG")
    plot.add_argument("runs", nargs="*", metavar="RUN_DIR")
    plot.add_argument("--output", help="PNG path (default RUN_DIR/curves.png of the first run; "
                      "OUT/fig1.png with --sweep)")
    plot.add_argument("--sweep", metavar="OUT", help="instead: relative memory and error against beta of the "
                      "`specref sweep --out OUT` sweep (the paper's Fig. 1)")
    plot.set_defaults(handler=_plot)

    bench_parser = sub.add_parser("bench", help="benchmarks (specref.bench)")
    bench.add_arguments(bench_parser.add_subparsers(dest="bench_command", metavar="BENCH", required=True),
                        handler=_bench)

    validate = sub.add_parser("validate", help="golden files: export one training step, compare a candidate with it")
    golden.add_arguments(validate.add_subparsers(dest="validate_command", metavar="ACTION", required=True),
                         handler=_validate)
    audit_report.add_arguments(sub, handler=audit_report.command)
    sweep.add_arguments(sub, handler=sweep.command, recipe=_add_recipe)
    return parser


def _add_recipe(parser, *, required, epochs, batch_size, lr=0.02, lr_halve_every=50):
    """Options shared by train and compare; ``required``: --data and --epochs have no default."""
    parser.add_argument("--data", default=None if required else "digits", required=required,
                        help="digits, cifar10, svhn or imagefolder")
    parser.add_argument("--data-dir", default=None, help="folder holding the dataset's files")
    parser.add_argument("--epochs", type=int, required=required, default=epochs)
    parser.add_argument("--beta", type=float, default=None,
                        help=f"threshold of the Spec layers (default {nets.DEFAULT_BETA:g})")
    parser.add_argument("--activation", default=None,
                        help="activation of the Spec blocks: " + ", ".join(nets.spec_activation_names())
                        + " (default tanh, the paper's); for a spatial --net of train: tanh or relu")
    parser.add_argument("--batch-size", type=int, default=batch_size)
    parser.add_argument("--lr", type=float, default=lr)
    parser.add_argument("--momentum", type=float, default=0.95)
    parser.add_argument("--lr-halve-every", type=int, default=lr_halve_every)
    parser.add_argument("--weight-decay", type=float, default=0.0)
    parser.add_argument("--backend", choices=("numpy", "cupy"), default="numpy")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-steps", type=int, default=None, help="cap on training steps per epoch")
    parser.add_argument("--limit-train", type=int, default=None, help="use the first N training images")
    parser.add_argument("--limit-test", type=int, default=None, help="use the first N test images")
    parser.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                        help="progress bars on stderr (default: only when stderr is a terminal)")
    parser.add_argument("--storage", default=None, help="feature-map storage codec: dense (train's default), "
                        "csr, bitmask, csr-fp16, bitmask-int8, ... (compare: the Spec net's, default bitmask; "
                        "the spatial net stays dense)")
    parser.add_argument("--init", choices=("default", "lsuv"), default="default",
                        help="lsuv: rescale each layer to unit output RMS on 128 training examples first "
                        "(deep tanh nets without batch norm need it)")
    parser.add_argument("--memory-every", type=int, default=100,
                        help="trace the allocator peak on the second step of each epoch and every N-th (0: never)")
    parser.add_argument("--audit-every", type=int, default=0,
                        help="record the gradient audit's summary in metrics.jsonl every N epochs (0: never)")


def _load_data(args):
    dataset = load_dataset(args.data, root=args.data_dir)
    if args.limit_train is not None or args.limit_test is not None:
        dataset = dataset.subset(args.limit_train, args.limit_test)
    return dataset


def _run(net, dataset, args, out, resume=False, storage=None, activation=None):
    return train(net, dataset, backend=args.backend, epochs=args.epochs, batch_size=args.batch_size,
                 lr=args.lr, momentum=args.momentum, lr_halve_every=args.lr_halve_every,
                 weight_decay=args.weight_decay, beta=args.beta, seed=args.seed, out=out,
                 resume=resume, progress=args.progress, max_steps=args.max_steps, storage=storage,
                 memory_every=args.memory_every, init=args.init, audit_every=args.audit_every,
                 activation=activation)


def _train(args):
    history = _run(args.net, _load_data(args), args, args.out, resume=args.resume, storage=args.storage,
                   activation=args.activation)
    s = history.summary
    where = f" -> {args.out}" if args.out else ""
    print(f"{s['net']} on {s['data']}: test accuracy {s['test_accuracy']:.4f}, test loss "
          f"{s['test_loss']:.4f}, step {s['step_ms']:.1f} ms, {s['seconds']:.1f} s{where}")


def _compare(args):
    base = args.net[len("spec-"):] if args.net.startswith("spec-") else args.net
    dataset = _load_data(args)
    rows = []
    # The Spec net stores its maps sparsely (the point of SpecNet); bitmask is the compact
    # codec at the densities measured here. The spatial baseline always keeps dense maps.
    for name, storage in ((base, None), ("spec-" + base, args.storage or "bitmask")):
        # --activation names the Spec blocks' activation; the spatial net keeps its tanh
        activation = args.activation if name.startswith("spec-") else None
        history = _run(name, dataset, args, os.path.join(args.out, name), storage=storage, activation=activation)
        s = history.summary
        measured = _step_memory(history.net, dataset, args.batch_size)
        rows.append({"net": name, "test_accuracy": s["test_accuracy"], "step_ms": s["step_ms"],
                     "activation_bytes": measured.get("saved_bytes"), "peak_bytes": measured.get("peak_bytes"),
                     "storage": s.get("storage"), "beta": s["beta"], "epochs": s["epochs"], "seconds": s["seconds"]})
    spatial = rows[0]["activation_bytes"]
    for row in rows:
        saved = row["activation_bytes"]
        row["relative_saved"] = saved / spatial if saved is not None and spatial else None
    recipe = (f"{args.epochs} epochs, batch {args.batch_size}, lr {args.lr:g} halved every "
              f"{args.lr_halve_every}, momentum {args.momentum:g}, beta {rows[1]['beta']}")
    with open(os.path.join(args.out, "compare.json"), "w", encoding="utf-8") as f:
        json.dump({"data": dataset.name, "recipe": recipe, "rows": rows}, f, indent=2)
    print(_table(rows, f"{dataset.name}, same recipe: {recipe}"))


def _step_memory(net, dataset, batch_size):
    """specref.memory.measure of one step on the first test batch: saved and peak bytes."""
    x, y = next(iter(dataset.batches("test", batch_size, shuffle=False, augment=False)))
    xp = array_module(next(iter(net.parameters().values())))
    x, y = xp.asarray(x), xp.asarray(y)
    measured = memory.measure(net, x, y, baseline=False)
    return {key: None if measured.get(key) is None else int(to_numpy(measured[key]))
            for key in ("saved_bytes", "peak_bytes")}


def _table(rows, title):
    """One row per net; saved = bytes kept for backward, relative = / the spatial net's."""
    header = (f"{'net':<14} {'storage':<9} {'test accuracy':>13} {'step ms':>8} {'saved MiB':>10} "
              f"{'relative':>8} {'peak MiB':>9}")
    lines = [title, header, "-" * len(header)]
    for r in rows:
        saved = "n/a" if r["activation_bytes"] is None else f"{r['activation_bytes'] / 2**20:.2f}"
        peak = "n/a" if r.get("peak_bytes") is None else f"{r['peak_bytes'] / 2**20:.2f}"
        relative = "n/a" if r.get("relative_saved") is None else f"{r['relative_saved']:.3f}"
        lines.append(f"{r['net']:<14} {r.get('storage') or 'dense':<9} {r['test_accuracy']:>13.4f} "
                     f"{r['step_ms']:>8.1f} {saved:>10} {relative:>8} {peak:>9}")
    return "\n".join(lines)


def _memory(args):
    """One training step of --net: bytes saved for backward and peak, vs the spatial baselines."""
    config = _checkpoint_config(args.checkpoint) if args.checkpoint else {}
    name = args.net or config.get("net")
    if name is None:
        raise CLIError("give --net (or a --checkpoint whose config names it)")
    if args.batch < 2:
        raise CLIError(f"--batch must be at least 2, got {args.batch}")
    dataset = _load_data_for(args) if args.data else None
    input_shape, classes = (dataset.input_shape, dataset.num_classes) if dataset else ((3, 32, 32), 10)
    options = {"dtype": args.dtype, "seed": args.seed, "input_shape": input_shape, "num_classes": classes,
               "storage": args.storage or config.get("storage") or "dense"}
    beta = args.beta if args.beta is not None else config.get("beta")
    if beta is not None:
        options["beta"] = beta
    if config.get("fft_norm"):
        options["fft_norm"] = config["fft_norm"]
    net = nets.build(name, **options)
    if args.checkpoint:
        load_weights(net, args.checkpoint)
    backend = Backend(args.backend)
    backend.move(net)
    if dataset is not None:
        x, y = next(iter(dataset.batches("test", args.batch, shuffle=False, augment=False)))
        source = f"{dataset.name} test[0:{len(y)}]"
    else:
        rng = np.random.default_rng(args.seed)
        x = rng.standard_normal((args.batch, *input_shape)).astype(args.dtype)
        y = rng.integers(0, classes, args.batch)
        source = "gaussian"
    result = memory.measure(net, backend.asarray(x, dtype=np.dtype(args.dtype)), backend.asarray(y),
                            baseline=args.baseline)
    layers = result.pop("layers")
    result.update({"input": source, "checkpoint": args.checkpoint,
                   "weights": "checkpoint" if args.checkpoint else f"untrained (seed {args.seed})",
                   "layers": layers})
    print(json.dumps(result) if args.json else _memory_table(result))


def _checkpoint_config(path):
    if not os.path.isfile(path):
        raise CLIError(f"no checkpoint at {path} (expected the checkpoint.npz of `specref train --out`)")
    with np.load(path, allow_pickle=False) as saved:
        return json.loads(str(saved["config"])) if "config" in saved.files else {}


def _load_data_for(args):
    return load_dataset(args.data, root=args.data_dir)


def _memory_table(r):
    mib = lambda b: "n/a" if b is None else f"{b / 2**20:.2f} MiB"  # noqa: E731
    rel = lambda v: "n/a" if v is None else f"{v:.3f}"  # noqa: E731
    lines = [f"{r['net']} (storage {r['storage']}, beta {r['beta']}, fft_norm {r['fft_norm']}), batch "
             f"{r['batch']} {r['dtype']}, input {r['input']}, weights {r['weights']}",
             f"{'layer':<28} {'saved':>12} {'density':>8}"]
    for layer in r["layers"]:
        if layer["saved_bytes"]:
            density = "" if layer["density"] is None else f"{layer['density']:.3f}"
            lines.append(f"{layer['name']:<28} {mib(layer['saved_bytes']):>12} {density:>8}")
    lines.append(f"saved {mib(r['saved_bytes'])}, peak {mib(r['peak_bytes'])}, density {rel(r['density'])}")
    for suffix in ("", "_bn"):
        if r.get(f"baseline{suffix}"):
            lines.append(f"vs {r[f'baseline{suffix}']}: saved {mib(r[f'baseline{suffix}_saved_bytes'])} "
                         f"(x{rel(r[f'relative_saved{suffix}'])}), peak {mib(r[f'baseline{suffix}_peak_bytes'])} "
                         f"(x{rel(r[f'relative_peak{suffix}'])})")
    return "\n".join(lines)


def _plot(args):
    if args.sweep:
        if args.runs:
            raise CLIError(f"give RUN_DIRs or --sweep, not both (got {args.runs} and --sweep {args.sweep})")
        print(f"wrote {sweep_table.plot(args.sweep, args.output)}")
        return
    if not args.runs:
        raise CLIError("give at least one RUN_DIR (or --sweep OUT)")
    runs = []
    for run in args.runs:
        path = os.path.join(run, "metrics.jsonl")
        if not os.path.isfile(path):
            raise CLIError(f"{run} has no metrics.jsonl (is it a `specref train --out` directory?)")
        with open(path, encoding="utf-8") as f:
            entries = [json.loads(line) for line in f if line.strip()]
        if not entries:
            raise CLIError(f"{path} holds no epochs yet")
        runs.append((_run_label(run), entries))
    output = args.output or os.path.join(args.runs[0], "curves.png")
    _draw_curves(runs, output)
    print(f"wrote {output}")


def _run_label(run):
    summary = os.path.join(run, "summary.json")
    if os.path.isfile(summary):
        with open(summary, encoding="utf-8") as f:
            s = json.load(f)
        label = s.get("net") or os.path.basename(os.path.normpath(run))
        return f"{label} (beta={s['beta']})" if s.get("beta") is not None else label
    return os.path.basename(os.path.normpath(run))


def _draw_curves(runs, output):
    """Loss (train solid, test dashed) and test accuracy per epoch, every run on one figure."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(10, 4), dpi=100)
    FigureCanvasAgg(figure)
    loss_axes, accuracy_axes = figure.subplots(1, 2)
    for i, (label, entries) in enumerate(runs):
        color = f"C{i}"
        epochs = [e["epoch"] for e in entries]
        loss_axes.plot(epochs, [e["train_loss"] for e in entries], color=color, label=f"{label} train")
        loss_axes.plot(epochs, [e["test_loss"] for e in entries], color=color, linestyle="--",
                       label=f"{label} test")
        accuracy_axes.plot(epochs, [e["test_accuracy"] for e in entries], color=color, marker="o",
                           markersize=3, label=label)
    loss_axes.set(xlabel="epoch", ylabel="loss", title="loss")
    accuracy_axes.set(xlabel="epoch", ylabel="test accuracy", title="test accuracy")
    for axes in (loss_axes, accuracy_axes):
        axes.grid(alpha=0.3)
        axes.legend(fontsize=8)
    figure.tight_layout()
    directory = os.path.dirname(os.path.abspath(output))
    os.makedirs(directory, exist_ok=True)
    figure.savefig(output, format="png")


def _bench(args):
    return getattr(bench, args.bench_command)(args)


def _validate(args):
    """export: write a golden file; compare: the report, exit status 1 unless every array matches;
    torch: the same for the PyTorch implementation's recomputation (specref.golden_torch)."""
    if args.validate_command == "torch":
        return golden_torch.command(args)
    if args.validate_command == "compare":
        report = golden_compare.compare_files(args.golden, args.candidate, rtol=args.rtol, atol=args.atol)
        print(json.dumps(golden_compare.json_safe(report)) if args.json else golden_compare.format_report(report))
        return 0 if report["ok"] else 1
    if args.data and args.input_shape:
        raise CLIError(f"--input-shape {args.input_shape} cannot be used with --data {args.data} (its images set it)")
    arrays, manifest = golden.export(
        args.net, beta=nets.DEFAULT_BETA if args.beta is None else args.beta, seed=args.seed, batch=args.batch,
        dtype=args.dtype, init=args.init, dataset=_load_data_for(args) if args.data else None,
        input_shape=args.input_shape or (3, 32, 32))
    golden.write(args.out, arrays, manifest)
    print(f"wrote {args.out}: {manifest['net']['name']}, {len(manifest['layers'])} layers, {len(arrays)} arrays, "
          f"batch {manifest['batch']['source']}, loss {float(arrays['loss']):.6g}")
