"""Stochastic gradient descent with momentum and weight decay, updating parameters in place.

For each parameter p with gradient g (PyTorch's convention, dampening 0, no Nesterov):

    g <- g + weight_decay * p
    v <- momentum * v + g          (v starts at zero, so the first step is plain SGD)
    p <- p - lr * v

The paper's recipe is lr 0.02 halved every 50 epochs with momentum 0.95: :func:`lr_at` gives the
rate of an epoch. The update is array-generic: each buffer lives with its parameter (NumPy or
CuPy); :meth:`SGD.state_dict` copies the buffers to the host, :meth:`SGD.load_state_dict` moves
them back next to the parameters.
"""
from __future__ import annotations

from . import kernels
from .backend import array_module, to_numpy
from .checks import check_number


def lr_at(epoch: int, lr: float, halve_every: int | None) -> float:
    """The learning rate of 0-based ``epoch``: ``lr`` halved every ``halve_every`` epochs.

    ``halve_every`` None or 0 keeps ``lr`` constant.
    """
    if not halve_every:
        return float(lr)
    return float(lr) * 0.5 ** (int(epoch) // int(halve_every))


class SGD:
    """SGD over ``params`` (name -> array, the network's own arrays, updated in place)."""

    def __init__(self, params: dict, lr: float, momentum: float = 0.0, weight_decay: float = 0.0):
        if not isinstance(params, dict) or not params:
            raise ValueError(f"params must be a non-empty dict of name -> array, got {type(params).__name__}")
        self.params = params
        self.lr = check_number(lr, "lr", above=0)
        self.momentum = check_number(momentum, "momentum", minimum=0, below=1)
        self.weight_decay = check_number(weight_decay, "weight_decay", minimum=0)
        self.velocity = {}
        if self.momentum:
            self.velocity = {name: array_module(p).zeros_like(p) for name, p in params.items()}

    def step(self, grads: dict):
        """One update from ``grads`` (same keys as ``params``); ``grads`` are left untouched."""
        missing = set(self.params) - set(grads)
        if missing:
            raise KeyError(f"grads has no entry for parameter {sorted(missing)[0]!r}")
        for name, p in self.params.items():
            g = grads[name]
            if g.shape != p.shape:
                raise ValueError(f"gradient of {name!r} has shape {tuple(g.shape)}, parameter has {tuple(p.shape)}")
            if self.momentum and kernels.sgd_momentum(p, g, self.velocity[name], self.lr, self.momentum,
                                                      self.weight_decay):
                continue                                  # one fused pass on the host
            if self.weight_decay:
                g = g + self.weight_decay * p
            if self.momentum:
                v = self.velocity[name]
                v *= self.momentum
                v += g
                g = v
            p -= self.lr * g

    def state_dict(self) -> dict:
        """Hyperparameters and momentum buffers, the buffers copied to NumPy."""
        return {
            "lr": self.lr,
            "momentum": self.momentum,
            "weight_decay": self.weight_decay,
            "velocity": {name: to_numpy(v).copy() for name, v in self.velocity.items()},
        }

    def load_state_dict(self, state: dict):
        """Restore a :meth:`state_dict`; buffers are copied next to their parameters."""
        self.lr = check_number(state["lr"], "lr", above=0)
        self.momentum = check_number(state["momentum"], "momentum", minimum=0, below=1)
        self.weight_decay = check_number(state["weight_decay"], "weight_decay", minimum=0)
        velocity = state.get("velocity", {})
        if self.momentum and set(velocity) != set(self.params):
            extra = sorted(set(velocity) ^ set(self.params))
            raise ValueError(f"optimizer state does not match the parameters (differs at {extra[0]!r})")
        self.velocity = {}
        for name, buf in velocity.items():
            p = self.params[name]
            if tuple(buf.shape) != tuple(p.shape):
                raise ValueError(
                    f"momentum buffer of {name!r} has shape {tuple(buf.shape)}, parameter has {tuple(p.shape)}"
                )
            self.velocity[name] = array_module(p).asarray(buf, dtype=p.dtype).copy()

    def __repr__(self):
        return f"SGD(lr={self.lr}, momentum={self.momentum}, weight_decay={self.weight_decay})"
