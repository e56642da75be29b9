"""What training watches on its steps: non-finite values (an error) and a Spec net that keeps
almost nothing (a warning).

- :class:`FiniteGuard` raises :class:`TrainingDiverged` at the first step whose loss or a gradient
  is NaN or infinite.
- :class:`SparsityCheck` warns (:class:`SparsityWarning`) when a thresholded block keeps under
  ``MIN_KEPT_DENSITY`` of its entries, or every gradient of a layer is exactly zero: such a net
  trains to chance without any error (beta too large for the FFT normalization). It reads the
  densities from the maps the step kept (:func:`specref.memory.block_densities`) and the gradients
  backward left, on the steps training asks it to check (the first of each epoch).
"""
from __future__ import annotations

import warnings

import numpy as np

from . import nets
from .backend import array_module, to_numpy
from .memory import block_densities
from .tree import leaf_layers

MIN_KEPT_DENSITY = 0.01


class TrainingDiverged(RuntimeError):
    """The loss or a gradient became NaN or infinite; ``layer`` is "loss" or a parameter name."""

    def __init__(self, epoch: int, step: int, layer: str):
        self.epoch, self.step, self.layer = epoch, step, layer
        what = "loss" if layer == "loss" else f"gradient of parameter {layer!r}"
        super().__init__(f"training diverged at epoch {epoch}, step {step}: the {what} is NaN or "
                         f"infinite (try a smaller lr; the last good checkpoint, if any, is intact)")


class SparsityWarning(UserWarning):
    """A Spec net keeps almost nothing: a block's kept density is under ``MIN_KEPT_DENSITY``, or
    every gradient of a layer is exactly zero (the net then trains to chance, without an error)."""


class SparsityCheck:
    """Warns once per run and finding; ``active`` only for a net with a thresholded layer."""

    def __init__(self, net):
        self.name = getattr(net, "name", None) or type(net).__name__
        self.active = nets.beta_of(net) is not None
        self.seen = set()

    def check(self, net, epoch):
        """Findings of the step just run (its caches and gradients still held) not warned before
        in this run: each is warned and returned as its message."""
        findings = {}
        for block, beta, density in block_densities(net):
            if density is not None and density < MIN_KEPT_DENSITY:
                findings[("density", block)] = (
                    f"{self.name}: block {block} kept {density:.2%} of its spectral entries on the first "
                    f"step of epoch {epoch} (beta={beta:g}; under {MIN_KEPT_DENSITY:.0%}): the threshold "
                    f"zeroes almost everything, so the net can hardly learn; try a smaller beta "
                    f"(the default is {nets.DEFAULT_BETA:g})")
        for name, layer in leaf_layers(net):
            grads = [layer.grads[key] for key in layer.params if key in layer.grads]
            if grads and not any(bool(array_module(g).any(g)) for g in grads):
                findings[("gradient", name)] = (
                    f"{self.name}: every gradient of layer {name}:{type(layer).__name__} is exactly zero on "
                    f"the first step of epoch {epoch} (beta={nets.beta_of(net)}): it does not learn; a "
                    f"thresholded block before it may keep nothing (try a smaller beta)")
        new = [text for key, text in findings.items() if key not in self.seen]
        self.seen.update(findings)
        for text in new:
            warnings.warn(text, SparsityWarning, stacklevel=2)
        return new


class FiniteGuard:
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
        """Flag the step's loss and gradients: one float64 sum per array (finite exactly when every
        entry is, short of float64 overflow, which a float32 array cannot reach) and one
        ``isfinite`` over the stacked sums: P + 2 kernels on a device instead of 2P + 1."""
        xp = self.xp
        values = [xp.asarray(loss)] + [grads[name] for name in self.names[1:]]
        with np.errstate(over="ignore", invalid="ignore"):
            flags = xp.isfinite(xp.stack([value.sum(dtype=_sum_dtype(value)) for value in values]))
        if self.eager:
            if not flags.all():
                raise TrainingDiverged(epoch, step, self.names[int(np.flatnonzero(~flags)[0])])
            return
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


def _sum_dtype(value):
    """float64 sums for every real or complex input (no float32 overflow, one dtype to stack)."""
    return np.complex128 if np.iscomplexobj(value) else np.float64
