"""``specref sweep``: the paper's Fig. 1 / Table 1 grids, one training run per cell, on Dask.

    specref sweep --nets spec-lenet,spec-vgg11 --betas 0,0.25,0.5,0.75,1 [--activations tanh,softsign]
        [--storages bitmask] [--seeds 0,1,2] --data cifar10 --data-dir PATH --epochs 30 [--init lsuv]
        --out sweeps/NAME [--scheduler ADDRESS] [--workers N] [--extend] [--progress]

A cell is (Spec net, beta, activation, storage, seed); each net also gets its spatial baseline per
seed (the name without ``spec-``, default activation, dense storage, the same recipe). Each cell
is a Dask task (``retries=1``) that trains into ``OUT/<cell name>`` (:func:`specref.training.train`)
and writes ``cell.json`` there: "running", then "ok" with its figures or "error" with the message.
A cell that raises is recorded and the sweep goes on; a LocalCluster reschedules a cell whose
worker died once, then records it as failed (another scheduler follows its own
``distributed.scheduler.allowed-failures``). The tables (:mod:`specref.sweep_table`) are rewritten
after every cell. Without ``--scheduler``: a loopback LocalCluster of ``--workers`` processes
(default one per core), one thread each; every cell holds BLAS, specref's pool and scipy.fft to
one thread. With it, OUT must be on a filesystem that the workers and this process share.

``OUT/sweep.json`` keeps the grid and the recipe. A rerun skips the cells whose ``cell.json`` says
"ok" at the sweep's epochs, resumes interrupted ones from their checkpoints and retries failed
ones. Another grid or recipe in the same OUT is refused; ``--extend`` lets the grid grow (the union)
and ``--epochs`` rise (finished cells train on). Another recipe needs another OUT.
"""
from __future__ import annotations

import contextlib
import json
import os
import sys
import time
import traceback
import uuid
import warnings
from dataclasses import asdict, dataclass

from tqdm import tqdm

from . import sweep_table
from .checkpoint import write_text_atomic
from .checks import check_number
from .nets import build as build_net
from .nets import names as net_names
from .storage import get_codec

SPEC_PREFIX = "spec-"
GRID_KEYS = ("nets", "betas", "activations", "storages", "seeds")
# The recipe: specref.training.train's options (the seed comes from the grid) and the data.
RECIPE_DEFAULTS = {"data": None, "data_dir": None, "limit_train": None, "limit_test": None, "epochs": None,
                   "batch_size": 128, "lr": 0.02, "momentum": 0.95, "lr_halve_every": 50, "weight_decay": 0.0,
                   "backend": "numpy", "max_steps": None, "init": "default", "memory_every": 100, "audit_every": 0}
# Recipe entries that may differ between runs of one sweep: where the files are, and (with
# --extend, upwards only) the number of epochs.
NOT_COMPARED = ("data_dir", "epochs")
TRAIN_OPTIONS = ("epochs", "batch_size", "lr", "momentum", "lr_halve_every", "weight_decay", "backend", "max_steps",
                 "init", "memory_every")
DEFAULT_ACTIVATION = "tanh"
DEFAULT_STORAGE = "bitmask"      # the compact codec, as `specref compare` keeps the Spec net's maps
CELL_FILE = "cell.json"
CONFIG_FILE = "sweep.json"


class SweepConfigError(ValueError):
    """OUT holds a sweep whose configuration differs from the one asked for."""


@dataclass(frozen=True)
class Cell:
    """One training run of a sweep; ``beta`` and ``activation`` are None for a spatial baseline."""

    net: str
    seed: int
    beta: float | None = None
    activation: str | None = None
    storage: str = "dense"

    @property
    def baseline(self):
        return not self.net.startswith(SPEC_PREFIX)

    @property
    def base(self):
        return self.net[len(SPEC_PREFIX):] if not self.baseline else self.net

    @property
    def name(self):
        """The run folder's name, e.g. ``spec-lenet_beta0.25_tanh_bitmask_seed0`` or ``lenet_seed0``."""
        if self.baseline:
            return f"{self.net}_seed{self.seed}"
        activation = self.activation.replace(":", "-").replace("/", "-")
        return f"{self.net}_beta{self.beta:.12g}_{activation}_{self.storage}_seed{self.seed}"


def cells(grid):
    """Every cell of ``grid``: each net's baselines (one per seed), then its Spec cells."""
    found = []
    for net in grid["nets"]:
        found += [Cell(net[len(SPEC_PREFIX):], seed) for seed in grid["seeds"]]
        found += [Cell(net, seed, beta, activation, storage) for beta in grid["betas"]
                  for activation in grid["activations"] for storage in grid["storages"] for seed in grid["seeds"]]
    return found


def make_config(*, nets, betas, activations=(DEFAULT_ACTIVATION,), storages=(DEFAULT_STORAGE,), seeds=(0,),
                **recipe):
    """A sweep's configuration {"grid": ..., "recipe": ...}, checked; ``recipe``: the keys of
    :data:`RECIPE_DEFAULTS` (``data`` and ``epochs`` required). Activation names are checked by
    ``nets.build`` inside each cell."""
    unknown = sorted(set(recipe) - set(RECIPE_DEFAULTS))
    if unknown:
        raise TypeError(f"make_config got unknown recipe options {unknown}; known: {list(RECIPE_DEFAULTS)}")
    recipe = {**RECIPE_DEFAULTS, **recipe}
    if not isinstance(recipe["data"], str):
        raise ValueError(f"data must be a dataset name, got {recipe['data']!r}")
    recipe["epochs"] = check_number(recipe["epochs"], "epochs", integer=True, minimum=1)
    grid = {"nets": _unique(nets, "nets", _check_spec_net),
            "betas": _unique(betas, "betas", lambda b: check_number(b, "betas", minimum=0)),
            "activations": _unique(activations, "activations", _check_activation),
            "storages": _unique(storages, "storages", lambda s: get_codec(s) and s),
            "seeds": _unique(seeds, "seeds", lambda s: check_number(s, "seeds", integer=True, minimum=0))}
    return {"grid": grid, "recipe": recipe}


def _unique(values, parameter, check):
    checked = [check(v) for v in values]
    if not checked:
        raise ValueError(f"{parameter} must name at least one value, got none")
    return list(dict.fromkeys(checked))


def _check_spec_net(name):
    if not isinstance(name, str) or not name.startswith(SPEC_PREFIX) or name not in net_names():
        spec = ", ".join(n for n in net_names() if n.startswith(SPEC_PREFIX))
        raise ValueError(f"nets: {name!r} is not a Spec net; expected one of {spec} "
                         f"(the spatial baseline of each is added by itself)")
    return name


def _check_activation(name):
    if isinstance(name, str) and name:
        return name
    raise ValueError(f"activations must be non-empty names, got {name!r}")


def reconcile(saved, wanted, extend=False):
    """The configuration to run in an OUT that holds ``saved`` (None: a new sweep) when asked for
    ``wanted``: ``wanted`` itself when they agree; with ``extend``, the union of their grids at
    the larger epochs. Raises :class:`SweepConfigError` naming what differs otherwise."""
    if saved is None or saved == wanted:
        return wanted
    for key in RECIPE_DEFAULTS:
        if key not in NOT_COMPARED and saved["recipe"].get(key) != wanted["recipe"].get(key):
            raise SweepConfigError(f"this OUT holds a sweep with {key}={saved['recipe'].get(key)!r}, not "
                                   f"{wanted['recipe'].get(key)!r}: use another --out for another recipe")
    epochs_saved, epochs_wanted = saved["recipe"]["epochs"], wanted["recipe"]["epochs"]
    if epochs_wanted < epochs_saved:
        raise SweepConfigError(f"this OUT holds a sweep of epochs={epochs_saved}; epochs={epochs_wanted} "
                               f"would train less: use another --out")
    differences = [f"{k} {saved['grid'][k]} here, {wanted['grid'][k]} asked" for k in GRID_KEYS
                   if saved["grid"][k] != wanted["grid"][k]]
    if epochs_wanted != epochs_saved:
        differences.append(f"epochs {epochs_saved} here, {epochs_wanted} asked")
    if differences and not extend:
        raise SweepConfigError(f"this OUT holds another sweep ({'; '.join(differences)}): give --extend to add "
                               f"the new cells (or train on to more epochs), or use another --out")
    grid = {k: list(dict.fromkeys(saved["grid"][k] + wanted["grid"][k])) for k in GRID_KEYS}
    return {"grid": grid, "recipe": {**saved["recipe"], "epochs": epochs_wanted,
                                     "data_dir": wanted["recipe"].get("data_dir")}}


def read_json(path):
    """The JSON file at ``path`` (OUT's sweep.json, a cell's cell.json), or None if there is none."""
    with contextlib.suppress(FileNotFoundError), open(path, encoding="utf-8") as f:
        return json.load(f)
    return None


def run(config, out, *, scheduler=None, workers=None, extend=False, progress=None, runner=None):
    """Run the sweep ``config`` (:func:`make_config`) in ``out``; returns {"trained", "skipped",
    "failed": cell names, "rows": every cell's row}. ``scheduler``: a Dask scheduler address
    (None: a LocalCluster of ``workers`` single-threaded processes, default one per core).
    ``runner``: what each task calls (default :func:`run_cell`; tests swap in one that fails)."""
    config = reconcile(read_json(os.path.join(out, CONFIG_FILE)), config, extend)
    os.makedirs(out, exist_ok=True)
    write_text_atomic(os.path.join(out, CONFIG_FILE), json.dumps(config, indent=2) + "\n")
    grid, epochs = cells(config["grid"]), config["recipe"]["epochs"]
    if len({c.name for c in grid}) < len(grid):
        raise ValueError(f"two cells of {config['grid']} would share a run folder (activation names that differ "
                         f"only in ':' or '/' against '-'?)")
    rows = {cell.name: read_json(os.path.join(out, cell.name, CELL_FILE)) for cell in grid}
    pending = [c for c in grid if not (rows[c.name] and rows[c.name].get("status") == "ok"
                                       and rows[c.name].get("epochs") == epochs)]
    skipped = [c.name for c in grid if c not in pending]
    sweep_table.write(out, config, _known(grid, rows))
    bar = tqdm(total=len(grid), initial=len(skipped), desc="sweep", unit="cell", file=sys.stderr,
               disable=None if progress is None else not progress, dynamic_ncols=True)
    try:
        if pending:
            with _client(scheduler, workers) as client:
                _run_cells(client, runner or run_cell, pending, config, out, rows, grid, bar)
    finally:
        bar.close()
    failed = [c.name for c in pending if rows[c.name].get("status") != "ok"]
    return {"trained": [c.name for c in pending], "skipped": skipped, "failed": failed, "rows": _known(grid, rows)}


def _known(grid, rows):
    return [rows[c.name] for c in grid if rows[c.name] is not None]


def _run_cells(client, runner, pending, config, out, rows, grid, bar):
    """Run every pending cell (baselines first), recording each row as it comes back.

    At most one cell per worker thread is in flight: a scheduler sends tasks ahead to a busy
    worker, and a worker that dies takes every task it holds with it (each counted as a failure),
    so submitting all cells at once could fail a cell queued behind one that kills its worker."""
    from distributed import as_completed

    token = uuid.uuid4().hex[:8]
    queue = sorted(pending, key=lambda cell: not cell.baseline)     # stable: grid order otherwise
    futures = {}

    def submit(cell):
        future = client.submit(runner, asdict(cell), config["recipe"], os.path.abspath(out),
                               key=f"specref-sweep-{cell.name}-{token}", retries=1, pure=False)
        futures[future] = cell
        return future

    running = as_completed([submit(cell) for cell in _take(queue, _slots(client))])
    for future in running:
        cell = futures.pop(future)
        try:
            row = future.result()
        except Exception as exc:        # the worker died twice (KilledWorker), or the task could not run
            row = _error_row(cell, exc, started=None)
            _write_cell(out, cell, row)
        rows[cell.name] = row
        sweep_table.write(out, config, _known(grid, rows))
        bar.update(1)
        if row.get("status") != "ok":
            tqdm.write(f"specref sweep: {cell.name} failed: {row.get('error')}", file=sys.stderr)
        for cell in _take(queue, _slots(client) - len(futures)):
            running.add(submit(cell))


def _slots(client):
    """Worker threads the scheduler has now (at least 1: cells wait for a worker to join)."""
    return max(1, sum(client.nthreads().values()))


def _take(queue, n):
    """Remove and return the first ``n`` items of ``queue``."""
    taken = queue[:max(0, n)]
    del queue[:len(taken)]
    return taken


@contextlib.contextmanager
def _client(scheduler, workers):
    """A Dask client of the scheduler at ``scheduler``, or of a new :func:`local_cluster`."""
    from distributed import Client

    if scheduler is not None:
        with Client(scheduler) as client:
            yield client
        return
    with local_cluster(workers) as cluster, Client(cluster) as client:
        yield client


@contextlib.contextmanager
def local_cluster(workers=None):
    """A loopback LocalCluster of ``workers`` processes (default one per core), one thread each,
    whose workers start with BLAS, OpenMP and numba held to one thread, and whose scheduler
    gives up on a cell after its second worker death (allowed-failures 1: one retry)."""
    import dask
    from distributed import LocalCluster

    workers = (os.cpu_count() or 1) if workers is None else check_number(workers, "workers", integer=True, minimum=1)
    environ = dict(dask.config.get("distributed.nanny.pre-spawn-environ", {}))
    environ.update(dict.fromkeys(("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"),
                                 1))
    with dask.config.set({"distributed.nanny.pre-spawn-environ": environ,
                          "distributed.scheduler.allowed-failures": 1}):
        with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                          dashboard_address=None) as cluster:
            yield cluster


def run_cell(cell, recipe, out):
    """Train one cell (a :class:`Cell` as a dict) into ``out/<name>``; returns its table row.

    Runs on a Dask worker: resumes from the cell's checkpoint when there is one, records an
    exception as the row's ``error`` instead of raising it."""
    cell = Cell(**cell)
    folder = os.path.join(out, cell.name)
    os.makedirs(folder, exist_ok=True)
    started = time.time()
    _write_cell(out, cell, {**_identity(cell), "status": "running", "started": started})
    # Warnings (a SparsityWarning, say) go into the row rather than onto the worker's stderr.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            with single_threaded():
                history = _train_cell(cell, recipe, folder)
            row = {**_identity(cell), "status": "ok", "error": None, **sweep_table.run_figures(history)}
        except Exception as exc:
            row = _error_row(cell, exc, started)
    row["warnings"] = list(dict.fromkeys(f"{w.category.__name__}: {w.message}" for w in caught))
    row["wall_seconds"] = time.time() - started
    _write_cell(out, cell, row)
    return row


def _train_cell(cell, recipe, folder):
    from .data import load
    from .training import train

    data = load(recipe["data"], root=recipe.get("data_dir"))
    if recipe["limit_train"] is not None or recipe["limit_test"] is not None:
        data = data.subset(recipe["limit_train"], recipe["limit_test"])
    options = {"seed": cell.seed, "input_shape": data.input_shape, "num_classes": data.num_classes,
               "storage": cell.storage}
    if not cell.baseline:
        options.update(beta=cell.beta, activation=cell.activation)
    net = build_net(cell.net, **options)
    resume = os.path.isfile(os.path.join(folder, "checkpoint.npz"))
    return train(net, data, seed=cell.seed, out=folder, resume=resume, progress=False,
                 audit_every=0 if cell.baseline else recipe["audit_every"],
                 **{key: recipe[key] for key in TRAIN_OPTIONS})


def _identity(cell):
    return {"name": cell.name, **asdict(cell), "base": cell.base, "baseline": cell.baseline}


def _error_row(cell, exc, started):
    return {**_identity(cell), "status": "error", "error": f"{type(exc).__name__}: {exc}",
            "traceback": "".join(traceback.format_exception(exc))[-4000:], "started": started}


def _write_cell(out, cell, row):
    folder = os.path.join(out, cell.name)
    os.makedirs(folder, exist_ok=True)
    write_text_atomic(os.path.join(folder, CELL_FILE), json.dumps(row, indent=2) + "\n")


@contextlib.contextmanager
def single_threaded():
    """One thread for BLAS, specref's matmul pool and scipy.fft while a cell trains (each worker
    is one core's worth; the pool sizes are read at call time)."""
    from threadpoolctl import threadpool_limits

    from . import batched, fft

    saved = batched.WORKERS, fft.WORKERS
    batched.WORKERS = fft.WORKERS = 1
    try:
        with threadpool_limits(limits=1):
            yield
    finally:
        batched.WORKERS, fft.WORKERS = saved


# --- command line -----------------------------------------------------------------------------
def add_arguments(subparsers, handler, recipe):
    """The ``sweep`` subcommand. ``recipe(parser, required=..., epochs=..., batch_size=...)`` adds
    `specref train`'s recipe options (the command line's own function, so the two stay alike);
    its --beta, --seed, --storage (and --activation) are one-value forms of the plural options."""
    p = subparsers.add_parser("sweep", help="train Spec nets x betas x activations x storages x seeds and "
                              "their spatial baselines on Dask; tables in OUT")
    p.add_argument("--nets", required=True, help="comma-separated Spec nets, e.g. spec-lenet,spec-vgg11")
    p.add_argument("--betas", default=None, help="comma-separated thresholds (default: --beta, else the nets' default)")
    p.add_argument("--activations", default=None, help=f"comma-separated activations of the Spec blocks "
                   f"(nets.build's names; default: --activation, else {DEFAULT_ACTIVATION})")
    p.add_argument("--storages", default=None, help=f"comma-separated codecs of the Spec cells (default: --storage, "
                   f"else {DEFAULT_STORAGE}; the baselines keep dense maps)")
    p.add_argument("--seeds", default=None, help="comma-separated seeds (default: --seed, else 0)")
    recipe(p, required=True, epochs=None, batch_size=128)
    p.set_defaults(beta=None, seed=None, storage=None)
    p.add_argument("--out", required=True, help="sweep folder: sweep.json, one run folder per cell, table.csv, "
                   "table_mean.csv, table.json")
    p.add_argument("--scheduler", default=None, help="address of a running Dask scheduler, e.g. tcp://HOST:8786 "
                   "(default: a LocalCluster on this machine)")
    p.add_argument("--workers", type=int, default=None, help="LocalCluster worker processes (default: one per core)")
    p.add_argument("--extend", action="store_true", help="let OUT's sweep grow: add the cells of new nets, betas, "
                   "activations, storages or seeds, or train every cell on to a larger --epochs")
    p.set_defaults(handler=handler)


def command(args):
    """Run ``specref sweep``: prints a line per failed cell and the table by (net, beta, activation,
    storage); returns 1 if any cell failed, else 0."""
    from .nets import DEFAULT_BETA

    if args.data_dir:
        args.data_dir = os.path.abspath(args.data_dir)     # the workers' working folder may differ
    config = make_config(
        nets=_split(args.nets, "--nets", str),
        betas=_grid_option(args.betas, args.beta, "betas", float, DEFAULT_BETA),
        activations=_grid_option(args.activations, getattr(args, "activation", None), "activations", str,
                                 DEFAULT_ACTIVATION),
        storages=_grid_option(args.storages, args.storage, "storages", str, DEFAULT_STORAGE),
        seeds=_grid_option(args.seeds, args.seed, "seeds", int, 0),
        **{key: getattr(args, key) for key in RECIPE_DEFAULTS})
    result = run(config, args.out, scheduler=args.scheduler, workers=args.workers, extend=args.extend,
                 progress=args.progress)
    print(sweep_table.format_groups(sweep_table.read(args.out)["groups"]))
    print(f"{args.out}: {len(result['rows'])} cells recorded; trained {len(result['trained'])} "
          f"({len(result['failed'])} failed), skipped {len(result['skipped'])} already done; "
          f"table in {os.path.join(args.out, 'table.csv')}")
    return 1 if result["failed"] else 0


def _grid_option(plural, singular, name, convert, default):
    if plural is not None and singular is not None:
        raise ValueError(f"give --{name} or --{name[:-1]}, not both (got {plural!r} and {singular!r})")
    if plural is not None:
        return _split(plural, f"--{name}", convert)
    return [default if singular is None else singular]


def _split(text, option, convert):
    """Comma-separated values of ``option``, each through ``convert``."""
    items = [item.strip() for item in text.split(",") if item.strip()]
    if not items:
        raise ValueError(f"{option} must list at least one value, got {text!r}")
    try:
        return [convert(item) for item in items]
    except ValueError:
        raise ValueError(f"{option} takes comma-separated {convert.__name__} values, got {text!r}") from None
