"""Checkpoints of a training run: ``checkpoint.npz`` written atomically, and read back for resume.

Keys: ``param/<name>``, ``buffer/<name>``, ``optim/velocity/<name>`` arrays and the JSON strings
``optim``, ``epoch``, ``rng_state``, ``config`` and ``history``. A write goes to a temporary file
beside the target and is renamed over it, so a crash never leaves half a checkpoint.
"""
from __future__ import annotations

import json
import os
import tempfile
import warnings

import numpy as np

from .backend import array_module, to_numpy

# Config keys that must match on resume (the rest may change, e.g. epochs).
RESUME_MUST_MATCH = ("net", "data", "num_train", "num_test", "dtype")


def named_buffers(net):
    """(qualified name, layer, key) of every non-trainable state array (``layer.buffers``)."""
    found = []
    layers = list(net.named_layers()) if hasattr(net, "named_layers") else [("", net)]
    for layer_name, layer in layers:
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
    _atomic_write(os.path.join(out, "checkpoint.npz"), lambda f: np.savez(f, **arrays))


def load_checkpoint(out, net, optimizer, rng, config):
    """Restore parameters, buffers, momentum and RNG state in place; returns (epoch, history)."""
    path = os.path.join(out, "checkpoint.npz")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"resume=True but there is no checkpoint at {path} (run without resume first)")
    with np.load(path, allow_pickle=False) as saved:
        stored = {key: saved[key] for key in saved.files}
    epoch = int(json.loads(str(stored["epoch"])))
    if epoch > config["epochs"]:
        raise ValueError(f"epochs={config['epochs']} is below the epoch {epoch} of {path} "
                         f"(epochs is the total, not the number to add)")
    saved_config = json.loads(str(stored["config"]))
    for key in RESUME_MUST_MATCH:
        if saved_config.get(key) != config[key]:
            raise ValueError(f"cannot resume from {path}: it was written for {key}={saved_config.get(key)!r}, "
                             f"this run has {key}={config[key]!r}")
    changed = [k for k in ("batch_size", "lr", "momentum", "lr_halve_every", "weight_decay", "seed",
                           "max_steps") if saved_config.get(k) != config[k]]
    if changed:
        warnings.warn(f"resuming {path} with a different {', '.join(changed)}: the result will not "
                      f"match an uninterrupted run", stacklevel=3)
    targets = {f"param/{name}": (optimizer.params, name) for name in optimizer.params}
    targets.update({f"buffer/{q}": (layer.buffers, key) for q, layer, key in named_buffers(net)})
    stored_names = {k for k in stored if k.startswith(("param/", "buffer/"))}
    if stored_names != set(targets):
        odd = sorted(stored_names ^ set(targets))[0]
        raise ValueError(f"cannot resume from {path}: its parameters differ from the network's (at {odd!r})")
    for key, (store, name) in targets.items():
        if stored[key].shape != tuple(store[name].shape):
            raise ValueError(f"cannot resume from {path}: {key} has shape {stored[key].shape}, "
                             f"the network's has {tuple(store[name].shape)}")
        store[name][...] = array_module(store[name]).asarray(stored[key])
    state = {"lr": optimizer.lr, "momentum": optimizer.momentum, "weight_decay": optimizer.weight_decay,
             "velocity": {k[len("optim/velocity/"):]: v for k, v in stored.items() if k.startswith("optim/velocity/")}}
    optimizer.load_state_dict(state)
    rng.bit_generator.state = json.loads(str(stored["rng_state"]))
    return epoch, json.loads(str(stored["history"]))


def _atomic_write(path, write):
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
        _remove(tmp)
        raise


def _write_text(path, text):
    _atomic_write(path, lambda f: f.write(text.encode("utf-8")))


def _json_line(entry):
    return json.dumps(entry) + "\n"


def _remove(path):
    try:
        os.remove(path)
    except FileNotFoundError:
        pass
