"""The train state and the pure steps: ``train_step(state, batch) -> (state, metrics)``.

Layout follows the Flax examples (a train state pytree, an undecorated step the driver jits)
without their decorators. A ``loss_fn`` has the contract of ``docs/architecture.md``::

    loss_fn(params, model_state, batch, key) -> (loss, (model_state, metrics))

where ``batch`` is a dict of arrays with a leading batch axis (``{'x': ..., 'y': ...}`` and
optionally ``'weight': <f32>[batch]``, 0 for padding rows), ``loss`` is the weighted mean over
the batch and ``metrics`` a dict of weighted-mean scalars.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

NAN_POLICIES = ("stop", "skip", None)
NORM_KEYS = ("grad_norm", "param_norm", "update_norm")
# Keys of a step's metrics that are not weighted means of the batch.
SPECIAL_KEYS = ("count", "learning_rate", "nonfinite", "nonfinite_leaf", *NORM_KEYS)


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


def as_raw_key(key, where: str) -> jax.Array:
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
                      step=jnp.zeros((), jnp.int32), key=as_raw_key(key, "init_train_state"))


# ---------------------------------------------------------------------------------------------
# Norms and finiteness


def inexact_leaves(tree) -> list:
    """The floating-point (and complex) leaves of ``tree``, in tree order."""
    return [x for x in jax.tree.leaves(tree) if jnp.issubdtype(jnp.result_type(x), jnp.inexact)]


def _inexact_paths(tree, prefix: str) -> list[str]:
    flat = jax.tree_util.tree_flatten_with_path(tree)[0]
    return [prefix + jax.tree_util.keystr(p) for p, x in flat
            if jnp.issubdtype(jnp.result_type(x), jnp.inexact)]


def nonfinite_leaf_names(state: TrainState) -> list[str]:
    """Names of the leaves the NaN guard checks, in the order of ``metrics['nonfinite_leaf']``.

    Args:
        state: a ``TrainState`` (only the structure of its trees is used).

    Returns:
        ``['loss', 'grads[...]', ..., 'params[...]', ..., 'opt_state[...]', ...,
        'model_state[...]', ...]``.
    """
    return (["loss"] + _inexact_paths(state.params, "grads")
            + _inexact_paths(state.params, "params")
            + _inexact_paths(state.opt_state, "opt_state")
            + _inexact_paths(state.model_state, "model_state"))


# Leaves smaller than this are concatenated and reduced together: inside a scanned epoch on
# XLA CPU every reduction is a kernel of its own, and for the MNIST-1D MLP the per-leaf norms
# cost 35 microseconds a step against 8 for the concatenated ones. Large leaves are reduced one
# by one: concatenating a 10M-parameter tree took 25 ms against 1.8 ms leaf by leaf (both
# measured by hand on the 2-core CPU; bench_loop.py shows the effect on whole epochs).
_CONCAT_BELOW = 1 << 16


def sum_squares(tree) -> jax.Array:
    """``<f32>[]``: the sum of squares of all inexact leaves, NaN iff some element is NaN/Inf.

    Each element contributes ``x * x + x * 0``: ``x * 0`` is ``+-0`` for finite ``x`` (so the
    value is the plain sum of squares) and NaN for Inf or NaN, so one reduction answers both
    "how large" and "is everything finite". A float32 overflow of finite values gives ``+inf``,
    never NaN.
    """
    leaves = [x.astype(jnp.float32) for x in inexact_leaves(tree)]
    small = [x.ravel() for x in leaves if x.size < _CONCAT_BELOW]
    parts = [x for x in leaves if x.size >= _CONCAT_BELOW]
    if small:
        parts.append(jnp.concatenate(small) if len(small) > 1 else small[0])
    if not parts:
        return jnp.zeros((), jnp.float32)
    return sum(jnp.sum(x * x + x * 0) for x in parts)


def global_norm(tree) -> jax.Array:
    """``<f32>[]``: the L2 norm of all leaves of ``tree`` taken together (NaN if any is NaN/Inf)."""
    return jnp.sqrt(sum_squares(tree))


def finite_flag(tree) -> jax.Array:
    """``<bool>[]``: every inexact leaf of ``tree`` is finite (traceable; one reduction per
    leaf, for checks once per epoch rather than per step)."""
    leaves = inexact_leaves(tree)
    if not leaves:
        return jnp.ones((), bool)
    return jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in leaves]))


_finite_flag = jax.jit(finite_flag)


def all_finite(tree) -> bool:
    """Whether every inexact leaf of ``tree`` is finite: on the host, leaf by leaf, with
    nothing to compile (compiling :func:`finite_flag` for the MNIST-1D CNN's train state took
    150 ms here, as long as six of its epochs); with several processes, on the devices."""
    if jax.process_count() > 1:
        return bool(np.asarray(_finite_flag(tree)))
    return all(bool(np.isfinite(np.asarray(x)).all()) for x in inexact_leaves(tree))


def weight_sum(batch) -> jax.Array:
    """``<f32>[]``: the batch's number of real rows (its ``weight`` sum, else its size)."""
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


# ---------------------------------------------------------------------------------------------
# Steps


def _as_metrics(loss, metrics, batch) -> dict:
    out = {k: jnp.asarray(v, jnp.float32) for k, v in dict(metrics).items()}
    out["loss"] = jnp.asarray(loss, jnp.float32)
    out["count"] = weight_sum(batch)
    return out


def make_train_step(loss_fn: Callable, optimizer: optax.GradientTransformation, *,
                    nan_policy: str | None = "stop", norms: bool = True,
                    name_leaf: bool = True, with_grads: bool = False) -> Callable:
    """Make the pure, undecorated ``train_step(state, batch) -> (state, metrics)``.

    The step's key is ``fold_in(state.key, state.step)``. Metrics (all scalars):

    - ``loss`` and the model's own metrics (weighted means over the batch),
    - ``count``: the batch's weight sum (number of real rows), so callers can form sums,
    - with ``norms``: ``grad_norm``, ``param_norm`` (after the update), ``update_norm``,
      global L2 norms,
    - ``learning_rate`` when the optimizer state exposes one (``optax.inject_hyperparams``,
      ``functional.optim``),
    - with a NaN policy: ``nonfinite`` (1.0 if this step was not applied) and, with
      ``name_leaf``, ``nonfinite_leaf`` (``<i32>``, index into
      ``nonfinite_leaf_names(state)``, -1 if finite).

    NaN guard (inside the step, no host sync): if the loss, any gradient, any updated
    parameter, any leaf of the new optimizer state or of the model state is NaN/Inf, the step
    keeps the old params, optimizer and model state and only advances ``step``.
    ``nan_policy=None`` applies every update unchecked (``fit`` then checks whole epochs
    instead; see ``train.loop.runner``).

    Args:
        loss_fn: ``loss_fn(params, model_state, batch, key) -> (loss, (model_state, metrics))``.
        optimizer: any optax-compatible ``GradientTransformation``.
        nan_policy: ``'stop'`` or ``'skip'`` (both guard the step as above; ``fit`` raises
            at the first guarded step under ``'stop'``), or ``None``.
        norms: report the three global norms.
        name_leaf: report ``nonfinite_leaf`` (a ``lax.cond`` that searches the leaves only
            on a bad step).
        with_grads: also return the step's gradients and updates, ``(grads, updates)``
            (pytrees like the params), so a caller can measure them later (``fit``'s runner
            carries the last step's through a scanned epoch to measure its norms once).

    Returns:
        ``train_step(state, batch) -> (TrainState, dict[str, scalar])``, or ``(TrainState,
        metrics, (grads, updates))`` with ``with_grads``.
    """
    if nan_policy not in NAN_POLICIES:
        raise ValueError(f"make_train_step: nan_policy must be one of {NAN_POLICIES}, "
                         f"got {nan_policy!r}")
    if not callable(loss_fn):
        raise TypeError(f"make_train_step: loss_fn must be callable, got {type(loss_fn).__name__}")
    grad_fn = jax.value_and_grad(loss_fn, has_aux=True)

    def train_step(state: TrainState, batch):
        new, out, grads, updates = guarded_step(state, batch)
        return (new, out, (grads, updates)) if with_grads else (new, out)

    def guarded_step(state: TrainState, batch):
        key = jax.random.fold_in(state.key, state.step)
        (loss, (model_state, metrics)), grads = grad_fn(state.params, state.model_state,
                                                        batch, key)
        updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        out = _as_metrics(loss, metrics, batch)
        lr = find_learning_rate(state.opt_state, opt_state)
        if lr is not None:
            out["learning_rate"] = lr
        new = TrainState(params, opt_state, model_state, state.step + 1, state.key)
        if not norms and nan_policy is None:
            return new, out, grads, updates
        grad_sq, param_sq = sum_squares(grads), sum_squares(params)
        if norms:
            out.update(norms_of(grads, params, updates, sums=(grad_sq, param_sq)))
        if nan_policy is None:
            return new, out, grads, updates
        # One NaN test per tree (the sums of squares are NaN iff an element is NaN/Inf); the
        # per-leaf search that names the culprit runs only on a bad step.
        ok = ~(jnp.isnan(grad_sq) | jnp.isnan(param_sq) | jnp.isnan(sum_squares(opt_state))
               | jnp.isnan(sum_squares(model_state)) | ~jnp.isfinite(loss))
        keep = lambda a, b: jax.tree.map(lambda x, y: jnp.where(ok, x, y), a, b)
        new = TrainState(keep(params, state.params), keep(opt_state, state.opt_state),
                         keep(model_state, state.model_state), state.step + 1, state.key)
        out["nonfinite"] = 1.0 - ok.astype(jnp.float32)
        if name_leaf:
            def first_bad_leaf():
                flags = [jnp.isfinite(loss)]
                flags += [jnp.all(jnp.isfinite(x)) for x in inexact_leaves(
                    (grads, params, opt_state, model_state))]
                return jnp.argmin(jnp.stack(flags)).astype(jnp.int32)

            out["nonfinite_leaf"] = jax.lax.cond(ok, lambda: jnp.int32(-1), first_bad_leaf)
        return new, out, grads, updates

    return train_step


def norms_of(grads, params, updates, *, sums=None) -> dict:
    """``{'grad_norm', 'param_norm', 'update_norm'}``: the global L2 norms of a step's
    gradients, of the parameters after it and of its updates (``sums``: the first two's sums
    of squares, when already computed)."""
    grad_sq, param_sq = sums if sums is not None else (sum_squares(grads), sum_squares(params))
    return {"grad_norm": jnp.sqrt(grad_sq), "param_norm": jnp.sqrt(param_sq),
            "update_norm": global_norm(updates)}


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
        return _as_metrics(loss, metrics, batch)

    return eval_step
