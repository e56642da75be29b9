"""Gradient audit: how far are SpecNet's gradients from the exact ones, and is the backward right?

The paper says that since feature maps are stored sparsely, "the gradients calculated in the
backward propagation are approximations to the true gradients". DESIGN.md reads that two ways;
:func:`audit` measures either against g0, the gradient of the beta = 0 network (no threshold
anywhere, maps kept dense) at the same weights and batch:

- ``threshold="forward"`` (Algorithm 1 as written): the threshold is part of the forward pass;
  the backward is exact for that thresholded network, and g_beta differs from g0 because the
  network itself differs.
- ``threshold="storage"``: the forward is the beta = 0 network's; only the copies kept for
  backward drop |v| <= beta (:class:`ThresholdingCodec`, a codec that thresholds as it stores),
  so backward runs on approximate maps. The loss is the beta = 0 loss.

Per beta and parameter: relative error |g - g0| / |g0|, cosine(g, g0), sign agreement (share of
entries where g0 != 0 that g matches in sign); the loss change; the kept density per block
(:func:`specref.memory.block_densities`). Then a finite-difference verdict of the hand-written
backward of the network thresholded at that beta (the only network with a gradient at that
beta): per parameter, directional derivatives along random directions by central differences in
float64, on a few examples. The threshold jumps at |Y| = beta, so each difference is taken only
where no threshold mask flips between x - eps t, x and x + eps t (eps shrinks up to twice if one
does); a parameter whose check still crosses the kink is "too_close", reported with the
threshold layer and its margin min ||Y| - beta|. "pass" then means the error is the
approximation, "fail" names the parameters whose backward is wrong.
"""
from __future__ import annotations

import copy
import math

import numpy as np

from . import nets
from .backend import array_module, to_numpy
from .layers.loss import SoftmaxCrossEntropy, check_labels
from .layers.threshold import check_beta
from .memory import block_densities
from .storage import Codec, get_codec, set_storage
from .tree import leaf_layers, state_stores

READINGS = ("forward", "storage")
FD_RTOL = 1e-5          # a 1% error in one gradient is 1e3 times this
FD_NOISE = 1e-13        # absolute tolerance: rounding of the loss, scaled by max(1, |L|) / eps
FD_SHRINK = (1.0, 1e-2, 1e-4)


class ThresholdingCodec(Codec):
    """Stores a map with its entries |v| <= beta dropped (the storage reading); exact otherwise."""

    def __init__(self, beta, inner="csr"):
        inner = get_codec(inner)
        super().__init__(inner.structure, inner.values)
        self.beta, self.name = check_beta(beta), f"threshold({beta:g})+{inner.name}"

    def encode(self, array):
        xp = array_module(array)
        if xp.iscomplexobj(array):
            array = array * (xp.abs(array) > self.beta)
        return super().encode(array)


def audit(net, x, y, betas, threshold="forward", *, fd_directions=2, fd_batch=4, fd_eps=1e-6, seed=0):
    """The audit of ``net``'s gradient on the batch (x, y) at each of ``betas`` (see the module
    docstring); a dict of plain numbers, strings, lists and dicts (JSON-ready, None where a
    figure is undefined).

    Runs on a float64 copy of ``net``: the net itself (weights, betas, storage, caches) is not
    touched. ``fd_directions`` random directions per parameter (0: no finite-difference check) on
    the first ``fd_batch`` examples, step ``fd_eps``; ``seed`` draws the directions.
    """
    if threshold not in READINGS:
        raise ValueError(f"threshold must be one of {READINGS}, got {threshold!r}")
    betas = check_betas(betas)
    fd_directions = _count(fd_directions, "fd_directions", 0)
    fd_batch = _count(fd_batch, "fd_batch", 1)
    if not (isinstance(fd_eps, (int, float)) and math.isfinite(fd_eps) and fd_eps > 0):
        raise ValueError(f"fd_eps must be a finite number > 0, got {fd_eps!r}")
    work = float64_copy(net)
    x, y = check_batch(work, x, y)
    if not any(getattr(layer, "beta", None) is not None for _, layer in leaf_layers(work)):
        raise ValueError(f"net {_name(work)!r} has no Threshold layer: there is no beta to audit")
    rng = np.random.default_rng(seed)
    loss0, g0, _ = _run(work, x, y, 0.0, "dense")
    result = {"net": _name(work), "threshold": threshold, "dtype": "float64", "batch": int(len(y)),
              "fft_norm": getattr(net, "fft_norm", None), "loss_beta0": loss0,
              "finite_difference": {"directions": fd_directions, "batch": min(fd_batch, len(y)),
                                    "eps": float(fd_eps), "rtol": FD_RTOL},
              "betas": []}
    for beta in betas:
        if threshold == "forward":
            loss, g, density = _run(work, x, y, beta, "dense")
        else:
            loss, g, density = _run(work, x, y, 0.0, ThresholdingCodec(beta))
        params = compare(g, g0)
        row = {"beta": beta, "loss": loss, "loss_change": loss - loss0, **summarize(params),
               "density": density, "density_mean": _mean(density.values()), "params": params}
        if fd_directions:
            set_beta_and_storage(work, beta, "dense")
            row["finite_difference"] = gradient_check(work, x[:fd_batch], y[:fd_batch], rng,
                                                      directions=fd_directions, eps=fd_eps)
        result["betas"].append(row)
    return result


def check_betas(betas):
    """A non-empty list of finite floats >= 0; ValueError naming ``betas`` otherwise."""
    if isinstance(betas, (int, float)) and not isinstance(betas, bool):
        betas = [betas]
    try:
        betas = list(betas)
    except TypeError:
        raise ValueError(f"betas must be a list of numbers >= 0, got {betas!r}") from None
    if not betas:
        raise ValueError("betas must hold at least one beta >= 0, got an empty list")
    checked = []
    for beta in betas:
        try:
            checked.append(check_beta(beta))
        except (TypeError, ValueError):
            raise ValueError(f"betas must be finite numbers >= 0, got {beta!r} in {betas!r}") from None
    return checked


def check_batch(net, x, y):
    """(x as float64, y as int64) on the host, checked against ``net``'s input shape and classes."""
    x, y = np.asarray(to_numpy(x), dtype=np.float64), np.asarray(to_numpy(y))
    expected = getattr(net, "input_shape", None)
    if x.ndim != 4 or (expected is not None and tuple(x.shape[1:]) != tuple(expected)):
        want = f"(B, {', '.join(map(str, expected))})" if expected is not None else "(B, C, H, W)"
        raise ValueError(f"x must have shape {want} for net {_name(net)!r}, got {tuple(x.shape)}")
    if y.shape != (x.shape[0],) or not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"y must be {x.shape[0]} integer labels (shape ({x.shape[0]},)), got "
                         f"{y.dtype} of shape {tuple(y.shape)}")
    if len(y) < 1:
        raise ValueError("x must hold at least one example, got an empty batch")
    if getattr(net, "num_classes", None) is not None:
        check_labels(y, net.num_classes)
    return x, y.astype(np.int64)


def float64_copy(net):
    """A float64 NumPy copy of ``net`` with its weights, buffers, betas and codecs, caches empty.

    A registry network is rebuilt in float64 (its weights cast); any other net must already be
    float64 on the host and is deep-copied.
    """
    if isinstance(net, nets.Network):
        config = {k: v for k, v in net.config.items() if k not in ("beta", "storage")
                  and not (k == "fft_norm" and v is None)}
        config["dtype"] = np.float64
        copied = nets.build(config.pop("name"), beta=0.0, **config)
        for (_, source), (_, target) in zip(leaf_layers(net), leaf_layers(copied)):
            if getattr(source, "beta", None) is not None:
                target.beta = source.beta
            if "storage" in source.__dict__:
                target.storage = source.storage
        for source, target in zip(state_stores(net), state_stores(copied)):
            for key, value in source.items():
                target[key][...] = to_numpy(value)
        return copied
    params = net.parameters()
    if not all(isinstance(p, np.ndarray) and p.dtype == np.float64 for p in params.values()):
        raise ValueError(f"net {_name(net)!r} must be a specref.nets network or hold float64 NumPy "
                         "parameters (the audit runs in float64)")
    copied = copy.deepcopy(net)
    copied.clear_cache()
    return copied


def set_beta_and_storage(net, beta, storage):
    nets.set_beta(net, beta)
    set_storage(net, storage)


def compare(g, g0):
    """{parameter: {"relative_error", "cosine", "sign_agreement"}} of g against g0."""
    out = {}
    for name, ref in g0.items():
        got = g[name]
        norm0, norm = float(np.linalg.norm(ref)), float(np.linalg.norm(got))
        nonzero = ref != 0
        out[name] = {
            "relative_error": float(np.linalg.norm(got - ref)) / norm0 if norm0 else None,
            # a gradient that vanished where g0 does not agrees with it in nothing: cosine 0
            "cosine": (float(np.vdot(got, ref)) / (norm * norm0) if norm else 0.0) if norm0 else None,
            "sign_agreement": float(np.mean(np.sign(got[nonzero]) == np.sign(ref[nonzero])))
            if nonzero.any() else None,
        }
    return out


def summarize(params):
    """The worst parameter: largest relative error, smallest cosine and sign agreement."""
    def worst(key, pick):
        values = [(v[key], name) for name, v in params.items() if v[key] is not None]
        return pick(values) if values else (None, None)

    error, where = worst("relative_error", max)
    return {"max_relative_error": error, "worst_parameter": where if error else None,
            "min_cosine": worst("cosine", min)[0], "min_sign_agreement": worst("sign_agreement", min)[0]}


def gradient_check(net, x, y, rng, *, directions=2, eps=1e-6):
    """Finite-difference verdict of ``net``'s backward as it is set (float64): {"verdict":
    "pass" | "fail" | "inconclusive", "failed": [...], "too_close": [...], "max_error",
    "margins": {threshold: min ||Y| - beta|}, "params": {name: {"error", "eps", "status"}}}."""
    probe = _ThresholdProbe(net)
    with probe:
        loss, grads = _loss_and_grads(net, x, y)
        centre = probe.take()
        report = {}
        for name, p in net.parameters().items():
            report[name] = _check_parameter(net, x, y, p, grads[name], rng, directions, eps, probe, centre)
    net.clear_cache()
    failed = [name for name, r in report.items() if r["status"] == "fail"]
    close = [name for name, r in report.items() if r["status"] == "too_close"]
    errors = [r["error"] for r in report.values() if r["error"] is not None]
    return {"verdict": "fail" if failed else "inconclusive" if close else "pass", "failed": failed,
            "too_close": close, "max_error": max(errors) if errors else None, "loss": loss,
            "margins": {layer: float(np.min(np.abs(magnitude - beta))) if magnitude.size else None
                        for layer, (magnitude, beta) in centre.items()},
            "params": report}


def _check_parameter(net, x, y, p, grad, rng, directions, eps, probe, centre):
    """Worst error over ``directions`` random directions for parameter ``p``, in place and restored."""
    original = p.copy()
    worst = {"error": 0.0, "eps": eps, "status": "pass"}
    try:
        for _ in range(directions):
            t = rng.standard_normal(p.shape)
            for shrink in FD_SHRINK:
                step = eps * shrink
                p[...] = original + step * t
                plus, flips = _loss(net, x, y), probe.flips(centre)
                p[...] = original - step * t
                minus, flips = _loss(net, x, y), flips + probe.flips(centre)
                p[...] = original
                if not flips:
                    break
            if flips:
                return {"error": None, "eps": step, "status": "too_close", "layers": sorted(set(flips))}
            numeric, analytic = (plus - minus) / (2 * step), float(np.sum(grad * t))
            scale = max(abs(numeric), abs(analytic))
            error = abs(numeric - analytic) / scale if scale else 0.0
            allowed = FD_RTOL + FD_NOISE * max(1.0, abs(plus)) / (step * scale) if scale else math.inf
            if error > worst["error"] or error > allowed:
                worst = {"error": error, "eps": step, "status": "fail" if error > allowed else worst["status"]}
                if worst["status"] == "fail":
                    break
    finally:
        p[...] = original
    return worst


class _ThresholdProbe:
    """Records |Y| at every Threshold's input while active (instance-level forward wrappers)."""

    def __init__(self, net):
        self.layers = [(f"{name}:{type(layer).__name__}", layer) for name, layer in leaf_layers(net)
                       if getattr(layer, "beta", None) is not None]
        self.seen = {}

    def __enter__(self):
        for name, layer in self.layers:
            def recording(x, _name=name, _layer=layer, _forward=layer.forward):
                self.seen[_name] = (np.abs(x.values), _layer.beta)
                return _forward(x)
            layer.forward = recording
        return self

    def __exit__(self, *exc):
        for _, layer in self.layers:
            layer.__dict__.pop("forward", None)

    def take(self):
        seen, self.seen = self.seen, {}
        return seen

    def flips(self, centre):
        """Names of the thresholds whose mask differs from ``centre``'s in the last forward."""
        now = self.take()
        return [name for name, (magnitude, beta) in now.items()
                if np.any((magnitude > beta) != (centre[name][0] > beta))]


def _run(net, x, y, beta, storage):
    """(loss, {name: gradient copy}, {block: density}) of one step at ``beta`` with ``storage``."""
    set_beta_and_storage(net, beta, storage)
    criterion = SoftmaxCrossEntropy()
    loss = float(criterion.forward(net.forward(x), y))
    density = {name: d for name, _, d in block_densities(net)}
    net.backward(criterion.backward())
    grads = {name: np.array(g, dtype=np.float64) for name, g in net.gradients().items()}
    net.clear_cache()
    return loss, grads, density


def _loss_and_grads(net, x, y):
    criterion = SoftmaxCrossEntropy()
    loss = float(criterion.forward(net.forward(x), y))
    net.backward(criterion.backward())
    return loss, {name: np.array(g) for name, g in net.gradients().items()}


def _loss(net, x, y):
    loss = float(SoftmaxCrossEntropy().forward(net.forward(x), y))
    net.clear_cache()
    return loss


def _mean(values):
    values = [v for v in values if v is not None]
    return float(np.mean(values)) if values else None


def _count(value, name, minimum):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _name(net):
    return getattr(net, "name", None) or type(net).__name__


def summary(net, x, y, betas, threshold="forward", fd_directions=1, fd_batch=2):
    """The audit cut to what a training log keeps: per beta the worst relative error, the
    smallest cosine, the mean kept density and the finite-difference verdict."""
    result = audit(net, x, y, betas, threshold=threshold, fd_directions=fd_directions, fd_batch=fd_batch)
    return [{"beta": row["beta"], "max_relative_error": row["max_relative_error"],
             "min_cosine": row["min_cosine"], "density": row["density_mean"],
             "finite_difference": row["finite_difference"]["verdict"] if fd_directions else None}
            for row in result["betas"]]
