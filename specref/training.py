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
"""
from __future__ import annotations

import json
import math
import os
import time

import numpy as np
from tqdm import tqdm

from .backend import BACKENDS, Backend, to_numpy
from .checkpoint import (RESUME_MUST_MATCH, _json_line, _remove, _write_text, load_checkpoint,  # noqa: F401
                         named_buffers, save_checkpoint)
from .layers.loss import SoftmaxCrossEntropy
from .memory import RunRecord, storage_name
from .optim import SGD, lr_at
from .storage import set_storage

EPOCH_KEYS = ("epoch", "train_loss", "train_accuracy", "test_loss", "test_accuracy", "seconds",
              "examples_per_second", "saved_bytes_mean", "saved_bytes_peak", "peak_bytes")
SUMMARY_KEYS = ("net", "data", "backend", "epochs", "beta", "fft_norm", "test_accuracy", "test_loss",
                "train_loss", "seconds", "step_ms", "storage", "saved_bytes_mean", "saved_bytes_peak",
                "peak_bytes")
DEVICE_LOG_EVERY = 20
DEVICE_TIME_EVERY = 8
INITS = ("default", "lsuv")
LSUV_EXAMPLES = 128


class TrainingDiverged(RuntimeError):
    """The loss or a gradient became NaN or infinite; ``layer`` is "loss" or a parameter name."""

    def __init__(self, epoch: int, step: int, layer: str):
        self.epoch, self.step, self.layer = epoch, step, layer
        what = "loss" if layer == "loss" else f"gradient of parameter {layer!r}"
        super().__init__(f"training diverged at epoch {epoch}, step {step}: the {what} is NaN or "
                         f"infinite (try a smaller lr; the last good checkpoint, if any, is intact)")


class History(list):
    """Per-epoch dicts (``EPOCH_KEYS`` and more); ``net`` and ``summary`` are set by :func:`train`."""

    net = None
    summary = None

    def column(self, key):
        return [entry[key] for entry in self]


def train(net, data, *, backend="numpy", epochs, batch_size=128, lr=0.02, momentum=0.95,
          lr_halve_every=50, weight_decay=0.0, beta=None, seed=0, out=None, resume=False,
          progress=True, max_steps=None, storage=None, memory_every=100, init="default") -> History:
    """Train ``net`` (a network, or a :func:`specref.nets.build` name) on ``data`` (a Dataset or a
    :func:`specref.data.load` name) up to ``epochs`` epochs in total.

    ``beta`` (None: the net's own) sets the threshold of a registry net, or of every layer with a
    ``beta`` in a given one. ``max_steps`` caps the training steps of each epoch (quick runs).
    ``storage`` (None: the net's own, "dense" for a registry name) is the codec every layer keeps
    its feature maps with (see :mod:`specref.storage`). ``memory_every``: trace the allocator peak
    on the second step of each epoch and every ``memory_every``-th one (0: never).
    ``init``: "default" keeps the weights as given; "lsuv" first rescales every layer so its output
    has unit RMS on 128 training examples (:func:`specref.init.lsuv`; deep tanh nets without
    batch norm need it). A resumed run takes its weights from the checkpoint instead.
    ``resume=True`` continues the run saved in ``out``. Raises :class:`TrainingDiverged` on a
    non-finite loss or gradient. Returns the :class:`History` of every epoch of the run.
    """
    _validate(epochs=epochs, batch_size=batch_size, lr=lr, momentum=momentum,
              lr_halve_every=lr_halve_every, weight_decay=weight_decay, beta=beta, seed=seed,
              max_steps=max_steps, backend=backend, resume=resume, out=out, memory_every=memory_every,
              init=init)
    backend = Backend(backend)
    data = _resolve_data(data)
    net_name, net = _resolve_net(net, data, beta, seed, storage)
    move_state(net, backend)
    params = net.parameters()
    dtype = _float_dtype(params)
    optimizer = SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    rng = np.random.default_rng(seed)
    config = {
        "net": net_name, "data": data.name, "num_train": data.num_train, "num_test": data.num_test,
        "dtype": str(dtype), "backend": backend.name, "epochs": int(epochs), "batch_size": int(batch_size),
        "lr": float(lr), "momentum": float(momentum),
        "lr_halve_every": None if lr_halve_every is None else int(lr_halve_every),
        "weight_decay": float(weight_decay), "beta": _net_beta(net), "fft_norm": _net_fft_norm(net),
        "seed": int(seed), "max_steps": None if max_steps is None else int(max_steps),
        "storage": storage_name(net), "memory_every": int(memory_every), "init": init,
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
            _remove(os.path.join(out, "summary.json"))
        _write_text(os.path.join(out, "metrics.jsonl"), "".join(_json_line(e) for e in history))
    if init == "lsuv" and not resume:
        _lsuv_init(net, data, backend, dtype, seed)
    loop = _Loop(net, SoftmaxCrossEntropy(), optimizer, data, backend, dtype, rng, batch_size,
                 max_steps, progress, RunRecord(backend.xp, memory_every))
    for epoch in range(start_epoch, epochs):
        optimizer.lr = lr_at(epoch, lr, lr_halve_every)
        entry = loop.epoch(epoch + 1, epochs)
        history.append(entry)
        if out is not None:
            with open(os.path.join(out, "metrics.jsonl"), "a", encoding="utf-8") as f:
                f.write(_json_line(entry))
            save_checkpoint(out, net, optimizer, epoch + 1, rng, config, history)
    history.summary = _summary(config, history, loop.step_seconds, start_epoch)
    if out is not None:
        _write_text(os.path.join(out, "summary.json"), json.dumps(history.summary, indent=2) + "\n")
    return history


class _Loop:
    """One epoch of training then evaluation, with the progress bar and the divergence guard."""

    def __init__(self, net, criterion, optimizer, data, backend, dtype, rng, batch_size, max_steps,
                 progress, memory):
        self.net, self.criterion, self.optimizer, self.data = net, criterion, optimizer, data
        self.backend, self.xp, self.dtype, self.rng = backend, backend.xp, dtype, rng
        self.batch_size, self.max_steps, self.progress = batch_size, max_steps, progress
        self.on_host = backend.name == "numpy"
        self.step_seconds = []
        self.memory = memory

    def epoch(self, epoch, epochs):
        """Train one epoch (1-based ``epoch``), evaluate, return the epoch's metrics."""
        steps = self.data.num_batches("train", self.batch_size)
        if self.max_steps is not None:
            steps = min(steps, self.max_steps)
        guard = _FiniteGuard(list(self.optimizer.params), self.xp, eager=self.on_host)
        bar = tqdm(total=steps, desc=f"epoch {epoch}/{epochs}", unit="batch", disable=not self.progress,
                   leave=True, dynamic_ncols=True)
        try:
            return self._epoch(epoch, steps, guard, bar)
        finally:
            bar.close()

    def _epoch(self, epoch, steps, guard, bar):
        xp, net = self.xp, self.net
        loss_sum, correct, seen = xp.zeros((), xp.float64), xp.zeros((), xp.int64), 0
        net.train()
        first_timing = len(self.step_seconds)
        started = time.perf_counter()
        batches = self.data.batches("train", self.batch_size, rng=self.rng, shuffle=True)
        for step, (x, y) in enumerate(batches, start=1):
            slowed = self.memory.traced(step) and self.memory.every > 1   # tracemalloc's overhead
            timed = (self.on_host or step % DEVICE_TIME_EVERY == 0) and not slowed
            if timed:
                self.backend.synchronize()
                t0 = time.perf_counter()
            with self.memory.window(step) as window:
                x, y = self.backend.asarray(x, dtype=self.dtype), self.backend.asarray(y)
                logits = net.forward(x)
                self.memory.after_forward(net)
                loss = self.criterion.forward(logits, y)
                net.backward(self.criterion.backward())
                grads = net.gradients()
                guard.update(epoch, step, loss, grads)
                self.optimizer.step(grads)
            self.memory.after_step(net, window)
            _release_caches(net)
            if timed:
                self.backend.synchronize()
                self.step_seconds.append(time.perf_counter() - t0)
            loss_sum += xp.asarray(loss, dtype=xp.float64) * len(y)
            correct += (xp.argmax(logits, axis=1) == y).sum()
            seen += len(y)
            bar.update(1)
            if self.on_host or step % DEVICE_LOG_EVERY == 0:
                guard.check()
                bar.set_postfix(loss=f"{float(loss_sum) / seen:.4f}", acc=f"{float(correct) / seen:.3f}",
                                ex_s=f"{seen / (time.perf_counter() - started):.0f}", refresh=False)
            if step == steps:
                break
        guard.check()
        train_seconds = time.perf_counter() - started
        test_loss, test_accuracy = self.evaluate()
        entry = {
            "epoch": epoch, "train_loss": float(loss_sum) / seen, "train_accuracy": float(correct) / seen,
            "test_loss": test_loss, "test_accuracy": test_accuracy,
            "seconds": time.perf_counter() - started, "examples_per_second": seen / train_seconds,
            "train_seconds": train_seconds, "lr": self.optimizer.lr, "steps": step,
            "step_ms": 1000 * float(np.median(self.step_seconds[first_timing:] or [math.nan])),
            **self.memory.epoch(),
        }
        bar.set_postfix(loss=f"{entry['train_loss']:.4f}", acc=f"{entry['train_accuracy']:.3f}",
                        test_acc=f"{test_accuracy:.3f}", ex_s=f"{entry['examples_per_second']:.0f}")
        return entry

    def evaluate(self):
        """Mean loss and accuracy over the test split, in eval mode."""
        xp, net = self.xp, self.net
        loss_sum, correct, seen = xp.zeros((), xp.float64), xp.zeros((), xp.int64), 0
        net.eval()
        try:
            for x, y in self.data.batches("test", self.batch_size, shuffle=False, augment=False):
                x, y = self.backend.asarray(x, dtype=self.dtype), self.backend.asarray(y)
                logits = net.forward(x)
                loss_sum += xp.asarray(self.criterion.forward(logits, y), dtype=xp.float64) * len(y)
                correct += (xp.argmax(logits, axis=1) == y).sum()
                seen += len(y)
                _release_caches(net)
        finally:
            net.train()
        if seen == 0:
            return float("nan"), float("nan")
        return float(loss_sum) / seen, float(correct) / seen


class _FiniteGuard:
    """Finds the first step whose loss or a gradient is NaN or infinite.

    On the host each step is checked before the update, so no bad update is ever applied. On a
    device the per-step flags stay there and are read back at :meth:`check` (a logging point), so
    the report still names the first bad step and parameter; checkpoints are only written after a
    clean :meth:`check`, so the last one on disk is always good.
    """

    def __init__(self, names, xp, eager):
        self.names, self.xp, self.eager = ["loss", *names], xp, eager
        self.pending = []

    def update(self, epoch, step, loss, grads):
        xp = self.xp
        values = [xp.asarray(loss)] + [grads[name] for name in self.names[1:]]
        if self.eager:
            for name, value in zip(self.names, values):
                if not np.isfinite(value).all():
                    raise TrainingDiverged(epoch, step, name)
            return
        flags = xp.stack([xp.isfinite(value).all() for value in values])
        self.pending.append((epoch, step, flags))

    def check(self):
        if not self.pending:
            return
        flags = to_numpy(self.xp.stack([f for _, _, f in self.pending]))
        pending, self.pending = self.pending, []
        bad_rows = np.flatnonzero(~flags.all(axis=1))
        if bad_rows.size:
            row = bad_rows[0]
            epoch, step, _ = pending[row]
            raise TrainingDiverged(epoch, step, self.names[int(np.flatnonzero(~flags[row])[0])])


def _validate(*, epochs, batch_size, lr, momentum, lr_halve_every, weight_decay, beta, seed,
              max_steps, backend, resume, out, memory_every=0, init="default"):
    """ValueError naming the first bad argument of :func:`train`."""
    if init not in INITS:
        raise ValueError(f"init must be one of {INITS}, got {init!r}")
    _check_int(epochs, "epochs")
    _check_int(batch_size, "batch_size")
    _check_number(lr, "lr", positive=True)
    _check_number(momentum, "momentum")
    if momentum >= 1:
        raise ValueError(f"momentum must be in [0, 1), got {momentum!r}")
    _check_number(weight_decay, "weight_decay")
    if lr_halve_every is not None:
        _check_int(lr_halve_every, "lr_halve_every", minimum=0)
    if beta is not None:
        _check_number(beta, "beta")
    _check_int(seed, "seed", minimum=0)
    if max_steps is not None:
        _check_int(max_steps, "max_steps")
    _check_int(memory_every, "memory_every", minimum=0)
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


def _resolve_data(data):
    if isinstance(data, str):
        from . import data as data_module

        return data_module.load(data)
    if not hasattr(data, "batches") or not hasattr(data, "num_batches"):
        raise TypeError(f"data must be a specref.data Dataset or a dataset name, got {type(data).__name__}")
    if data.num_train < 1:
        raise ValueError(f"data {data.name!r} has no training examples (num_train=0)")
    return data


def _resolve_net(net, data, beta, seed, storage=None):
    """(name recorded in the config, network object)."""
    if isinstance(net, str):
        from . import nets

        kwargs = {} if beta is None else {"beta": beta}
        if storage is not None:
            kwargs["storage"] = storage
        built = nets.build(net, seed=seed, input_shape=data.input_shape, num_classes=data.num_classes,
                           **kwargs)
        return net, built
    for method in ("forward", "backward", "parameters", "gradients", "train", "eval"):
        if not callable(getattr(net, method, None)):
            raise TypeError(f"net must be a network (with {method}()) or a registry name, got {type(net).__name__}")
    if beta is not None:
        holders = [layer for _, layer in _named_layers(net) if hasattr(layer, "beta")]
        if not holders:
            raise ValueError(f"beta={beta!r} was given but the network has no layer with a beta")
        for holder in holders + ([net] if hasattr(net, "beta") else []):
            holder.beta = float(beta)
    if storage is not None:
        net.storage = set_storage(net, storage)
    return getattr(net, "name", None) or type(net).__name__, net


def _release_caches(net):
    """Free what the step kept for backward: the next step keeps its own."""
    clear = getattr(net, "clear_cache", None)
    if callable(clear):
        clear()


def _named_layers(net):
    if hasattr(net, "named_layers"):
        return list(net.named_layers())
    return [("", net)]


def move_state(net, backend):
    """Every parameter and buffer moved to ``backend`` (no copy when already there)."""
    for _, layer in _named_layers(net):
        for store in (layer.params, getattr(layer, "buffers", None) or {}):
            for key, value in store.items():
                store[key] = backend.asarray(value)


def _float_dtype(params):
    for value in params.values():
        if np.issubdtype(value.dtype, np.floating):
            return np.dtype(value.dtype)
    return np.dtype(np.float32)


def _net_beta(net):
    if hasattr(net, "beta"):
        return float(net.beta) if net.beta is not None else None
    betas = sorted({float(layer.beta) for _, layer in _named_layers(net)
                    if getattr(layer, "beta", None) is not None})
    if not betas:
        return None
    return betas[0] if len(betas) == 1 else betas


def _net_fft_norm(net):
    """The net's FFT normalization (None for a registry spatial net); "ortho" when it has none."""
    return net.fft_norm if hasattr(net, "fft_norm") else "ortho"


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


def _check_int(value, name, minimum=1):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")


def _check_number(value, name, positive=False):
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
            or not math.isfinite(value) or value < 0 or (positive and value == 0):
        raise ValueError(f"{name} must be a finite number {'> 0' if positive else '>= 0'}, got {value!r}")
