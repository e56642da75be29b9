"""Checkpoints of a training run: ``checkpoint.npz`` written atomically, read back to resume a run
(:func:`load_checkpoint`) or to load trained weights into a fresh network (:func:`load_weights`).

Keys: ``param/<name>``, ``buffer/<name>``, ``optim/velocity/<name>`` arrays and the JSON strings
``optim``, ``epoch``, ``rng_state``, ``config`` and ``history``. A write goes to a temporary file
beside the target and is renamed over it (:func:`write_atomic`), so a crash never leaves half a
checkpoint.
"""
from __future__ import annotations

import json
import os
import tempfile
import warnings

import numpy as np

from .backend import array_module, to_numpy
from .tree import leaf_layers

# Config keys that must match on resume (the rest may change, e.g. epochs).
RESUME_MUST_MATCH = ("net", "data", "num_train", "num_test", "dtype", "activation")
# Keys that checkpoints written before they were recorded lack: a missing one is not a mismatch.
RECORDED_LATER = ("activation",)


def named_buffers(net):
    """(qualified name, layer, key) of every non-trainable state array (``layer.buffers``)."""
    found = []
    for layer_name, layer in leaf_layers(net):
        for key in getattr(layer, "buffers", {}) or {}:
            found.append((f"{layer_name}.{key}" if layer_name else key, layer, key))
    return found


def save_checkpoint(out, net, optimizer, epoch, rng, config, history):
    """Write ``out/checkpoint.npz`` atomically (see the module docstring for its keys)."""
    arrays = {f"param/{name}": to_numpy(value) for name, value in optimizer.params.items()}
    arrays.update({f"buffer/{q}": to_numpy(layer.buffers[key]) for q, layer, key in named_buffers(net)})
    state = optimizer.state_dict()
    arrays.update({f"optim/velocity/{name}": v for name, v in state.pop("velocity").items()})
    for key, value in (("optim", state), ("epoch", epoch), ("rng_state", rng.bit_generator.state),
                       ("config", config), ("history", list(history))):
        arrays[key] = np.array(json.dumps(value))
    write_atomic(os.path.join(out, "checkpoint.npz"), lambda f: np.savez(f, **arrays))


def load_checkpoint(out, net, optimizer, rng, config):
    """Restore parameters, buffers, momentum and RNG state in place; returns (epoch, history)."""
    path = os.path.join(out, "checkpoint.npz")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"resume=True but there is no checkpoint at {path} (run without resume first)")
    stored = _read(path)
    epoch = int(json.loads(str(stored["epoch"])))
    if epoch > config["epochs"]:
        raise ValueError(f"epochs={config['epochs']} is below the epoch {epoch} of {path} "
                         f"(epochs is the total, not the number to add)")
    saved_config = json.loads(str(stored["config"]))
    for key in RESUME_MUST_MATCH:
        if key in RECORDED_LATER and key not in saved_config:
            continue
        if saved_config.get(key) != config.get(key):
            raise ValueError(f"cannot resume from {path}: it was written for {key}={saved_config.get(key)!r}, "
                             f"this run has {key}={config.get(key)!r}")
    changed = [k for k in ("batch_size", "lr", "momentum", "lr_halve_every", "weight_decay", "seed",
                           "max_steps") if saved_config.get(k) != config[k]]
    if changed:
        warnings.warn(f"resuming {path} with a different {', '.join(changed)}: the result will not "
                      f"match an uninterrupted run", stacklevel=3)
    _restore_state(stored, net, optimizer.params, f"cannot resume from {path}")
    state = {"lr": optimizer.lr, "momentum": optimizer.momentum, "weight_decay": optimizer.weight_decay,
             "velocity": {k[len("optim/velocity/"):]: v for k, v in stored.items() if k.startswith("optim/velocity/")}}
    optimizer.load_state_dict(state)
    rng.bit_generator.state = json.loads(str(stored["rng_state"]))
    return epoch, json.loads(str(stored["history"]))


def load_weights(net, path):
    """Parameters and buffers of ``net`` from a ``specref train`` checkpoint.npz, in place.

    Returns the checkpoint's training config (net, beta, fft_norm, data, ...).
    """
    stored = _read(path)
    _restore_state(stored, net, net.parameters(),
                   f"checkpoint {path} does not fit network {getattr(net, 'name', type(net).__name__)!r}")
    return json.loads(str(stored["config"])) if "config" in stored else {}


def write_atomic(path, write):
    """Call ``write(file)`` on a temporary file beside ``path``, then rename it over ``path``."""
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp",
                               dir=os.path.dirname(os.path.abspath(path)))
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        remove_if_present(tmp)
        raise


def write_text_atomic(path, text):
    """``text`` (UTF-8) into ``path`` through :func:`write_atomic`."""
    write_atomic(path, lambda f: f.write(text.encode("utf-8")))


def remove_if_present(path):
    try:
        os.remove(path)
    except FileNotFoundError:
        pass


def _read(path):
    with np.load(path, allow_pickle=False) as saved:
        return {key: saved[key] for key in saved.files}


def _restore_state(stored, net, params, refusal):
    """Copy the ``param/`` and ``buffer/`` arrays of ``stored`` into ``params`` (name -> the net's
    own arrays) and ``net``'s buffers, in place; ValueError starting with ``refusal`` when the
    names or a shape differ."""
    targets = {f"param/{name}": (params, name) for name in params}
    targets.update({f"buffer/{q}": (layer.buffers, key) for q, layer, key in named_buffers(net)})
    found = {k for k in stored if k.startswith(("param/", "buffer/"))}
    if found != set(targets):
        odd = sorted(found ^ set(targets))[0]
        raise ValueError(f"{refusal}: {odd!r} is in only one of the checkpoint and the network")
    for key, (store, name) in targets.items():
        if stored[key].shape != tuple(store[name].shape):
            raise ValueError(f"{refusal}: {key} has shape {stored[key].shape}, the network's has "
                             f"{tuple(store[name].shape)} (another input size or class count?)")
        store[name][...] = array_module(store[name]).asarray(stored[key])
