"""Training loop: minibatch SGD on a labelled dataset, with checkpoints, resume and metrics.

Each step is ``logits = net.forward(x)``, softmax cross-entropy, ``net.backward``, a finiteness
check of the loss and every gradient, then one :class:`specref.optim.SGD` update; after each epoch
the test split is evaluated in eval mode. The paper's recipe is the default: batch 128, SGD with
momentum 0.95, lr 0.02 halved every 50 epochs.

The backend is chosen here, once: parameters are moved with :meth:`Backend.asarray` before
training and each batch is moved as it is drawn. Loss and accuracy accumulate on the device; they
are read back (a sync) only at logging points: every step on NumPy, every ``DEVICE_LOG_EVERY``
steps on CuPy, and at the end of an epoch.

On NumPy a run is deterministic for a given ``seed``: one ``numpy.random.Generator`` seeded from
it draws every shuffle and augmentation, and its state is saved in the checkpoint, so that a run
resumed from epoch k ends with exactly the parameters of an uninterrupted run.

Files written under ``out`` (epochs are 1-based):

- ``metrics.jsonl``: one JSON object per finished epoch (the keys of :data:`EPOCH_KEYS` and more);
- ``checkpoint.npz``: ``param/<name>``, ``buffer/<name>``, ``optim/velocity/<name>`` arrays and the
  JSON strings ``optim``, ``epoch``, ``rng_state``, ``config`` and ``history``; written to a
  temporary file in ``out`` and renamed over the old one, so a crash never leaves half a checkpoint;
- ``summary.json``: the run's configuration and final figures (:data:`SUMMARY_KEYS` and more).

Memory (:mod:`specref.memory`): after every forward, the bytes the layers hold for backward
(``saved_bytes``, from array metadata: 0.2-0.8 ms a step for Spec-LeNet); on the second step of
each epoch and every ``memory_every``-th one, the step's allocator peak (tracemalloc on NumPy:
about 10% slower steps, left out of ``step_ms``). Each epoch records ``saved_bytes_mean``,
``saved_bytes_peak``, ``peak_bytes`` and ``density``; the summary their average and peak over the
run (the paper's "average" and "peak" memory) and the ``storage`` codec. The caches are released
after every step, so nothing a step kept lives on into the next.

A Spec net that keeps almost nothing trains to chance without any error, so on the first step of
each epoch :class:`specref.guards.SparsityCheck` reads the kept maps' own non-zero counts and the
gradients: a block that kept under 1% of its entries, or a layer whose every gradient is exactly
zero, gives a :class:`~specref.guards.SparsityWarning` naming the layer, the density and beta
(once per run), and the epoch's entry in ``metrics.jsonl`` lists it under ``warnings``.

``audit_every=N`` adds, every N-th epoch, ``audit``: :func:`specref.audit.summary` at beta 0 and
the run's beta on a float64 copy of the net and the first ``AUDIT_EXAMPLES`` test examples (the
training itself, its RNG and its weights are untouched).
"""
from __future__ import annotations

import json
import math
import os
import time

import numpy as np
from tqdm import tqdm

from . import nets
from .audit import summary as audit_summary
from .backend import BACKENDS, Backend
from .checkpoint import load_checkpoint, remove_if_present, save_checkpoint, write_text_atomic
from .checks import check_number
from .guards import FiniteGuard, SparsityCheck, SparsityWarning, TrainingDiverged  # noqa: F401 (public)
from .layers.loss import SoftmaxCrossEntropy, check_labels
from .memory import RunRecord, storage_name
from .optim import SGD, lr_at
from .storage import set_storage

EPOCH_KEYS = ("epoch", "train_loss", "train_accuracy", "test_loss", "test_accuracy", "seconds",
              "examples_per_second", "saved_bytes_mean", "saved_bytes_peak", "peak_bytes")
SUMMARY_KEYS = ("net", "data", "backend", "epochs", "beta", "fft_norm", "activation", "test_accuracy",
                "test_loss", "train_loss", "seconds", "step_ms", "storage", "saved_bytes_mean", "saved_bytes_peak",
                "peak_bytes")
DEVICE_LOG_EVERY = 20
DEVICE_TIME_EVERY = 8
INITS = ("default", "lsuv")
AUDIT_EXAMPLES = 8
LSUV_EXAMPLES = 128


class History(list):
    """Per-epoch dicts (``EPOCH_KEYS`` and more); ``net`` and ``summary`` are set by :func:`train`."""

    net = None
    summary = None

    def column(self, key):
        return [entry[key] for entry in self]


def train(net, data, *, backend="numpy", epochs, batch_size=128, lr=0.02, momentum=0.95,
          lr_halve_every=50, weight_decay=0.0, beta=None, seed=0, out=None, resume=False,
          progress=None, max_steps=None, storage=None, memory_every=100, init="default",
          audit_every=0, activation=None) -> History:
    """Train ``net`` (a network, or a :func:`specref.nets.build` name) on ``data`` (a Dataset or a
    :func:`specref.data.load` name) up to ``epochs`` epochs in total.

    ``beta`` (None: the net's own; :data:`specref.nets.DEFAULT_BETA` for a registry name) sets the
    threshold of a registry net, or of every layer with a ``beta`` in a given one. ``progress``:
    progress bars on stderr (None: only where stderr is a terminal). ``max_steps`` caps the
    training steps of each epoch (quick runs).
    ``storage`` (None: the net's own, "dense" for a registry name) is the codec every layer keeps
    its feature maps with (see :mod:`specref.storage`). ``memory_every``: trace the allocator peak
    on the second step of each epoch and every ``memory_every``-th one (0: never).
    ``init``: "default" keeps the weights as given; "lsuv" first rescales every layer so its output
    has unit RMS on 128 training examples (:func:`specref.init.lsuv`; deep tanh nets without
    batch norm need it). A resumed run takes its weights from the checkpoint instead.
    ``audit_every``: record the gradient audit's summary every N-th epoch (0: never).
    ``activation`` (None: the registry's default, tanh) is passed to :func:`specref.nets.build` for
    a registry name (a Spec net: its blocks' activation, e.g. "modrelu"; see
    :data:`specref.nets.SPEC_ACTIVATIONS`); a given network keeps its own, and ``activation`` must
    then be None. The config and ``summary.json`` record it (``activation``).
    ``resume=True`` continues the run saved in ``out``. Raises :class:`TrainingDiverged` on a
    non-finite loss or gradient. Returns the :class:`History` of every epoch of the run.
    """
    _validate(epochs=epochs, batch_size=batch_size, lr=lr, momentum=momentum,
              lr_halve_every=lr_halve_every, weight_decay=weight_decay, seed=seed,
              max_steps=max_steps, backend=backend, resume=resume, out=out, memory_every=memory_every,
              init=init, audit_every=audit_every)
    backend = backend if isinstance(backend, Backend) else Backend(backend)
    data = _resolve_data(data)
    net_name, net = _resolve_net(net, data, beta, seed, storage, activation)
    if audit_every and nets.beta_of(net) is None:
        raise ValueError(f"audit_every={audit_every} needs a net with a Threshold layer (a Spec net), got {net_name!r}")
    backend.move(net)
    params = net.parameters()
    dtype = _float_dtype(params)
    optimizer = SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    rng = np.random.default_rng(seed)
    config = {
        "net": net_name, "data": data.name, "num_train": data.num_train, "num_test": data.num_test,
        "dtype": str(dtype), "backend": backend.name, "epochs": int(epochs), "batch_size": int(batch_size),
        "lr": float(lr), "momentum": float(momentum),
        "lr_halve_every": None if lr_halve_every is None else int(lr_halve_every),
        "weight_decay": float(weight_decay), "beta": nets.beta_of(net), "fft_norm": _net_fft_norm(net),
        "activation": _net_activation(net),
        "seed": int(seed), "max_steps": None if max_steps is None else int(max_steps),
        "storage": storage_name(net), "memory_every": int(memory_every), "init": init,
        "audit_every": int(audit_every),
    }
    history = History()
    history.net = net
    start_epoch = 0
    if out is not None:
        os.makedirs(out, exist_ok=True)
        if resume:
            start_epoch, past = load_checkpoint(out, net, optimizer, rng, config)
            history.extend(past)
        else:
            remove_if_present(os.path.join(out, "summary.json"))
        write_text_atomic(os.path.join(out, "metrics.jsonl"), "".join(_json_line(e) for e in history))
    if init == "lsuv" and not resume:
        _lsuv_init(net, data, backend, dtype, seed)
    loop = _Loop(net, SoftmaxCrossEntropy(), optimizer, data, backend, dtype, rng, batch_size,
                 max_steps, progress, RunRecord(backend.xp, memory_every))
    for epoch in range(start_epoch, epochs):
        optimizer.lr = lr_at(epoch, lr, lr_halve_every)
        entry = loop.epoch(epoch + 1, epochs)
        if audit_every and (epoch + 1) % audit_every == 0:
            entry["audit"] = _audit(net, data)
        history.append(entry)
        if out is not None:
            with open(os.path.join(out, "metrics.jsonl"), "a", encoding="utf-8") as f:
                f.write(_json_line(entry))
            save_checkpoint(out, net, optimizer, epoch + 1, rng, config, history)
    history.summary = _summary(config, history, loop.step_seconds, start_epoch)
    if out is not None:
        write_text_atomic(os.path.join(out, "summary.json"), json.dumps(history.summary, indent=2) + "\n")
    return history


class _Loop:
    """One epoch of training then evaluation, with the progress bar and the divergence guard."""

    def __init__(self, net, criterion, optimizer, data, backend, dtype, rng, batch_size, max_steps,
                 progress, memory):
        self.net, self.criterion, self.optimizer, self.data = net, criterion, optimizer, data
        self.backend, self.xp, self.dtype, self.rng = backend, backend.xp, dtype, rng
        self.batch_size, self.max_steps, self.progress = batch_size, max_steps, progress
        self.on_host = backend.on_host
        self.step_seconds = []
        self.memory = memory
        self.sparsity = SparsityCheck(net)

    def epoch(self, epoch, epochs):
        """Train one epoch (1-based ``epoch``), evaluate, return the epoch's metrics."""
        steps = self.data.num_batches("train", self.batch_size)
        if self.max_steps is not None:
            steps = min(steps, self.max_steps)
        guard = FiniteGuard(list(self.optimizer.params), self.xp, eager=self.on_host)
        # disable=None: tqdm draws only where stderr is a terminal (CI logs stay clean).
        bar = tqdm(total=steps, desc=f"epoch {epoch}/{epochs}", unit="batch",
                   disable=None if self.progress is None else not self.progress, leave=True, dynamic_ncols=True)
        try:
            return self._epoch(epoch, steps, guard, bar)
        finally:
            bar.close()

    def _epoch(self, epoch, steps, guard, bar):
        xp, net = self.xp, self.net
        totals = {"loss": xp.zeros((), xp.float64), "correct": xp.zeros((), xp.int64)}
        seen = 0
        net.train()
        first_timing = len(self.step_seconds)
        started = time.perf_counter()
        found = []
        batches = self.data.batches("train", self.batch_size, rng=self.rng, shuffle=True)
        for step, (x, y) in enumerate(batches, start=1):
            slowed = self.memory.traced(step) and self.memory.every > 1   # tracemalloc's overhead
            checked = step == 1 and self.sparsity.active
            timed = (self.on_host or step % DEVICE_TIME_EVERY == 0) and not slowed and not checked
            if timed:
                self.backend.synchronize()
                t0 = time.perf_counter()
            with self.memory.window(step) as window:
                self.step(epoch, step, x, y, guard, totals)
            self.memory.after_step(net, window)
            if checked:
                found = self.sparsity.check(net, epoch)
            _release_caches(net)
            if timed:
                self.backend.synchronize()
                self.step_seconds.append(time.perf_counter() - t0)
            seen += len(y)
            bar.update(1)
            if self.on_host or step % DEVICE_LOG_EVERY == 0:
                guard.check()
                bar.set_postfix(loss=f"{float(totals['loss']) / seen:.4f}",
                                acc=f"{float(totals['correct']) / seen:.3f}",
                                ex_s=f"{seen / (time.perf_counter() - started):.0f}", refresh=False)
            if step == steps:
                break
        guard.check()
        train_seconds = time.perf_counter() - started
        test_loss, test_accuracy = self.evaluate()
        entry = {
            "epoch": epoch, "train_loss": float(totals["loss"]) / seen,
            "train_accuracy": float(totals["correct"]) / seen,
            "test_loss": test_loss, "test_accuracy": test_accuracy,
            "seconds": time.perf_counter() - started, "examples_per_second": seen / train_seconds,
            "train_seconds": train_seconds, "lr": self.optimizer.lr, "steps": step,
            "step_ms": 1000 * float(np.median(self.step_seconds[first_timing:] or [math.nan])),
            **self.memory.epoch(), "warnings": found,
        }
        bar.set_postfix(loss=f"{entry['train_loss']:.4f}", acc=f"{entry['train_accuracy']:.3f}",
                        test_acc=f"{test_accuracy:.3f}", ex_s=f"{entry['examples_per_second']:.0f}")
        return entry

    def step(self, epoch, step, x, y, guard, totals):
        """One training step on the host batch (x, y), its loss and correct count added to
        ``totals`` (0-d arrays on the backend's device).

        Nothing here reads a device value back: the labels are checked on the host before they
        are moved, and the finiteness flags stay on the device until ``guard.check()``.
        """
        x = self.backend.asarray(x, dtype=self.dtype)
        logits = self.net.forward(x)
        check_labels(y, logits.shape[1])
        y = self.backend.asarray(y)
        self.memory.after_forward(self.net)
        loss = self.criterion.forward(logits, y)
        _backward_without_input_grad(self.net, self.criterion.backward())
        grads = self.net.gradients()
        guard.update(epoch, step, loss, grads)
        self.optimizer.step(grads)
        totals["loss"] += self.xp.asarray(loss, dtype=self.xp.float64) * len(y)
        totals["correct"] += (logits.argmax(axis=1) == y).sum()

    def evaluate(self):
        """Mean loss and accuracy over the test split, in eval mode."""
        xp, net = self.xp, self.net
        loss_sum, correct, seen = xp.zeros((), xp.float64), xp.zeros((), xp.int64), 0
        net.eval()
        try:
            for x, y in self.data.batches("test", self.batch_size, shuffle=False, augment=False):
                logits = net.forward(self.backend.asarray(x, dtype=self.dtype))
                check_labels(y, logits.shape[1])
                y = self.backend.asarray(y)
                loss_sum += xp.asarray(self.criterion.forward(logits, y), dtype=xp.float64) * len(y)
                correct += (xp.argmax(logits, axis=1) == y).sum()
                seen += len(y)
                _release_caches(net)
        finally:
            net.train()
        if seen == 0:
            return float("nan"), float("nan")
        return float(loss_sum) / seen, float(correct) / seen


def _validate(*, epochs, batch_size, lr, momentum, lr_halve_every, weight_decay, seed,
              max_steps, backend, resume, out, memory_every=0, init="default", audit_every=0):
    """ValueError naming the first bad argument of :func:`train` (beta is checked by the
    Threshold layers it is given to)."""
    if init not in INITS:
        raise ValueError(f"init must be one of {INITS}, got {init!r}")
    check_number(epochs, "epochs", integer=True, minimum=1)
    check_number(batch_size, "batch_size", integer=True, minimum=1)
    check_number(lr, "lr", above=0)
    check_number(momentum, "momentum", minimum=0, below=1)
    check_number(weight_decay, "weight_decay", minimum=0)
    if lr_halve_every is not None:
        check_number(lr_halve_every, "lr_halve_every", integer=True, minimum=0)
    check_number(seed, "seed", integer=True, minimum=0)
    if max_steps is not None:
        check_number(max_steps, "max_steps", integer=True, minimum=1)
    check_number(memory_every, "memory_every", integer=True, minimum=0)
    check_number(audit_every, "audit_every", integer=True, minimum=0)
    if not isinstance(backend, Backend) and backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if resume and out is None:
        raise ValueError("resume=True needs out= (the run directory holding checkpoint.npz)")


def _lsuv_init(net, data, backend, dtype, seed):
    """specref.init.lsuv on LSUV_EXAMPLES training examples drawn by their own Generator (the
    training batches stay those of a default-init run with the same seed)."""
    from .init import lsuv

    batch_size = min(LSUV_EXAMPLES, data.num_train)
    x, _ = next(iter(data.batches("train", batch_size, rng=np.random.default_rng([seed, 1]),
                                  shuffle=True, augment=False)))
    lsuv(net, backend.asarray(x, dtype=dtype))


def _audit(net, data):
    """The audit summary on the first AUDIT_EXAMPLES test (else training) examples, fixed for the run."""
    split = "test" if data.num_test else "train"
    x, y = next(iter(data.batches(split, AUDIT_EXAMPLES, shuffle=False, augment=False)))
    betas = nets.beta_of(net)
    return audit_summary(net, x, y, sorted({0.0, *(betas if isinstance(betas, list) else [betas])}))


def _resolve_data(data):
    if isinstance(data, str):
        from . import data as data_module

        return data_module.load(data)
    if not hasattr(data, "batches") or not hasattr(data, "num_batches"):
        raise TypeError(f"data must be a specref.data Dataset or a dataset name, got {type(data).__name__}")
    if data.num_train < 1:
        raise ValueError(f"data {data.name!r} has no training examples (num_train=0)")
    return data


def _resolve_net(net, data, beta, seed, storage=None, activation=None):
    """(name recorded in the config, network object)."""
    if isinstance(net, str):
        kwargs = {} if beta is None else {"beta": beta}
        if storage is not None:
            kwargs["storage"] = storage
        if activation is not None:
            kwargs["activation"] = activation
        built = nets.build(net, seed=seed, input_shape=data.input_shape, num_classes=data.num_classes,
                           **kwargs)
        return net, built
    for method in ("forward", "backward", "parameters", "gradients", "train", "eval"):
        if not callable(getattr(net, method, None)):
            raise TypeError(f"net must be a network (with {method}()) or a registry name, got {type(net).__name__}")
    if activation is not None:
        raise ValueError(f"activation={activation!r} applies to a registry name only; this {type(net).__name__} "
                         "keeps the activation it was built with (build it with nets.build(..., activation=...))")
    if beta is not None:
        nets.set_beta(net, beta)
    if storage is not None:
        set_storage(net, storage)
    return getattr(net, "name", None) or type(net).__name__, net


def _backward_without_input_grad(net, dy):
    """net.backward(dy), telling a specref network that nobody reads the input's gradient."""
    if getattr(net, "skips_input_grad", False):
        net.backward(dy, input_grad=False)
    else:
        net.backward(dy)


def _release_caches(net):
    """Free what the step kept for backward: the next step keeps its own."""
    clear = getattr(net, "clear_cache", None)
    if callable(clear):
        clear()


def _float_dtype(params):
    for value in params.values():
        if np.issubdtype(value.dtype, np.floating):
            return np.dtype(value.dtype)
    return np.dtype(np.float32)


def _net_fft_norm(net):
    """The net's FFT normalization (None for a registry spatial net); "ortho" when it has none."""
    return net.fft_norm if hasattr(net, "fft_norm") else "ortho"


def _net_activation(net):
    """A registry net's activation (its Spec blocks' for a Spec net) as a string, else None."""
    activation = net.config.get("activation") if isinstance(net, nets.Network) else None
    return None if activation is None else str(activation)


def _summary(config, history, step_seconds, start_epoch):
    last = history[-1] if history else {}
    if step_seconds:
        step_ms = 1000 * float(np.median(step_seconds))
    else:
        step_ms = float(np.median([e["step_ms"] for e in history if "step_ms" in e] or [math.nan]))
    summary = dict(config)
    summary.update({
        "epochs": len(history), "test_accuracy": last.get("test_accuracy"), "test_loss": last.get("test_loss"),
        "train_loss": last.get("train_loss"), "train_accuracy": last.get("train_accuracy"),
        "seconds": float(sum(e["seconds"] for e in history)), "step_ms": step_ms,
        "resumed_from_epoch": start_epoch if start_epoch else None,
        **RunRecord.summary(history),
    })
    return summary


def _json_line(entry):
    return json.dumps(entry) + "\n"
