"""The contract every optimizer in ``functional.optim`` keeps: ``GradientTransformation``, the
states (optax's field names), ``chain``, ``apply_updates``, the checks that a state is the one
the optimizer's init made, and reading or setting the learning rate a state holds.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from functional import _validate

Schedule = Callable[[jax.Array], jax.Array]
ScalarOrSchedule = float | Schedule


class GradientTransformation(NamedTuple):
    """An optimizer or building block: ``init(params) -> state`` and
    ``update(updates, state, params=None) -> (updates, state)``.

    Field for field the same as ``optax.GradientTransformation``, so optax accepts it.
    """

    init: Callable[[Any], Any]
    update: Callable[..., tuple[Any, Any]]


class EmptyState(NamedTuple):
    """State of a stateless transformation (no leaves)."""


class TraceState(NamedTuple):
    """Momentum buffer: ``trace`` has the structure of params."""

    trace: Any


class ScaleByRssState(NamedTuple):
    """Adagrad's running sum of squared gradients."""

    sum_of_squares: Any


class ScaleByRmsState(NamedTuple):
    """RMSprop's moving average of squared gradients."""

    nu: Any


class ScaleByRmsWithCountState(NamedTuple):
    """RMSprop with bias correction: also the step count."""

    count: jax.Array
    nu: Any


class ScaleByRStdDevState(NamedTuple):
    """Centered RMSprop: moving averages of gradients and of their squares."""

    mu: Any
    nu: Any


class ScaleByRStdDevWithCountState(NamedTuple):
    """Centered RMSprop with bias correction: also the step count."""

    count: jax.Array
    mu: Any
    nu: Any


class ScaleByAdamState(NamedTuple):
    """Adam / Adamax: step count, first moment ``mu`` and second (or infinity) moment ``nu``."""

    count: jax.Array
    mu: Any
    nu: Any


class ScaleByAdaDeltaState(NamedTuple):
    """Adadelta: moving averages of squared gradients ``e_g`` and squared updates ``e_x``."""

    e_g: Any
    e_x: Any


class ScaleByScheduleState(NamedTuple):
    """Step count read by a schedule."""

    count: jax.Array


class ScaleByLearningRateState(NamedTuple):
    """Step count and the learning rate the next update applies (a float scalar array)."""

    count: jax.Array
    learning_rate: jax.Array


class WeightDecaySchedule(NamedTuple):
    """Step count of a scheduled weight decay."""

    count: jax.Array


# --------------------------------------------------------------------------- state checks
#
# Each of our blocks records the state type its init makes on its update function
# (``update.state_type``); ``chain`` and the block itself compare the state they are given
# with it before touching a field, so a foreign state (optax's, another optimizer's) fails
# with a named TypeError instead of an AttributeError deep inside. The checks look at Python
# types only, at trace time: no array operations, nothing under jit or vmap.


def _type_name(state) -> str:
    cls = type(state)
    return ("optax " if cls.__module__.split(".")[0] == "optax" else "") + cls.__name__


def _is_chain_state(state) -> bool:
    """A chain's state: a plain tuple (or list) of states, not a NamedTuple state."""
    return isinstance(state, tuple | list) and not hasattr(state, "_fields")


def _state_ok(state, expected) -> bool:
    """``state`` is an ``expected``, or the like-named state class of optax with the same
    fields (optax's ``EmptyState``, ``ScaleByAdamState``, ...: same layout, same meaning)."""
    if expected is tuple:
        return _is_chain_state(state)
    if isinstance(state, expected):
        return True
    if not isinstance(state, tuple):
        return False
    return (type(state).__name__ == expected.__name__
            and getattr(state, "_fields", None) == expected._fields)


def _check_state(fn: str, what: str, state, expected, owner: str):
    if not _state_ok(state, expected):
        raise TypeError(
            f"{fn}: {what} is {_type_name(state)}, expected {expected.__name__}; "
            f"pass the state made by this {owner}'s init"
        )


def _transformation(fn: str, init, update, state_type) -> GradientTransformation:
    """``GradientTransformation(init, update)`` whose update first checks that the state is
    a ``state_type`` (the type ``init`` makes)."""

    def checked_update(updates, state, params=None):
        _check_state(fn, "state", state, state_type, "transformation")
        return update(updates, state, params)

    checked_update.state_type = state_type
    return GradientTransformation(init, checked_update)


# --------------------------------------------------------------------------- combinators


@_validate.names_errors
def identity() -> GradientTransformation:
    """Leaves updates unchanged; state ``EmptyState()``."""
    return _transformation(_validate.caller(), lambda params: EmptyState(),
                           lambda u, s, p=None: (u, s), EmptyState)


@_validate.names_errors
def chain(*transforms) -> GradientTransformation:
    """Apply transformations one after another; the state is the tuple of their states.

    Accepts ours and optax's alike (anything with ``.init`` and ``.update``), mirroring
    ``optax.chain``; extra keyword arguments of optax's ``ExtraArgs`` variant are not
    forwarded. ``update`` checks that each entry of the state has the type our block's init
    makes (optax's blocks are not checked) and raises a TypeError naming the entry (and the
    optimizer the user called, when an optimizer built the chain) otherwise.

    Args:
      *transforms: gradient transformations, applied left to right.

    Returns:
      A ``GradientTransformation`` whose state is ``tuple(t.init(params) for t in transforms)``.
    """
    fn = _validate.caller()
    for i, t in enumerate(transforms):
        if not (hasattr(t, "init") and hasattr(t, "update")):
            raise TypeError(
                f"{fn}: argument {i} must have .init and .update, got {type(t).__name__}"
            )
    state_types = [getattr(t.update, "state_type", None) for t in transforms]

    def init(params):
        return tuple(t.init(params) for t in transforms)

    def update(updates, state, params=None):
        if not _is_chain_state(state):
            raise TypeError(
                f"{fn}: state is {_type_name(state)}, expected a tuple of "
                f"{len(transforms)} states; pass the state made by this optimizer's init"
            )
        if len(state) != len(transforms):
            raise ValueError(
                f"{fn}: expected a state tuple of {len(transforms)} entries, got {len(state)}"
            )
        for i, (s, expected) in enumerate(zip(state, state_types, strict=True)):
            if expected is not None:
                _check_state(fn, f"state entry {i}", s, expected, "optimizer")
        new_state = []
        for t, s in zip(transforms, state, strict=True):
            updates, s = t.update(updates, s, params)
            new_state.append(s)
        return updates, tuple(new_state)

    update.state_type = tuple
    return GradientTransformation(init, update)


def apply_updates(params, updates):
    """``params + updates`` leaf by leaf, keeping each parameter's dtype (optax's rule).

    Args:
      params: pytree of arrays.
      updates: pytree of the same structure (the output of ``update``).

    Returns:
      The new params, same structure and dtypes as ``params``.
    """
    return jax.tree.map(
        lambda p, u: jnp.asarray(p + u).astype(jnp.asarray(p).dtype), params, updates
    )


# --------------------------------------------------------------------------- learning rate


def _is_lr_state(x) -> bool:
    return isinstance(x, ScaleByLearningRateState)


def current_learning_rate(state) -> jax.Array:
    """The learning rate the next update will apply, read from an optimizer state.

    Args:
      state: the state of any optimizer in this module (or a pytree containing one, such as
        an ``optax.chain`` state or a train state).

    Returns:
      ``<f32>[]`` (``<f64>[]`` under x64), or ``<f>[n]`` for a state vmapped over n copies.

    Raises:
      ValueError: if the state holds no ``ScaleByLearningRateState``.
    """
    found = [x for x in jax.tree.leaves(state, is_leaf=_is_lr_state) if _is_lr_state(x)]
    if not found:
        raise ValueError(
            "current_learning_rate: expected a state containing a ScaleByLearningRateState "
            f"(from scale_by_learning_rate), got {type(state).__name__}"
        )
    return found[0].learning_rate


@_validate.names_errors
def set_learning_rate(state, learning_rate):
    """A copy of ``state`` whose next update applies ``learning_rate`` (no recompilation).

    With a constant rate the new value stays; with a schedule it is used for the next step
    only, after which the schedule takes over again.

    Args:
      state: optimizer state containing one or more ``ScaleByLearningRateState``.
      learning_rate: new positive rate (a float or a scalar array).

    Returns:
      The state with every ``ScaleByLearningRateState.learning_rate`` replaced.
    """
    _validate.positive(_validate.caller(), "learning_rate", learning_rate)

    def replace(x):
        if _is_lr_state(x):
            lr = jnp.broadcast_to(jnp.asarray(learning_rate, x.learning_rate.dtype),
                                  x.learning_rate.shape)
            return x._replace(learning_rate=lr)
        return x

    current_learning_rate(state)  # raises a clear error if there is nothing to set
    return jax.tree.map(replace, state, is_leaf=_is_lr_state)

