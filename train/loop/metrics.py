"""The one metric accumulator: sums plus counts in one vector on the device, normalized once
on the host.

A step's metrics are weighted means over its batch (``loss``, the model's metrics) plus its
``count`` (real rows), and, on the steps that measure them, the global norms, the learning
rate and the NaN guard's ``nonfinite`` flag (``train.loop.step.make_train_step``).
Accumulating ``mean * count`` and dividing by the summed count once per epoch gives exact
epoch means however the last batch is padded.

The sums live in one ``<f32>[size]`` vector laid out by a :class:`Layout`, so adding a step is
one small fused kernel whatever the number of metrics (on XLA CPU and GPU every separate
scalar add inside a scanned step is a kernel of its own). The same accumulator serves ``fit``'s
epochs, its evaluation passes and the vmapped trainer (``train.experiments``), vmapped there
over trials::

    acc = {'sums': <f32>[layout.size], 'learning_rate': <f32>[] (when the step reports one)}
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping

import jax
import jax.numpy as jnp
import numpy as np

from train.loop.step import NORM_KEYS, SPECIAL_KEYS

_TALLIES = ("count", "steps", "skipped", "norm_steps")


@dataclasses.dataclass(frozen=True)
class Layout:
    """Where each accumulated quantity sits in the vector ``acc['sums']``.

    Attributes:
        means: names of the weighted means (summed as ``mean * count``).
        norms: names of the global norms (summed over the steps that measure them).
        learning_rate: whether the step reports its learning rate (kept, not summed).
    """

    means: tuple
    norms: tuple = ()
    learning_rate: bool = False

    @classmethod
    def of(cls, metric_names, *, norms: bool | None = None) -> Layout:
        """The layout for a step whose metrics have ``metric_names``; ``norms=True`` keeps
        slots for the norms even when these names lack them (steps that measure them only
        now and then), ``False`` drops them."""
        names = tuple(metric_names)
        has_norms = any(k in names for k in NORM_KEYS) if norms is None else norms
        # sorted: the same layout whether the names come from a dict as built or from
        # jax.eval_shape (whose dicts come back in key order)
        return cls(means=tuple(sorted(k for k in names if k not in SPECIAL_KEYS)),
                   norms=NORM_KEYS if has_norms else (),
                   learning_rate="learning_rate" in names)

    @property
    def names(self) -> tuple:
        return (*self.means, *_TALLIES, *self.norms)

    @property
    def size(self) -> int:
        return len(self.names)

    def index(self, name: str) -> int:
        return self.names.index(name)


def init(layout: Layout) -> dict:
    """A zero accumulator."""
    acc = {"sums": jnp.zeros((layout.size,), jnp.float32)}
    if layout.learning_rate:
        acc["learning_rate"] = jnp.zeros((), jnp.float32)
    return acc


def row(layout: Layout, m: Mapping) -> jax.Array:
    """One step's contribution ``<f32>[size]``: ``mean * count`` for each mean, ``count``,
    one step, the norms when ``m`` has them (and one ``norm_steps``). A step the NaN guard did
    not apply (``m['nonfinite']``) adds only one ``skipped``: its loss, norms and rows stay
    out of the means (a ``where``, not a product: NaN * 0 is NaN)."""
    count = jnp.asarray(m["count"], jnp.float32)
    measured = all(k in m for k in layout.norms)
    zero, one = jnp.zeros((), jnp.float32), jnp.ones((), jnp.float32)
    parts = [jnp.asarray(m[k], jnp.float32) * count for k in layout.means]
    parts += [count, one, zero, one if (measured and layout.norms) else zero]
    parts += [jnp.asarray(m[k], jnp.float32) if measured else zero for k in layout.norms]
    r = jnp.stack(parts)
    if "nonfinite" in m:
        skipped = jnp.zeros_like(r).at[layout.index("skipped")].set(1.0)
        r = jnp.where(m["nonfinite"] > 0, skipped, r)
    return r


def add(acc: dict, m: Mapping, layout: Layout) -> dict:
    """``acc`` plus one step's metrics ``m`` (see :func:`row`)."""
    new = {"sums": acc["sums"] + row(layout, m)}
    if layout.learning_rate:
        new["learning_rate"] = (jnp.asarray(m["learning_rate"], jnp.float32)
                                if "learning_rate" in m else acc["learning_rate"])
    return new


def add_norms(acc: dict, norms: Mapping, layout: Layout, applied=1.0) -> dict:
    """``acc`` plus norms measured once (``{'grad_norm', 'param_norm', 'update_norm'}``) and one
    ``norm_steps``; nothing when ``applied`` is 0 (a step the NaN guard skipped)."""
    r = jnp.zeros((layout.size,), jnp.float32).at[layout.index("norm_steps")].set(1.0)
    for k in layout.norms:
        r = r.at[layout.index(k)].set(jnp.asarray(norms[k], jnp.float32))
    return {**acc, "sums": acc["sums"] + jnp.where(applied > 0, r, jnp.zeros_like(r))}


def to_host(tree):
    """``tree`` with every array copied to a NumPy array (``jax.device_get``'s result, at a
    quarter of its fixed cost: about 5 against 20 microseconds an array here, paid every
    epoch)."""
    return jax.tree.map(np.asarray, tree)


def finite(acc: dict, layout: Layout) -> jax.Array:
    """``<bool>[]``: every summed mean (the loss among them) is finite. (The norms are left
    out: finite gradients of 1e20 have an infinite squared norm, and such a step is applied.)"""
    return jnp.all(jnp.isfinite(acc["sums"][: len(layout.means)]))


def normalize(acc: Mapping, layout: Layout, prefix: str = "") -> dict:
    """Epoch means as Python floats: sums / count, norms / the steps that measured them, the
    last learning rate, ``skipped_steps`` when a step was skipped, ``norm_steps`` when the
    norms were measured on fewer steps than the epoch ran, and ``count``; every key gets
    ``prefix``."""
    acc = to_host(acc)
    sums = acc["sums"].tolist()
    value = dict(zip(layout.names, sums, strict=True))
    count, steps = value["count"], value["steps"]
    out = {prefix + k: value[k] / count if count else math.nan for k in layout.means}
    if layout.norms:
        n = value["norm_steps"]
        for k in layout.norms:
            out[prefix + k] = value[k] / n if n else math.nan
        if n != steps:
            out[prefix + "norm_steps"] = int(n)
    if layout.learning_rate:
        out[prefix + "learning_rate"] = float(acc["learning_rate"])
    if value["skipped"]:
        out[prefix + "skipped_steps"] = int(value["skipped"])
    out[prefix + "count"] = count
    return out


def to_json(acc_host: Mapping) -> dict:
    """Host accumulator -> JSON (float32 values survive the float64 round trip exactly)."""
    return jax.tree.map(lambda x: x.tolist(), dict(acc_host))


def from_json(template: Mapping, saved: Mapping) -> dict:
    """The inverse of :func:`to_json`, with ``template``'s dtypes and shapes."""
    return jax.tree.map(lambda t, v: jnp.asarray(v, t.dtype).reshape(t.shape), template,
                        dict(saved))


def log_keys(layout: Layout, eval_names=()) -> set:
    """Every key an epoch's logs can hold, given the step's layout and the evaluation's
    metric names (``skipped_steps`` and ``norm_steps`` appear only in some epochs: not keys
    to monitor)."""
    keys = {"epoch", "step", "count", *layout.means, *layout.norms}
    if layout.learning_rate:
        keys.add("learning_rate")
    keys |= {"val_" + k for k in eval_names}
    return keys
