"""The one metric accumulator: sums plus counts on the device, normalized once on the host.

A step's metrics are weighted means over its batch (``loss``, the model's metrics) plus its
``count`` (real rows), the global norms, the learning rate and the NaN guard's flags
(``train.loop.step.make_train_step``). Accumulating ``mean * count`` and dividing by the summed
count once per epoch gives exact epoch means however the last batch is padded. The same
accumulator serves ``fit``'s epochs, its evaluation passes and the seed-vmapped trainer
(``train.experiments``), vmapped there over seeds.

Layout of an accumulator (a pytree of ``<f32>[]``/``<i32>[]`` scalars)::

    {'sums': {name: sum of mean * count}, 'norms': {norm: sum over steps},
     'count': rows, 'steps': steps, 'skipped': steps the guard did not apply,
     'bad_step': first non-finite step (-1), 'bad_leaf': its leaf index (-1),
     ['learning_rate': the last step's rate]}
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping

import jax
import jax.numpy as jnp

from train.loop.step import NORM_KEYS, SPECIAL_KEYS


def init(metric_names) -> dict:
    """A zero accumulator for a step whose metrics have the names ``metric_names``."""
    z = lambda: jnp.zeros((), jnp.float32)
    acc = {"sums": {k: z() for k in metric_names if k not in SPECIAL_KEYS},
           "norms": {k: z() for k in NORM_KEYS if k in metric_names},
           "count": z(), "steps": z(), "skipped": z(),
           "bad_step": jnp.full((), -1, jnp.int32), "bad_leaf": jnp.full((), -1, jnp.int32)}
    if "learning_rate" in metric_names:
        acc["learning_rate"] = z()
    return acc


@functools.lru_cache(maxsize=64)
def zeros_maker(metric_names: tuple) -> Callable:
    """A jitted maker of :func:`init`'s zeros: one dispatch instead of one per field (eager
    ``jnp.zeros`` calls cost about 100 microseconds each, a millisecond per epoch)."""
    return jax.jit(lambda: init(metric_names))


def skip_aware_add(nonfinite) -> Callable:
    """``add(total, x)`` for metric sums: ``total + x``, or, given a step's ``nonfinite`` flag
    (1.0 when the NaN guard did not apply the step), ``total`` unchanged for such a step, so
    its loss, norms and rows stay out of the epoch's means. (A ``where``, not a product:
    NaN * 0 is NaN.)"""
    if nonfinite is None:
        return lambda total, x: total + x
    return lambda total, x: jnp.where(nonfinite > 0, total, total + x)


def add(acc: dict, m: Mapping, step=None) -> dict:
    """Add one step's metrics ``m``; ``step`` is the global index of the step they came from
    (recorded as ``bad_step`` for the first step whose ``nonfinite_leaf`` is set).

    A step the NaN guard did not apply (``nonfinite``) only counts as skipped: its loss,
    norms and rows stay out of the sums, so one skipped step leaves the epoch's means finite.
    """
    plus = skip_aware_add(m.get("nonfinite"))
    count = m["count"]
    new = {"sums": {k: plus(acc["sums"][k], m[k] * count) for k in acc["sums"]},
           "norms": {k: plus(acc["norms"][k], m[k]) for k in acc["norms"]},
           "count": plus(acc["count"], count), "steps": plus(acc["steps"], 1.0),
           "skipped": acc["skipped"] + m.get("nonfinite", 0.0),
           "bad_step": acc["bad_step"], "bad_leaf": acc["bad_leaf"]}
    if "learning_rate" in acc:
        new["learning_rate"] = m["learning_rate"]
    if "nonfinite_leaf" in m:
        first = (acc["bad_step"] < 0) & (m["nonfinite_leaf"] >= 0)
        new["bad_step"] = jnp.where(first, step, acc["bad_step"]).astype(jnp.int32)
        new["bad_leaf"] = jnp.where(first, m["nonfinite_leaf"], acc["bad_leaf"])
    return new


def normalize(acc: Mapping, prefix: str = "") -> dict:
    """Epoch means as Python floats: sums / count, norms / steps, the last learning rate,
    ``skipped_steps`` when a step was skipped, and ``count``; every key gets ``prefix``."""
    acc = jax.device_get(acc)
    count = float(acc["count"])
    out = {prefix + k: float(v) / count if count else math.nan for k, v in acc["sums"].items()}
    steps = float(acc.get("steps", 0.0))
    for k, v in acc.get("norms", {}).items():
        out[prefix + k] = float(v) / steps if steps else math.nan
    if "learning_rate" in acc:
        out[prefix + "learning_rate"] = float(acc["learning_rate"])
    if "skipped" in acc and float(acc["skipped"]):
        out[prefix + "skipped_steps"] = int(acc["skipped"])
    out[prefix + "count"] = count
    return out


def to_json(acc_host: Mapping) -> dict:
    """Host accumulator -> JSON (float32 values survive the float64 round trip exactly)."""
    return jax.tree.map(lambda x: x.item(), acc_host)


def from_json(template: Mapping, saved: Mapping) -> dict:
    """The inverse of :func:`to_json`, with ``template``'s dtypes."""
    return jax.tree.map(lambda t, v: jnp.asarray(v, t.dtype), template, saved)


def log_keys(metric_names, eval_names=()) -> set:
    """Every key an epoch's logs can hold, given the step's and the evaluation's metrics."""
    keys = {"epoch", "step", "count"}
    keys |= {k for k in metric_names if k not in SPECIAL_KEYS}
    keys |= {k for k in NORM_KEYS if k in metric_names}
    if "learning_rate" in metric_names:
        keys.add("learning_rate")
    # (skipped_steps is logged only for epochs that skipped a step: not one to monitor)
    keys |= {"val_" + k for k in eval_names}
    return keys
