"""The train loop: a pure train step, jitted epochs, and ``fit``.

Layout follows the Flax examples (``train_step(state, batch) -> (state, metrics)``, a train
state pytree, metrics as sums plus a count normalized once per epoch) without their
decorators: every function here is plain JAX, and ``fit`` does the jitting.

A ``loss_fn`` has the contract of ``docs/architecture.md``::

    loss_fn(params, model_state, batch, key) -> (loss, (model_state, metrics))

where ``batch`` is a dict of arrays with a leading batch axis (``{'x': ..., 'y': ...}`` and
optionally ``'weight': <f32>[batch]``, 0 for padding rows), ``loss`` is the weighted mean over
the batch and ``metrics`` a dict of weighted-mean scalars.

Regimes (seed note 004, "batch / stochastic / mini-batch gradient descent"): ``batch_size=None``
is full-batch gradient descent, ``1`` is stochastic gradient descent and ``k`` is mini-batch
gradient descent. Each epoch visits the training set in an order drawn from
``epoch_rng(data_key, epoch)``, so a run is a pure function of its key (and a resumed run
continues exactly).

Two ways to run an epoch over data held on the device give bitwise the same result on CPU:

- ``'scan'``: the whole epoch is one jitted ``lax.scan`` over batch indices, gathering each
  batch inside; no Python per step. This removes dispatch cost, which dominates small models.
- ``'loop'``: a Python loop calls the same jitted step body once per batch.

Which is faster depends on the model: on the project's CPU an MLP ran about 1.9x faster in a
scan while a small CNN ran about 4x slower (``/work/shared/perf-notes.md``). The cause: XLA's
CPU backend runs a convolution with its fast Eigen kernel only in the canonical layout (input
``N...C``, kernel ``...IO``), and its ConvCanonicalization pass, which transposes other layouts
into that one, visits only the entry computation. The backward convolutions ``jax.grad`` emits
(``b0f_0oi``, ``f0b_i0o``) therefore stay non-canonical inside a ``while`` body (``lax.scan``)
and run as a generic loop nest; ``unroll`` does not help because the body stays a loop body.
Writing the convolution's VJP with explicitly canonical backward convolutions (or as
im2col + dot) makes the scanned CNN faster than the loop; see
``benchmarks/bench_conv_in_scan.py``. ``fast_path='auto'`` measures instead of assuming: the
first epoch runs the loop, the second the scan (compiled ahead, timed alone; timed once more
when it loses, since a first execution carries one-time costs), and the faster is kept.
Streaming data (an iterable or a callable returning batches) always uses the loop.

Compiled steps are reused across ``fit`` calls that pass the same ``loss_fn`` and optimizer
objects (a small LRU), so repeated runs over seeds, or a resume, do not recompile.
"""

from __future__ import annotations

import collections
import functools
import math
import os
import time
import warnings
from collections.abc import Callable, Iterable, Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from train import sharding as shd
from train.manifest import json_line

NAN_POLICIES = ("stop", "skip", None)
FAST_PATHS = ("auto", "scan", "loop")
NORM_KEYS = ("grad_norm", "param_norm", "update_norm")
# Keys of a step's metrics that are not weighted means of the batch.
_SPECIAL_KEYS = ("count", "learning_rate", "nonfinite", "nonfinite_leaf", *NORM_KEYS)


class TrainState(NamedTuple):
    """Everything a training run carries from step to step (a pytree).

    Attributes:
        params: the model's parameters (nested dicts of arrays).
        opt_state: the optimizer's state (``optimizer.init(params)``).
        model_state: state updated outside gradients, e.g. batch-norm statistics (``{}`` if
            none).
        step: ``<i32>[]``, the number of steps taken (skipped non-finite steps included).
        key: ``<u32>[2]``, the run's raw PRNG key; step ``t`` uses ``fold_in(key, t)``.
    """

    params: Any
    opt_state: Any
    model_state: Any
    step: jax.Array
    key: jax.Array


class FitResult(NamedTuple):
    """What ``fit`` returns.

    Attributes:
        state: the final ``TrainState``.
        history: one dict per epoch (``epoch``, ``step``, epoch-mean training metrics,
            ``val_``-prefixed evaluation metrics). Deterministic: no timings in it.
        timings: one dict per epoch run in this call (``epoch``, ``seconds``, ``path``), and
            the ``fast_path='auto'`` measurement if one was made.
    """

    state: TrainState
    history: list
    timings: list


class NonFiniteError(FloatingPointError):
    """Raised by ``fit`` under ``nan_policy='stop'`` when a step produced NaN or Inf.

    Attributes:
        step: the global step index whose update was non-finite.
        leaf: the first non-finite leaf: ``'loss'``, ``'grads[...]'``, ``'params[...]'`` or
            ``'model_state[...]'`` (paths as ``jax.tree_util.keystr`` writes them).
        state: the last finite ``TrainState`` (the update of ``step`` was not applied).
    """

    def __init__(self, message: str, *, step: int, leaf: str, state: TrainState | None = None):
        super().__init__(message)
        self.step, self.leaf, self.state = step, leaf, state


# ---------------------------------------------------------------------------------------------
# State and steps


class ResumeMismatchError(ValueError):
    """``fit(resume=True)`` met a checkpoint written with other data settings (rows,
    batch_size, shuffle, drop_last, data key); continuing would silently mix two runs."""


def _as_raw_key(key, where: str) -> jax.Array:
    """Accept an int seed, a typed key or a raw ``<u32>[2]`` key; return the raw key."""
    if isinstance(key, (int, np.integer)):
        return jax.random.PRNGKey(int(key))
    if not hasattr(key, "dtype"):
        raise TypeError(f"{where}: key must be a jax PRNG key or an int seed, "
                        f"got {type(key).__name__}")
    if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        key = jax.random.key_data(key)
    if key.dtype != jnp.uint32 or key.shape != (2,):
        raise ValueError(f"{where}: expected a raw key <u32>[2] (jax.random.PRNGKey) or a typed "
                         f"key, got {key.dtype}{list(key.shape)}")
    return jnp.asarray(key)


def init_train_state(params, optimizer: optax.GradientTransformation, *, key,
                     model_state=None) -> TrainState:
    """Build the initial ``TrainState``.

    Args:
        params: the model's initial parameters.
        optimizer: any optax-compatible ``GradientTransformation`` (``init``/``update``).
        key: the run's PRNG key (raw, typed, or an int seed); per-step keys derive from it.
        model_state: state outside gradients (batch-norm statistics); ``{}`` when ``None``.

    Returns:
        ``TrainState(params, optimizer.init(params), model_state, step=0, key)``.
    """
    if not (hasattr(optimizer, "init") and hasattr(optimizer, "update")):
        raise TypeError("init_train_state: optimizer must be an optax GradientTransformation "
                        f"(with init and update), got {type(optimizer).__name__}")
    return TrainState(params=params, opt_state=optimizer.init(params),
                      model_state={} if model_state is None else model_state,
                      step=jnp.zeros((), jnp.int32), key=_as_raw_key(key, "init_train_state"))


def _inexact_leaves(tree) -> list:
    return [x for x in jax.tree.leaves(tree) if jnp.issubdtype(jnp.result_type(x), jnp.inexact)]


def _inexact_paths(tree, prefix: str) -> list[str]:
    flat = jax.tree_util.tree_flatten_with_path(tree)[0]
    return [prefix + jax.tree_util.keystr(p) for p, x in flat
            if jnp.issubdtype(jnp.result_type(x), jnp.inexact)]


def nonfinite_leaf_names(state: TrainState) -> list[str]:
    """Names of the leaves the NaN guard checks, in the order of ``metrics['nonfinite_leaf']``.

    Args:
        state: a ``TrainState`` (only the structure of params and model state is used).

    Returns:
        ``['loss', 'grads[...]', ..., 'params[...]', ..., 'model_state[...]', ...]``.
    """
    return (["loss"] + _inexact_paths(state.params, "grads")
            + _inexact_paths(state.params, "params")
            + _inexact_paths(state.model_state, "model_state"))


# Leaves smaller than this are concatenated and reduced together: inside a scanned epoch on
# XLA CPU every reduction is a kernel of its own, and for the MNIST-1D MLP the per-leaf norms
# cost 35 microseconds a step against 8 for the concatenated ones. Large leaves are reduced one
# by one: concatenating a 10M-parameter tree took 25 ms against 1.8 ms leaf by leaf (both
# measured by hand on the 2-core CPU; bench_loop.py shows the effect on whole epochs).
_CONCAT_BELOW = 1 << 16


def _sum_squares(tree) -> jax.Array:
    """``<f32>[]``: the sum of squares of all inexact leaves, NaN iff some element is NaN/Inf.

    Each element contributes ``x * x + x * 0``: ``x * 0`` is ``+-0`` for finite ``x`` (so the
    value is the plain sum of squares) and NaN for Inf or NaN, so one reduction answers both
    "how large" and "is everything finite". A float32 overflow of finite values gives ``+inf``,
    never NaN.
    """
    leaves = [x.astype(jnp.float32) for x in _inexact_leaves(tree)]
    small = [x.ravel() for x in leaves if x.size < _CONCAT_BELOW]
    parts = [x for x in leaves if x.size >= _CONCAT_BELOW]
    if small:
        parts.append(jnp.concatenate(small) if len(small) > 1 else small[0])
    if not parts:
        return jnp.zeros((), jnp.float32)
    return sum(jnp.sum(x * x + x * 0) for x in parts)


def global_norm(tree) -> jax.Array:
    """``<f32>[]``: the L2 norm of all leaves of ``tree`` taken together (NaN if any is NaN/Inf)."""
    return jnp.sqrt(_sum_squares(tree))


def _weight_sum(batch) -> jax.Array:
    if "weight" in batch:
        return jnp.sum(batch["weight"]).astype(jnp.float32)
    return jnp.asarray(jax.tree.leaves(batch)[0].shape[0], jnp.float32)


def find_learning_rate(opt_state, new_opt_state=None):
    """The learning rate an update applied, read from optimizer states, or ``None``.

    Two conventions are recognized:

    - optax keeps hyperparameters in the state only under ``optax.inject_hyperparams``; its
      ``hyperparams['learning_rate']`` in the state *after* an update is the rate that update
      used (read from ``new_opt_state`` when given);
    - ``functional.optim`` keeps ``ScaleByLearningRateState.learning_rate``, the rate the
      *next* update applies, so it is read from the state *before* the update
      (``opt_state``).

    Args:
        opt_state: the optimizer state before the update.
        new_opt_state: the state after it (optional).

    Returns:
        ``<f32>[]`` or ``None`` when neither state exposes a learning rate.
    """
    def search(tree, hyper: bool):
        for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
            names = [getattr(k, "key", getattr(k, "name", None)) for k in path]
            if not names or names[-1] != "learning_rate":
                continue
            if hyper == (len(names) >= 2 and names[-2] == "hyperparams"):
                return jnp.asarray(leaf, jnp.float32)
        return None

    lr = search(opt_state if new_opt_state is None else new_opt_state, True)
    return lr if lr is not None else search(opt_state, False)


def make_train_step(loss_fn: Callable, optimizer: optax.GradientTransformation, *,
                    nan_policy: str | None = "stop") -> Callable:
    """Make the pure, undecorated ``train_step(state, batch) -> (state, metrics)``.

    The step's key is ``fold_in(state.key, state.step)``. Metrics (all scalars):

    - ``loss`` and the model's own metrics (weighted means over the batch),
    - ``count``: the batch's weight sum (number of real rows), so callers can form sums,
    - ``grad_norm``, ``param_norm`` (after the update), ``update_norm``: global L2 norms,
    - ``learning_rate`` when the optimizer state exposes one (``optax.inject_hyperparams``),
    - with a NaN policy: ``nonfinite`` (1.0 if this step was not applied) and
      ``nonfinite_leaf`` (``<i32>``, index into ``nonfinite_leaf_names(state)``, -1 if finite).

    NaN guard (inside the step, no host sync): if the loss, any gradient, any updated parameter
    or any model-state leaf is NaN/Inf, the step keeps the old params, optimizer and model
    state and only advances ``step`` (policy ``'skip'``; ``fit`` stops at the epoch's end for
    ``'stop'``). ``nan_policy=None`` applies every update unchecked.

    Args:
        loss_fn: ``loss_fn(params, model_state, batch, key) -> (loss, (model_state, metrics))``.
        optimizer: any optax-compatible ``GradientTransformation``.
        nan_policy: ``'stop'``, ``'skip'`` or ``None``.

    Returns:
        ``train_step(state, batch) -> (TrainState, dict[str, scalar])``.
    """
    if nan_policy not in NAN_POLICIES:
        raise ValueError(f"make_train_step: nan_policy must be one of {NAN_POLICIES}, "
                         f"got {nan_policy!r}")
    if not callable(loss_fn):
        raise TypeError(f"make_train_step: loss_fn must be callable, got {type(loss_fn).__name__}")
    grad_fn = jax.value_and_grad(loss_fn, has_aux=True)

    def train_step(state: TrainState, batch) -> tuple[TrainState, dict]:
        key = jax.random.fold_in(state.key, state.step)
        (loss, (model_state, metrics)), grads = grad_fn(state.params, state.model_state,
                                                        batch, key)
        updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        out = {k: jnp.asarray(v, jnp.float32) for k, v in dict(metrics).items()}
        out["loss"] = jnp.asarray(loss, jnp.float32)
        out["count"] = _weight_sum(batch)
        grad_sq, param_sq = _sum_squares(grads), _sum_squares(params)
        out["grad_norm"] = jnp.sqrt(grad_sq)
        out["param_norm"] = jnp.sqrt(param_sq)
        out["update_norm"] = global_norm(updates)
        lr = find_learning_rate(state.opt_state, opt_state)
        if lr is not None:
            out["learning_rate"] = lr
        new = TrainState(params, opt_state, model_state, state.step + 1, state.key)
        if nan_policy is None:
            return new, out
        # One NaN test per tree (the sums of squares are NaN iff an element is NaN/Inf); the
        # per-leaf search that names the culprit runs only on a bad step.
        ok = ~(jnp.isnan(grad_sq) | jnp.isnan(param_sq) | jnp.isnan(_sum_squares(model_state))
               | ~jnp.isfinite(loss))

        def first_bad_leaf():
            flags = [jnp.isfinite(loss)]
            flags += [jnp.all(jnp.isfinite(x)) for x in _inexact_leaves((grads, params,
                                                                         model_state))]
            return jnp.argmin(jnp.stack(flags)).astype(jnp.int32)

        keep = lambda a, b: jax.tree.map(lambda x, y: jnp.where(ok, x, y), a, b)
        new = TrainState(keep(params, state.params), keep(opt_state, state.opt_state),
                         keep(model_state, state.model_state), state.step + 1, state.key)
        out["nonfinite"] = 1.0 - ok.astype(jnp.float32)
        out["nonfinite_leaf"] = jax.lax.cond(ok, lambda: jnp.int32(-1), first_bad_leaf)
        return new, out

    return train_step


def make_eval_step(loss_fn: Callable) -> Callable:
    """Make the pure ``eval_step(state, batch) -> metrics``.

    Args:
        loss_fn: same contract as for ``make_train_step`` (typically the model's loss with
            ``train=False`` bound). Its key is ``fold_in(state.key, state.step)``; the model
            state it returns is discarded.

    Returns:
        ``eval_step(state, batch) -> {'loss', <model metrics>, 'count'}`` (weighted means plus
        the batch's weight sum).
    """
    if not callable(loss_fn):
        raise TypeError(f"make_eval_step: loss_fn must be callable, got {type(loss_fn).__name__}")

    def eval_step(state: TrainState, batch) -> dict:
        key = jax.random.fold_in(state.key, state.step)
        loss, (_, metrics) = loss_fn(state.params, state.model_state, batch, key)
        out = {k: jnp.asarray(v, jnp.float32) for k, v in dict(metrics).items()}
        out["loss"] = jnp.asarray(loss, jnp.float32)
        out["count"] = _weight_sum(batch)
        return out

    return eval_step


# ---------------------------------------------------------------------------------------------
# Metric accumulators: sums plus counts on the device, normalized once per epoch on the host.


def _acc_init(metric_shapes: Mapping) -> dict:
    z = lambda: jnp.zeros((), jnp.float32)
    acc = {"sums": {k: z() for k in metric_shapes if k not in _SPECIAL_KEYS},
           "norms": {k: z() for k in NORM_KEYS if k in metric_shapes},
           "count": z(), "steps": z(), "skipped": z(),
           "bad_step": jnp.full((), -1, jnp.int32), "bad_leaf": jnp.full((), -1, jnp.int32)}
    if "learning_rate" in metric_shapes:
        acc["learning_rate"] = z()
    return acc


@functools.lru_cache(maxsize=64)
def _acc_zeros(metric_names: tuple) -> Callable:
    """A jitted maker of ``_acc_init``'s zeros: one dispatch instead of one per field (eager
    ``jnp.zeros`` calls cost about 100 microseconds each, a millisecond per epoch)."""
    return jax.jit(lambda: _acc_init(dict.fromkeys(metric_names)))


def skip_aware_add(nonfinite) -> Callable:
    """``add(total, x)`` for metric sums: ``total + x``, or, given a step's ``nonfinite`` flag
    (1.0 when the NaN guard did not apply the step), ``total`` unchanged for such a step, so
    its loss, norms and rows stay out of the epoch's means. (A ``where``, not a product:
    NaN * 0 is NaN.) Shared by ``fit`` and ``train.experiments.train_seeds_vmapped``."""
    if nonfinite is None:
        return lambda total, x: total + x
    return lambda total, x: jnp.where(nonfinite > 0, total, total + x)


def _acc_add(acc: dict, m: Mapping, step) -> dict:
    """Add one step's metrics; ``step`` is the global index of the step they came from.

    A step the NaN guard did not apply (``nonfinite``) only counts as skipped: its loss,
    norms and rows stay out of the sums, so one skipped step leaves the epoch's means finite.
    """
    add = skip_aware_add(m.get("nonfinite"))
    count = m["count"]
    new = {"sums": {k: add(acc["sums"][k], m[k] * count) for k in acc["sums"]},
           "norms": {k: add(acc["norms"][k], m[k]) for k in acc["norms"]},
           "count": add(acc["count"], count), "steps": add(acc["steps"], 1.0),
           "skipped": acc["skipped"] + m.get("nonfinite", 0.0),
           "bad_step": acc["bad_step"], "bad_leaf": acc["bad_leaf"]}
    if "learning_rate" in acc:
        new["learning_rate"] = m["learning_rate"]
    if "nonfinite_leaf" in m:
        first = (acc["bad_step"] < 0) & (m["nonfinite_leaf"] >= 0)
        new["bad_step"] = jnp.where(first, step, acc["bad_step"]).astype(jnp.int32)
        new["bad_leaf"] = jnp.where(first, m["nonfinite_leaf"], acc["bad_leaf"])
    return new


def _acc_to_json(acc_host: Mapping) -> dict:
    """Host accumulator -> JSON (float32 values survive the float64 round trip exactly)."""
    return jax.tree.map(lambda x: x.item(), acc_host)


def _acc_from_json(template: Mapping, saved: Mapping) -> dict:
    return jax.tree.map(lambda t, v: jnp.asarray(v, t.dtype), template, saved)


def _acc_normalize(acc: Mapping, prefix: str = "") -> dict:
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


# ---------------------------------------------------------------------------------------------
# Epoch plans: which examples form which batch.


def epoch_rng(data_key, epoch: int) -> np.random.Generator:
    """The NumPy generator that orders epoch ``epoch``: PCG64 seeded with the words of the raw
    key ``data_key`` and the epoch index.

    Drawn on the host because ``jax.random.permutation`` of 4,000 indices costs about 2 ms on
    this CPU (a comparator sort), as much as a whole scanned epoch of a small model; NumPy's
    takes about 50 microseconds. Same key and epoch give the same generator on every platform.
    """
    words = np.asarray(jax.device_get(data_key)).astype(np.uint32).ravel()
    return np.random.default_rng(np.random.SeedSequence([*map(int, words), int(epoch)]))


def epoch_plan(n: int, batch_size: int | None, *, epoch: int, data_key, shuffle: bool = True,
               drop_last: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
    """Batch indices and row weights of one epoch.

    Args:
        n: number of training examples.
        batch_size: ``None`` for the full batch (in dataset order), else examples per batch.
        epoch: the epoch index; the order is ``epoch_rng(data_key, epoch).permutation(n)``.
        data_key: raw PRNG key of the data order.
        shuffle: whether mini-batch epochs are shuffled; ``'replacement'`` draws every batch
            uniformly with replacement (``ceil(n / batch)`` full batches, or ``n // batch``
            with ``drop_last``), as the Flax examples and the MNIST-1D paper's code sample.
        drop_last: drop the last partial batch instead of padding it.

    Returns:
        ``(idx, weight)``: ``idx`` ``<i32>[n_batches, batch]`` and ``weight``
        ``<f32>[n_batches, batch]`` (1 for real rows, 0 for padding rows pointing at example 0),
        or ``None`` when no batch is padded.
    """
    if batch_size is None:
        return np.arange(n, dtype=np.int32)[None], None
    if shuffle == "replacement":
        nb = n // batch_size if drop_last else -(-n // batch_size)
        if nb == 0:
            raise ValueError(f"fit: drop_last=True with batch_size={batch_size} > {n} examples "
                             "leaves no batch")
        return epoch_rng(data_key, epoch).integers(0, n, (nb, batch_size)).astype(np.int32), None
    order = epoch_rng(data_key, epoch).permutation(n) if shuffle else np.arange(n)
    order = order.astype(np.int32)
    if drop_last:
        nb = n // batch_size
        if nb == 0:
            raise ValueError(f"fit: drop_last=True with batch_size={batch_size} > {n} examples "
                             "leaves no batch")
        return order[: nb * batch_size].reshape(nb, batch_size), None
    nb = -(-n // batch_size)
    pad = nb * batch_size - n
    if pad == 0:
        return order.reshape(nb, batch_size), None
    idx = np.concatenate([order, np.zeros(pad, np.int32)]).reshape(nb, batch_size)
    w = np.concatenate([np.ones(n, np.float32), np.zeros(pad, np.float32)])
    return idx, w.reshape(nb, batch_size)


def _gather(data: Mapping, idx, w):
    batch = {k: v[idx] for k, v in data.items()}
    if w is not None:
        batch["weight"] = batch["weight"] * w if "weight" in batch else w
    return batch


class _Runner:
    """Jitted step, scanned-chunk and streamed-step functions for one (train_step, mesh,
    policy); ``fit`` keeps them in an LRU so repeated runs reuse the executables."""

    def __init__(self, train_step, mesh, policy):
        self.mesh, self.policy = mesh, policy
        self.compiled_scan = {}   # chunk length -> AOT-compiled scanned chunk

        def body(state, acc, batch):
            batch = shd.constrain_batch(batch, mesh)
            new, m = train_step(state, batch)
            acc = _acc_add(acc, m, state.step)
            if policy == "stop":   # freeze everything after the first non-finite step
                stopped = acc["bad_step"] >= 0
                new = jax.tree.map(lambda a, b: jnp.where(stopped, a, b), state, new)
            return new, acc

        def step_at(state, acc, data, idx, w, b):
            return body(state, acc, _gather(data, idx[b], None if w is None else w[b]))

        def scan_epoch(state, acc, data, idx, w):
            def f(carry, xs):
                i, wi = xs
                return body(*carry, _gather(data, i, wi)), None
            return jax.lax.scan(f, (state, acc), (idx, w))[0]

        self.step_at = jax.jit(step_at, donate_argnums=(0, 1))
        self.scan_epoch = jax.jit(scan_epoch, donate_argnums=(0, 1))
        self.stream_step = jax.jit(body, donate_argnums=(0, 1))

    def loop(self, state, acc, data, idx, w, *, timed=False):
        """Per-step loop over device data; with ``timed`` also seconds/step after step 0."""
        t = None
        for b in range(idx.shape[0]):
            state, acc = self.step_at(state, acc, data, idx, w, np.int32(b))
            if timed and b == 0:
                jax.block_until_ready(acc)
                t = time.perf_counter()
        per = None
        if timed and idx.shape[0] > 1:
            jax.block_until_ready(acc)
            per = (time.perf_counter() - t) / (idx.shape[0] - 1)
        return state, acc, per

    @staticmethod
    def _signature(*args):
        leaves, treedef = jax.tree.flatten(args)
        return treedef, tuple((np.shape(x), str(x.dtype)) for x in leaves)

    def compile_scan(self, state, acc, data, idx, w):
        """Compile the scan over ``idx.shape[0]`` batches ahead of time (so 'auto' can time
        its execution alone); one executable per argument signature."""
        sig = self._signature(state, acc, data, idx, w)
        if sig not in self.compiled_scan:
            self.compiled_scan[sig] = self.scan_epoch.lower(state, acc, data, idx, w).compile()
        return self.compiled_scan[sig]


_CACHE: collections.OrderedDict = collections.OrderedDict()
_CACHE_SIZE = 8


def _cached(kind: str, build: Callable, objects: tuple, values: tuple):
    """Reuse jitted functions across ``fit`` calls with the same loss, optimizer and mesh.

    ``jax.jit`` caches executables per function object, so rebuilding the step closures in
    every call would recompile; repeated runs (seeds, resumes, sweeps that share an
    optimizer object) hit this small LRU instead. ``objects`` (functions, optimizers) compare
    by identity, ``values`` (policy, mesh) by equality.
    """
    key = (kind, *map(id, objects), *values)
    hit = _CACHE.get(key)
    if hit is not None and all(a is b for a, b in zip(hit[0], objects, strict=True)):
        _CACHE.move_to_end(key)
        return hit[1]
    value = build()
    _CACHE[key] = (objects, value)
    while len(_CACHE) > _CACHE_SIZE:
        _CACHE.popitem(last=False)
    return value


# ---------------------------------------------------------------------------------------------
# Data handling


def _as_data(data, where: str, name: str):
    """Normalize device-resident data to a dict of arrays; None for streaming data."""
    if isinstance(data, tuple) and len(data) == 2 and all(hasattr(a, "shape") for a in data):
        data = {"x": data[0], "y": data[1]}
    if isinstance(data, Mapping):
        if not data:
            raise ValueError(f"{where}: {name} is an empty dict")
        sizes = {k: np.shape(v)[0] if np.ndim(v) else None for k, v in data.items()}
        if len(set(sizes.values())) != 1 or None in sizes.values():
            raise ValueError(f"{where}: every array of {name} needs the same leading (batch) "
                             f"axis, got leading sizes {sizes}")
        if next(iter(sizes.values())) == 0:
            raise ValueError(f"{where}: {name} has no rows (leading axis of length 0)")
        return dict(data)
    return None


def _is_streaming(data) -> bool:
    return callable(data) or (isinstance(data, Iterable) and not isinstance(data, Mapping))


def _stream_batches(data, epoch):
    return data(epoch) if callable(data) else data


def _check_int(where: str, name: str, value, *, low: int, none_ok: bool = False) -> None:
    """TypeError unless ``value`` is an int (bools are not), ValueError unless >= ``low``."""
    if value is None and none_ok:
        return
    expected = f"{'None or ' if none_ok else ''}an int >= {low}"
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{where}: {name} must be {expected}, got {value!r}")
    if value < low:
        raise ValueError(f"{where}: {name} must be {expected}, got {value!r}")


def _data_settings(n: int | None, batch_size, shuffle, drop_last, data_key) -> dict:
    """What fixes the data order of a ``fit`` run, as its checkpoints record it (``meta['run']``)
    and as ``fit(resume=True)`` requires it unchanged: ``n``, ``batch_size``, ``shuffle``,
    ``drop_last`` and the raw ``data_key`` as plain JSON values; for streamed data (``n`` is
    None), whose order the stream itself fixes, only ``{'streamed': True}``."""
    if n is None:
        return {"streamed": True}
    return {"n": int(n), "batch_size": None if batch_size is None else int(batch_size),
            "shuffle": shuffle if isinstance(shuffle, str) else bool(shuffle),
            "drop_last": bool(drop_last),
            "data_key": [int(w) for w in np.asarray(data_key).astype(np.uint32).ravel()]}


def _log_keys(metric_shapes: Mapping, eval_names=()) -> set:
    """Every key an epoch's logs can hold, given the step's and the evaluation's metrics."""
    keys = {"epoch", "step", "count"}
    keys |= {k for k in metric_shapes if k not in _SPECIAL_KEYS}
    keys |= {k for k in NORM_KEYS if k in metric_shapes}
    if "learning_rate" in metric_shapes:
        keys.add("learning_rate")
    # (skipped_steps is logged only for epochs that skipped a step: not one to monitor)
    keys |= {"val_" + k for k in eval_names}
    return keys


def _guess_mode(metric: str) -> str:
    return "max" if "acc" in metric else "min"


def _parse_monitor(spec, where: str):
    """``'val_loss'``, ``('val_loss', 'min')`` or ``(metric, patience[, mode])``."""
    if spec is None:
        return None
    if isinstance(spec, str):
        return {"metric": spec, "mode": _guess_mode(spec)}
    spec = tuple(spec)
    if not spec or not isinstance(spec[0], str):
        raise ValueError(f"{where}: expected a metric name first, got {spec!r}")
    out = {"metric": spec[0], "mode": _guess_mode(spec[0])}
    for item in spec[1:]:
        if item in ("min", "max"):
            out["mode"] = item
        elif (isinstance(item, (int, np.integer)) and not isinstance(item, bool)
              and item >= 0):
            out["patience"] = int(item)
        else:
            raise ValueError(f"{where}: expected a patience >= 0 or 'min'/'max', got {item!r}")
    return out


def _better(a: float, b: float | None, mode: str) -> bool:
    if b is None or not math.isfinite(b):
        return math.isfinite(a)
    return a < b if mode == "min" else a > b


def _all_finite(tree) -> bool:
    leaves = _inexact_leaves(tree)
    if not leaves:
        return True
    return bool(jax.device_get(jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in leaves]))))


class _Evaluator:
    """A jitted evaluation pass (padded batches, weighted sums) for one loss and mesh."""

    def __init__(self, loss_fn, mesh):
        eval_step = make_eval_step(loss_fn)

        def f(acc, state, data, idx, w, b):
            batch = _gather(data, idx[b], None if w is None else w[b])
            m = eval_step(state, shd.constrain_batch(batch, mesh))
            if acc is None:
                acc = {"sums": {k: jnp.zeros((), jnp.float32) for k in m if k != "count"},
                       "count": jnp.zeros((), jnp.float32)}
            return {"sums": {k: acc["sums"][k] + m[k] * m["count"] for k in acc["sums"]},
                    "count": acc["count"] + m["count"]}

        self.mesh, self.fn = mesh, jax.jit(f)

    def batch_size(self, n: int, batch_size: int | None) -> int:
        bs = min(n, 1024) if batch_size is None else int(batch_size)
        k = shd.data_size(self.mesh)
        return -(-bs // k) * k   # round up to the device count; padding rows weigh 0

    def __call__(self, state, data, batch_size, prefix=""):
        n = int(np.shape(next(iter(data.values())))[0])
        idx, w = epoch_plan(n, self.batch_size(n, batch_size), epoch=0, data_key=None,
                            shuffle=False)
        acc = None
        for b in range(idx.shape[0]):
            acc = self.fn(acc, state, data, idx, w, np.int32(b))
        return _acc_normalize(acc, prefix)


def evaluate(loss_fn: Callable, state: TrainState, data, *, batch_size: int | None = None,
             mesh=None, prefix: str = "") -> dict:
    """Weighted-mean metrics of ``loss_fn`` over a whole dataset (e.g. the test set).

    Args:
        loss_fn: ``loss_fn(params, model_state, batch, key) -> (loss, (model_state, metrics))``
            (bind ``train=False`` for dropout and batch norm).
        state: a ``TrainState`` (``fit(...).state``).
        data: a dict of arrays with a common leading axis, or an ``(x, y)`` pair.
        batch_size: rows per evaluation batch (default ``min(n, 1024)``); the last batch is
            padded with weight-0 rows, so the means are exact.
        mesh: as in ``fit``.
        prefix: prepended to every metric name.

    Returns:
        ``{'loss': float, <model metrics>: float, 'count': float}`` with the prefix.
    """
    _check_int("evaluate", "batch_size", batch_size, low=1, none_ok=True)
    mesh = shd.make_mesh(mesh)
    data = _as_data(data, "evaluate", "data")
    if data is None:
        raise TypeError("evaluate: data must be a dict of arrays or an (x, y) pair")
    return _Evaluator(loss_fn, mesh)(state, shd.put_data(data, mesh), batch_size, prefix)


def _call_callbacks(callbacks, name, *args) -> bool:
    stop = False
    for cb in callbacks:
        fn = getattr(cb, name, None)
        if fn is None and name == "on_epoch_end" and callable(cb):
            fn = cb
        if fn is not None:
            stop = bool(fn(*args)) or stop
    return stop


# ---------------------------------------------------------------------------------------------
# fit


def fit(loss_fn: Callable, params, optimizer: optax.GradientTransformation, train_data, *,
        key, epochs: int = 1, batch_size: int | None = None, model_state=None,
        eval_data=None, eval_loss_fn: Callable | None = None,
        eval_batch_size: int | None = None, drop_last: bool = False, shuffle: bool = True,
        fast_path: str = "auto", nan_policy: str | None = "stop", early_stopping=None,
        callbacks: Iterable = (), progress: bool = True, history_path: str | None = None,
        checkpoint_dir: str | None = None, keep: int = 3, keep_best=None,
        checkpoint_every: int | None = None, checkpoint_every_epochs: int = 1,
        resume: bool = False, mesh=None) -> FitResult:
    """Train ``params`` with ``optimizer`` on ``train_data`` for ``epochs`` epochs.

    Args:
        loss_fn: ``loss_fn(params, model_state, batch, key) -> (loss, (model_state, metrics))``
            returning weighted means (rows with ``batch['weight'] == 0`` must not count).
        params: initial parameters (not modified: the state works on a copy).
        optimizer: any optax-compatible ``GradientTransformation``.
        train_data: either data held on the device, a dict of arrays with a common leading
            axis (``{'x': <f32>[n, ...], 'y': [n, ...]}``, an optional ``'weight': <f32>[n]``)
            or an ``(x, y)`` pair; or streaming data: an iterable of batch dicts (iterated once
            per epoch) or a callable ``train_data(epoch) -> iterable of batches``.
        key: the run's PRNG key or int seed. ``split(key)`` gives the step key (per-step keys
            ``fold_in(step_key, step)``) and the data-order key.
        epochs: number of epochs to run (in total, counting those of a resumed run).
        batch_size: ``None`` full-batch GD, ``1`` SGD, ``k`` mini-batch (device data only).
        model_state: initial model state (batch-norm statistics), ``{}`` when ``None``.
        eval_data: optional validation data (dict or ``(x, y)``) evaluated after each epoch;
            its metrics enter the history as ``val_<name>``.
        eval_loss_fn: loss used for evaluation (default ``loss_fn``; pass the model's loss
            with ``train=False`` bound for dropout/batch norm).
        eval_batch_size: evaluation batch (default ``min(n_eval, 1024)``, rounded up to a
            multiple of the device count); padded rows carry weight 0 so means are exact.
        drop_last: drop the last partial batch of an epoch; otherwise it is padded with
            weight-0 rows so the epoch mean is exact.
        shuffle: reshuffle mini-batches each epoch (``epoch_rng(data_key, epoch)``);
            ``'replacement'`` samples each batch with replacement instead (see
            :func:`epoch_plan`).
        fast_path: ``'scan'`` (one jitted ``lax.scan`` per epoch), ``'loop'`` (jitted step per
            batch) or ``'auto'``: with device data and more than one batch per epoch and at
            least two epochs to run, the first epoch runs the loop and the second the scan,
            each timed without compilation (a scan that loses is timed a second time, as its
            first execution carries one-time costs), and the faster path is kept. Both give bitwise
            the same numbers on CPU, so the choice does not change results.
        nan_policy: ``'stop'`` (raise ``NonFiniteError`` naming the step and the first
            non-finite leaf; the state keeps the last finite values), ``'skip'`` (non-finite
            updates are not applied and counted as ``skipped_steps``; their loss and norms stay
            out of the epoch's means) or ``None`` (unchecked).
        early_stopping: ``(metric, patience)`` or ``(metric, patience, 'min'|'max')``: stop
            once ``metric`` (e.g. ``'val_loss'``) has not improved on its best for
            ``patience`` consecutive epochs (Keras' rule; the best state is the best
            checkpoint when ``keep_best`` names the same metric).
            The mode defaults to ``'max'`` for names containing ``acc``, else ``'min'``.
        callbacks: objects with optional ``on_epoch_end(epoch, state, logs) -> bool`` (True
            stops training; ``state`` is a copy the callback may keep) and
            ``on_fit_end(state, history)``; a plain callable is used as ``on_epoch_end``.
        progress: show a ``tqdm.auto`` progress bar over epochs (False silences it).
        history_path: write the history as JSONL, one line per epoch (rewritten on resume);
            NaN and infinite values are written as ``null`` (strict JSON).
        checkpoint_dir: save checkpoints (``train.checkpoint``) at the end of epochs (see
            ``checkpoint_every_epochs``) and optionally inside them (``checkpoint_every``). A
            fresh run (``resume=False``) refuses a directory that already holds checkpoints.
            Checkpoints also record the data settings (number of rows, ``batch_size``,
            ``shuffle``, ``drop_last``, data key), and a resume with other settings is refused.
            With ``history_path`` or ``checkpoint_dir``, a run that ends without an error
            writes ``manifest.json`` (``train.manifest``) into each of their directories.
        keep: number of most recent checkpoints kept.
        keep_best: also keep the best checkpoint by this metric (``'val_loss'``, or
            ``(metric, 'min'|'max')``).
        checkpoint_every_epochs: checkpoint at the end of every this many epochs (and of the
            last epoch, and of an epoch that stops the run); 1 saves every epoch. A resume
            starts from the newest checkpoint, so the epochs after it run again, exactly.
        checkpoint_every: also checkpoint every this many steps inside an epoch (with the
            epoch's partial metric sums, so a resumed run's history is unchanged); a scanned
            epoch then runs as scans over chunks of this many batches.
        resume: continue from the latest good checkpoint in ``checkpoint_dir`` (which it
            needs) if there is one, at the saved epoch and batch (streamed data: the first
            batches of the resumed epoch are drawn and skipped, so ``train_data(epoch)`` must
            be repeatable); a checkpoint with other data settings raises
            ``ResumeMismatchError``.
        mesh: ``None`` (one device), ``'auto'`` (all devices) or a ``jax.sharding.Mesh`` with
            a ``'data'`` axis: data parallel training, batch split over ``'data'``, state
            replicated. The global batch must divide by the number of devices.

    Returns:
        ``FitResult(state, history, timings)``.

    Raises:
        NonFiniteError: under ``nan_policy='stop'`` when a step is non-finite.
        ValueError, TypeError: for bad arguments, before any compilation.
    """
    from tqdm.auto import tqdm

    from train import checkpoint as ckpt_lib

    where = "fit"
    if fast_path not in FAST_PATHS:
        raise ValueError(f"{where}: fast_path must be one of {FAST_PATHS}, got {fast_path!r}")
    if nan_policy not in NAN_POLICIES:
        raise ValueError(f"{where}: nan_policy must be one of {NAN_POLICIES}, got {nan_policy!r}")
    if shuffle not in (True, False, "replacement"):
        raise ValueError(f"{where}: shuffle must be True, False or 'replacement', got {shuffle!r}")
    _check_int(where, "epochs", epochs, low=0)
    _check_int(where, "batch_size", batch_size, low=1, none_ok=True)
    _check_int(where, "eval_batch_size", eval_batch_size, low=1, none_ok=True)
    _check_int(where, "checkpoint_every", checkpoint_every, low=1, none_ok=True)
    _check_int(where, "keep", keep, low=1)
    _check_int(where, "checkpoint_every_epochs", checkpoint_every_epochs, low=1)
    if resume and checkpoint_dir is None:
        raise ValueError(f"{where}: resume=True needs a checkpoint_dir to resume from")
    mesh = shd.make_mesh(mesh)
    data = _as_data(train_data, where, "train_data")
    if data is None and not _is_streaming(train_data):
        raise TypeError(f"{where}: train_data must be a dict of arrays, an (x, y) pair, an "
                        f"iterable of batches or a callable(epoch), got "
                        f"{type(train_data).__name__}")
    edata = _as_data(eval_data, where, "eval_data") if eval_data is not None else None
    if eval_data is not None and edata is None:
        raise TypeError(f"{where}: eval_data must be a dict of arrays or an (x, y) pair, got "
                        f"{type(eval_data).__name__}")
    es = _parse_monitor(early_stopping, where + " early_stopping")
    if es is not None and "patience" not in es:
        raise ValueError(f"{where}: early_stopping needs (metric, patience[, mode]), "
                         f"got {early_stopping!r}")
    best_spec = _parse_monitor(keep_best, where + " keep_best")
    for what, spec in (("early_stopping", es), ("keep_best", best_spec)):
        if spec is not None and spec["metric"].startswith("val_") and edata is None:
            raise ValueError(f"{where}: {what} monitors {spec['metric']!r}, a validation "
                             "metric, but no eval_data was given")
    callbacks = tuple(callbacks)

    n = bs = None
    if data is not None:
        n = int(np.shape(next(iter(data.values())))[0])
        bs = n if batch_size is None else int(batch_size)
        shd.check_batch_divisible(bs, mesh, where=where)
        data = shd.put_data(data, mesh)
    if edata is not None:
        edata = shd.put_data(edata, mesh)

    step_key, data_key = jax.random.split(_as_raw_key(key, where))
    data_key = np.asarray(data_key)   # read on the host every epoch (epoch_rng)
    run_settings = _data_settings(n, batch_size, shuffle, drop_last, data_key)
    state = init_train_state(params, optimizer, key=step_key, model_state=model_state)
    state = shd.replicate(state, mesh)
    train_step, runner = _cached(
        "train", lambda: (lambda st: (st, _Runner(st, mesh, nan_policy)))(
            make_train_step(loss_fn, optimizer, nan_policy=nan_policy)),
        (loss_fn, optimizer), (nan_policy, mesh))
    evaluator = None
    if edata is not None:
        evaluator = _cached("eval", lambda: _Evaluator(eval_loss_fn or loss_fn, mesh),
                            (eval_loss_fn or loss_fn,), (mesh,))
    leaf_names = nonfinite_leaf_names(state)

    history: list[dict] = []
    es_state = {"best": None, "wait": 0}
    start_epoch, start_batch, resumed_acc = 0, 0, None
    manager = None
    if checkpoint_dir is not None:
        manager = ckpt_lib.CheckpointManager(checkpoint_dir, keep=keep,
                                             best_metric=best_spec and best_spec["metric"],
                                             best_mode=best_spec and best_spec["mode"])
        if not resume and manager.latest_step() is not None:
            raise ValueError(
                f"{where}: checkpoint_dir {checkpoint_dir!r} already holds checkpoints (steps "
                f"{manager.steps()}) of an earlier run; pass resume=True to continue that "
                "run, or give a fresh run an empty directory (nothing was deleted)")
        if resume and manager.latest_step() is not None:
            state, meta = manager.restore(state)
            saved = meta.get("run")
            if saved is not None and saved != run_settings:
                diff = ", ".join(f"{k}: saved {saved.get(k)!r}, now {run_settings.get(k)!r}"
                                 for k in sorted(set(saved) | set(run_settings))
                                 if saved.get(k) != run_settings.get(k))
                raise ResumeMismatchError(
                    f"{where}: resume=True, but the checkpoint in {checkpoint_dir!r} was "
                    f"written by a run with other data settings ({diff}; data_key comes from "
                    "key); resume with the same data, key, batch_size, shuffle and drop_last")
            start_epoch = int(meta["next_epoch"])
            start_batch = int(meta.get("next_batch", 0))
            resumed_acc = meta.get("acc")
            if meta.get("stopped"):   # early stopping or a callback ended that run
                start_epoch = epochs
            history = list(meta["history"])
            es_state = dict(meta.get("early_stopping", es_state))
    if history_path is not None:
        os.makedirs(os.path.dirname(os.path.abspath(history_path)), exist_ok=True)
        with open(history_path, "w") as f:
            for row in history:
                f.write(json_line(row))

    def check_finite(acc_host, epoch):
        bad_step = int(acc_host["bad_step"])
        if nan_policy == "stop" and bad_step >= 0:
            leaf = leaf_names[int(acc_host["bad_leaf"])]
            raise NonFiniteError(
                f"fit: non-finite value at step {bad_step} (epoch {epoch}): the first "
                f"non-finite leaf is {leaf}; training stopped and the returned state is the "
                f"last finite one (nan_policy='stop'; use 'skip' to skip such updates)",
                step=bad_step, leaf=leaf, state=state)

    def save(state, epoch, next_batch, acc_host=None, logs=None, stopped=False):
        if not _all_finite(state):
            warnings.warn(f"fit: the state at epoch {epoch} is non-finite; not checkpointed",
                          RuntimeWarning, stacklevel=3)
            return
        meta = {"next_epoch": epoch + (next_batch == 0), "next_batch": next_batch,
                "history": history, "early_stopping": es_state, "metrics": logs or {},
                "acc": None if acc_host is None else _acc_to_json(acc_host),
                "stopped": stopped, "run": run_settings}
        manager.save(int(jax.device_get(state.step)), state, meta)

    def start_acc():
        nonlocal resumed_acc
        acc = _acc_zeros(tuple(metric_shapes))()
        if resumed_acc is not None:   # resuming mid-epoch: the epoch's partial sums
            acc = _acc_from_json(acc, resumed_acc)
            resumed_acc = None
        return acc

    def check_monitors(metric_shapes):
        """Before the first step: the monitored metrics must be ones the logs will hold."""
        monitored = [spec["metric"] for spec in (es, best_spec) if spec is not None]
        if not monitored:
            return
        eval_names = ()
        if edata is not None and any(m.startswith("val_") for m in monitored):
            # the first batch of the evaluation itself (its size, its padding)
            n_eval = int(np.shape(next(iter(edata.values())))[0])
            idx, w = epoch_plan(n_eval, evaluator.batch_size(n_eval, eval_batch_size),
                                epoch=0, data_key=None, shuffle=False)
            probe = _gather(edata, idx[0], None if w is None else w[0])
            eval_names = jax.eval_shape(make_eval_step(eval_loss_fn or loss_fn), state,
                                        probe).keys()
        known = _log_keys(metric_shapes, eval_names)
        for what, spec in (("early_stopping", es), ("keep_best", best_spec)):
            if spec is not None and spec["metric"] not in known:
                raise ValueError(f"{where}: {what} monitors {spec['metric']!r}, which is not "
                                 f"in the epoch logs (they hold {sorted(known)})")

    def plan(epoch):
        return epoch_plan(n, batch_size, epoch=epoch, data_key=data_key, shuffle=shuffle,
                          drop_last=drop_last)

    ahead: dict = {}   # epoch -> (idx, w, (idx, w) on the device), drawn a step early
    metric_shapes = None
    timings: list[dict] = []
    chosen = None if fast_path == "auto" else fast_path
    measured: dict[str, float] = {}
    scan_runs = 0
    bar = tqdm(total=epochs, initial=min(start_epoch, epochs), disable=not progress,
               desc="fit", unit="epoch", leave=True)
    stop = False
    try:
        for epoch in range(start_epoch, epochs):
            t0 = time.perf_counter()
            first, start_batch = start_batch, 0
            paths = []
            if data is not None:
                idx, w, on_device = (ahead.pop(epoch) if epoch in ahead else
                                     plan(epoch) + (None,))
                if metric_shapes is None:
                    probe = _gather(data, idx[0], None if w is None else w[0])
                    metric_shapes = jax.eval_shape(train_step, state, probe)[1]
                    check_monitors(metric_shapes)
                acc = start_acc()
                nb = idx.shape[0]
                every = checkpoint_every if manager is not None and checkpoint_every else nb
                if chosen is None and nb < 2:
                    chosen = "loop"   # one batch per epoch: nothing to fuse
                lo = first
                while lo < nb:
                    hi = min((lo // every + 1) * every, nb)
                    if on_device is not None and (lo, hi) == (0, nb):
                        i_d, w_d = on_device
                    else:
                        i_d = jax.device_put(idx[lo:hi])
                        w_d = None if w is None else jax.device_put(w[lo:hi])
                    path = chosen or ("loop" if "loop" not in measured else "scan")
                    if path == "scan":
                        # 'auto' compiles first, to time the execution alone; afterwards
                        # jit's own dispatch reuses that executable
                        scan = (runner.compile_scan(state, acc, data, i_d, w_d)
                                if chosen is None else runner.scan_epoch)
                        t_run = time.perf_counter()
                        state, acc = scan(state, acc, data, i_d, w_d)
                        if chosen is None:
                            jax.block_until_ready(acc)
                            per = (time.perf_counter() - t_run) / (hi - lo)
                            scan_runs += 1
                            measured["scan"] = min(measured.get("scan", math.inf), per)
                            # a first execution carries one-time costs (about a millisecond
                            # here), which for a small model can exceed the whole epoch: a
                            # scan that loses once is timed once more before it is dropped
                            if measured["scan"] < measured["loop"] or scan_runs >= 2:
                                chosen = min(measured, key=measured.get)
                                timings.append({"auto_seconds_per_step": dict(measured),
                                                "chosen": chosen})
                    else:
                        state, acc, per = runner.loop(state, acc, data, i_d, w_d,
                                                      timed=chosen is None)
                        if per is not None:
                            measured["loop"] = per
                    paths.append(path)
                    lo = hi
                    if hi == nb and epoch + 1 < epochs:
                        # the device runs this epoch asynchronously: draw the next plan and
                        # send it meanwhile
                        nxt = plan(epoch + 1)
                        ahead[epoch + 1] = nxt + ((jax.device_put(nxt[0]),
                                                   None if nxt[1] is None else
                                                   jax.device_put(nxt[1])),)
                    if hi < nb and manager is not None:   # a mid-epoch checkpoint
                        acc_host = jax.device_get(acc)
                        check_finite(acc_host, epoch)
                        save(state, epoch, hi, acc_host)
            else:
                paths.append("loop")
                acc = None
                for b, batch in enumerate(_stream_batches(train_data, epoch)):
                    if b < first:
                        continue   # resuming mid-epoch: these batches were used already
                    if (b > first and manager is not None and checkpoint_every
                            and b % checkpoint_every == 0):
                        acc_host = jax.device_get(acc)
                        check_finite(acc_host, epoch)
                        save(state, epoch, b, acc_host)
                    if not isinstance(batch, Mapping):
                        raise TypeError(f"{where}: streamed train_data must yield batches as "
                                        f"dicts of arrays, got {type(batch).__name__} in epoch "
                                        f"{epoch}")
                    batch = shd.shard_batch(dict(batch), mesh)
                    if acc is None:
                        if metric_shapes is None:
                            metric_shapes = jax.eval_shape(train_step, state, batch)[1]
                            check_monitors(metric_shapes)
                        acc = start_acc()
                    state, acc = runner.stream_step(state, acc, batch)
                if acc is None:
                    raise ValueError(f"{where}: train_data yielded no batch in epoch {epoch}")
            acc_host = jax.device_get(acc)
            check_finite(acc_host, epoch)
            logs = {"epoch": epoch, "step": int(jax.device_get(state.step))}
            logs.update(_acc_normalize(acc_host))
            seconds = time.perf_counter() - t0
            if edata is not None:
                logs.update(evaluator(state, edata, eval_batch_size, "val_"))
            timings.append({"epoch": epoch, "seconds": seconds,
                            "path": "+".join(dict.fromkeys(paths))})
            history.append(logs)
            if history_path is not None:
                with open(history_path, "a") as f:
                    f.write(json_line(logs))
            if es is not None:
                value = logs.get(es["metric"])
                if value is None:
                    raise ValueError(f"{where}: early_stopping metric {es['metric']!r} is not "
                                     f"in the epoch logs {sorted(logs)}")
                if _better(value, es_state["best"], es["mode"]):
                    es_state = {"best": value, "wait": 0}
                else:
                    es_state = {"best": es_state["best"], "wait": es_state["wait"] + 1}
                    stop = es_state["wait"] >= es["patience"]
            if callbacks:   # a copy: the next epoch donates (frees) the state's buffers
                stop = _call_callbacks(callbacks, "on_epoch_end", epoch,
                                       jax.tree.map(jnp.copy, state), logs) or stop
            if manager is not None and (stop or epoch + 1 == epochs
                                        or (epoch + 1) % checkpoint_every_epochs == 0):
                save(state, epoch, 0, logs=logs, stopped=stop)
            bar.update(1)
            bar.set_postfix({k: f"{v:.4g}" for k, v in logs.items()
                             if k in ("loss", "accuracy", "val_loss", "val_accuracy")})
            if stop:
                break
    finally:
        bar.close()
    outputs = [os.path.dirname(os.path.abspath(history_path))] if history_path else []
    outputs += [checkpoint_dir] if checkpoint_dir is not None else []
    if outputs:
        from train.manifest import write_manifest

        config = {"loss_fn": loss_fn, "optimizer": optimizer, "epochs": epochs,
                  "batch_size": batch_size, "shuffle": shuffle, "drop_last": drop_last,
                  "fast_path": fast_path, "nan_policy": nan_policy,
                  "early_stopping": early_stopping, "keep_best": keep_best,
                  "checkpoint_every": checkpoint_every,
                  "checkpoint_every_epochs": checkpoint_every_epochs, "data": run_settings}
        seed = int(key) if isinstance(key, (int, np.integer)) else None
        extra = {"epochs_run": len(history), "final": history[-1] if history else {},
                 "timings": timings}
        for out_dir in dict.fromkeys(outputs):
            write_manifest(out_dir, config=config, seed=seed, params=state.params, extra=extra)
    _call_callbacks(callbacks, "on_fit_end", state, history)
    return FitResult(state, history, timings)
