"""Optimizers written out by hand, with optax's contract and optax's numbers.

An optimizer is a pair of pure functions (a ``GradientTransformation``)::

    state = opt.init(params)
    updates, state = opt.update(grads, state, params)   # params needed by weight decay only
    params = apply_updates(params, updates)             # params + updates, leaf by leaf

Each rule below is a building block (``scale_by_adam``, ``trace``, ...) and an optimizer is a
``chain`` of them ending in ``scale_by_learning_rate``, the way optax's ``alias.py`` builds
them. The arithmetic of every block follows optax 0.2.x expression by expression, so our
updates and states agree with optax's to rounding (tested to rtol 1e-6 in float32 and 1e-12 in
float64 over 100+ steps), and the two libraries can be mixed: ``optax.chain(ours, ...)`` and
``chain(optax_transform, ...)`` both work, because both only need ``.init`` and ``.update``.
State fields carry optax's names (``count``, ``mu``, ``nu``, ``trace``, ``sum_of_squares``,
``e_g``, ``e_x``), so states compare field by field.

The learning rate lives in the state. ``scale_by_learning_rate`` keeps a
``ScaleByLearningRateState(count, learning_rate)`` where ``learning_rate`` is the rate the
*next* update applies; a schedule (a function of the step count, see ``functional.schedules``)
refreshes it after every step inside the compiled function, so a decaying rate never
recompiles. Read it with ``current_learning_rate(state)``; overwrite it (say, on a plateau)
with ``set_learning_rate(state, value)``, again without recompiling. This is the one place
where our states have a field that optax's lack (optax keeps a bare ``count`` or nothing).

Conventions on which frameworks disagree are explicit keywords:

- momentum form (``momentum``, ``nesterov``): ``form='optax'`` accumulates raw gradients and
  scales afterwards (v = mu*v + g; w -= lr*v; optax and PyTorch), ``form='notes'`` keeps a
  velocity in parameter units (v = mu*v - lr*g; w += v; seed 004 section 4.5, cs231n). They
  coincide for a constant learning rate and differ when it changes.
- epsilon inside or outside the square root (``adagrad``, ``rmsprop``: ``eps_in_sqrt``).
- Adagrad's initial accumulator (``initial_accumulator_value``: optax/TF 0.1, PyTorch 0).
- Adam's bias correction (``bias_correction``: the paper and optax True; the notes' Adam in
  seed 004 section 4.7 has none).

References: seed 004 sections 4.5-4.8 (momentum, RMSprop, Adam, decay); Polyak 1964 (heavy
ball); Sutskever et al. 2013 (Nesterov momentum in deep learning); Duchi et al. 2011 (Adagrad);
Tieleman & Hinton 2012 (RMSprop), Graves 2013 (centered RMSprop); Zeiler 2012 (Adadelta);
Kingma & Ba 2015 (Adam, Adamax); Loshchilov & Hutter 2019 (AdamW); Dozat 2016 (Nadam);
You et al. 2020 (LAMB); optax ``transform.py`` and ``alias.py`` (the layout followed here).
"""

from __future__ import annotations

import functools
import numbers
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

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


# --------------------------------------------------------------------------- validation


def _concrete(value):
    """The value as a Python float, None when it is traced (no check possible then), or
    "bad" when it is not a real scalar (bool, complex, string, non-scalar array, ...)."""
    if isinstance(value, jax.core.Tracer):
        return None
    if isinstance(value, bool | np.bool_) or not isinstance(
        value, numbers.Real | np.ndarray | jax.Array
    ):
        return "bad"
    arr = np.asarray(value)
    real = jnp.issubdtype(arr.dtype, jnp.floating) or jnp.issubdtype(arr.dtype, jnp.integer)
    if arr.shape != () or not real:
        return "bad"
    return float(arr)


def _check(fn: str, name: str, value, *, low=None, high=None, low_open=False, high_open=True):
    """Raise ValueError/TypeError unless ``value`` is a finite real scalar in the given
    interval (every interval here is open at infinity: +-inf and NaN are rejected)."""
    v = _concrete(value)
    if v is None:
        return
    if v == "bad":
        raise TypeError(f"{fn}: {name} must be a real scalar, got {value!r}")
    bad_low = low is not None and (v <= low if low_open else v < low)
    bad_high = high is not None and (v >= high if high_open else v > high)
    if bad_low or bad_high or not np.isfinite(v):
        lo = "(-inf" if low is None else ("(" if low_open else "[") + f"{low:g}"
        hi = "inf)" if high is None else f"{high:g}" + (")" if high_open else "]")
        raise ValueError(f"{fn}: {name} must be in {lo}, {hi}, got {value!r}")


def _check_lr(fn: str, learning_rate):
    if callable(learning_rate):
        return
    _check(fn, "learning_rate", learning_rate, low=0.0, low_open=True)


def _check_beta(fn: str, name: str, value):
    _check(fn, name, value, low=0.0, high=1.0)


def _check_eps(fn: str, name: str, value):
    _check(fn, name, value, low=0.0, low_open=True)


def _check_weight_decay(fn: str, weight_decay):
    if callable(weight_decay):
        return
    _check(fn, "weight_decay", weight_decay, low=0.0)


def _check_bool(fn: str, name: str, value):
    if not isinstance(value, bool | np.bool_):
        raise TypeError(f"{fn}: {name} must be a bool, got {value!r}")


def _is_bool_leaf(x) -> bool:
    """A concrete boolean: a Python or NumPy bool, or a 0-d bool array that is not traced."""
    if isinstance(x, bool | np.bool_):
        return True
    if isinstance(x, jax.core.Tracer) or not isinstance(x, np.ndarray | jax.Array):
        return False
    return x.shape == () and x.dtype == np.bool_


def _check_mask_tree(fn: str, name: str, mask):
    """A mask pytree must have only boolean leaves (decay applies where True)."""
    if not all(_is_bool_leaf(m) for m in jax.tree.leaves(mask)):
        raise TypeError(
            f"{fn}: {name} must be None, a callable, or a pytree whose leaves are bools, "
            f"got {mask!r}"
        )


def _check_mask(fn: str, mask):
    """None, a callable (its result is checked at update time) or a pytree of bools."""
    if mask is not None and not callable(mask):
        _check_mask_tree(fn, "mask", mask)


def _check_form(fn: str, form: str):
    if form not in ("optax", "notes"):
        raise ValueError(f"{fn}: form must be 'optax' or 'notes', got {form!r}")


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


# --------------------------------------------------------------------------- tree helpers


def _safe_increment(count: jax.Array) -> jax.Array:
    """count + 1, saturating at the dtype's maximum instead of wrapping round."""
    top = jnp.array(jnp.iinfo(count.dtype).max, count.dtype)
    return jnp.where(count < top, count + jnp.array(1, count.dtype), top)


def _zeros_like(tree):
    # One fresh buffer per leaf and per call: a zeros array shared by two state fields
    # makes buffer donation fail ("donate the same buffer twice"; perf-notes).
    return jax.tree.map(jnp.zeros_like, tree)


def _full_like(tree, value):
    return jax.tree.map(lambda x: jnp.full_like(x, value), tree)


def _abs_sq(x):
    """|x|**2: x * x for real x (bit for bit what g**2 gives), (conj(x) * x).real for complex
    x, as optax's ``numerics.abs_sq``."""
    if jnp.iscomplexobj(x):
        return (jnp.conj(x) * x).real
    return x * x


def _moment(updates, moments, decay, order):
    """Exponential moving average of g**order: (1 - decay) * g**order + decay * m.

    g**2 also for complex g (Adadelta's rule, as optax's ``tree.update_moment``); the
    second moments of Adam, RMSprop and the centered RMSprop use ``_moment_abs_sq``.
    """
    return jax.tree.map(lambda g, t: (1 - decay) * (g**order) + decay * t, updates, moments)


def _moment_abs_sq(updates, moments, decay):
    """Exponential moving average of |g|**2 (= g**2 for real g; optax's
    ``tree.update_moment_per_elem_norm`` with order 2)."""
    return jax.tree.map(lambda g, t: (1 - decay) * _abs_sq(g) + decay * t, updates, moments)


@functools.partial(jax.jit, inline=True)
def _bias_correct(moments, decay, count):
    """m / (1 - decay**count): undoes the pull towards the zero initial value.

    Jitted (inlined when traced) like optax's, so eager calls round exactly as optax's do.
    """
    correction = 1 - decay**count
    return jax.tree.map(lambda t: t / correction.astype(t.dtype), moments)


def _global_norm(tree) -> jax.Array:
    return jnp.sqrt(sum(jnp.sum(_abs_sq(jnp.asarray(x))) for x in jax.tree.leaves(tree)))


# --------------------------------------------------------------------------- combinators


def identity() -> GradientTransformation:
    """Leaves updates unchanged; state ``EmptyState()``."""
    return _transformation("identity", lambda params: EmptyState(),
                           lambda u, s, p=None: (u, s), EmptyState)


def chain(*transforms) -> GradientTransformation:
    """Apply transformations one after another; the state is the tuple of their states.

    Accepts ours and optax's alike (anything with ``.init`` and ``.update``), mirroring
    ``optax.chain``; extra keyword arguments of optax's ``ExtraArgs`` variant are not
    forwarded. ``update`` checks that each entry of the state has the type our block's init
    makes (optax's blocks are not checked) and raises a TypeError naming the entry otherwise.

    Args:
      *transforms: gradient transformations, applied left to right.

    Returns:
      A ``GradientTransformation`` whose state is ``tuple(t.init(params) for t in transforms)``.
    """
    return _chain("chain", *transforms)


def _chain(fn: str, *transforms) -> GradientTransformation:
    """``chain`` whose errors name ``fn`` (the optimizer the user called)."""
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


def scale(step_size: float) -> GradientTransformation:
    """Multiply updates by a fixed ``step_size`` (a finite real scalar, any sign); stateless."""
    _check("scale", "step_size", step_size)

    def update(updates, state, params=None):
        return jax.tree.map(lambda g: step_size * g, updates), state

    return _transformation("scale", lambda params: EmptyState(), update, EmptyState)


def scale_by_schedule(step_size_fn: Schedule) -> GradientTransformation:
    """Multiply updates by ``step_size_fn(count)`` and count the step (optax's semantics).

    Args:
      step_size_fn: a schedule, ``count <i32>[] -> <f32>[]``.

    Returns:
      A ``GradientTransformation`` with state ``ScaleByScheduleState(count)``.
    """
    if not callable(step_size_fn):
        raise TypeError(f"scale_by_schedule: step_size_fn must be callable, got {step_size_fn!r}")

    def init(params):
        return ScaleByScheduleState(count=jnp.zeros([], jnp.int32))

    def update(updates, state, params=None):
        step_size = step_size_fn(state.count)
        updates = jax.tree.map(
            lambda g: jnp.array(step_size, dtype=jnp.result_type(g)) * g, updates
        )
        return updates, ScaleByScheduleState(count=_safe_increment(state.count))

    return _transformation("scale_by_schedule", init, update, ScaleByScheduleState)


def scale_by_learning_rate(
    learning_rate: ScalarOrSchedule, *, flip_sign: bool = True
) -> GradientTransformation:
    """Multiply updates by -learning_rate, keeping the rate in the state.

    The update applies ``state.learning_rate``; with a schedule the next value,
    ``schedule(count + 1)``, is written back after each step, so the rate follows the schedule
    inside the compiled step and the state always shows the rate of the next update.
    Numerically identical to ``optax.scale_by_learning_rate`` (rate rounded to the update dtype).

    Args:
      learning_rate: a positive float, or a schedule ``count <i32>[] -> <f>[]``.
      flip_sign: multiply by -learning_rate (descent) when True, by +learning_rate otherwise.

    Returns:
      A ``GradientTransformation`` with state ``ScaleByLearningRateState(count, learning_rate)``,
      ``learning_rate`` a scalar of the default float dtype.
    """
    _check_lr("scale_by_learning_rate", learning_rate)
    _check_bool("scale_by_learning_rate", "flip_sign", flip_sign)
    sign = -1 if flip_sign else 1
    schedule = learning_rate if callable(learning_rate) else None

    def init(params):
        count = jnp.zeros([], jnp.int32)
        lr = schedule(count) if schedule is not None else learning_rate
        # The default float dtype, read at init time (float64 under x64).
        lr = jnp.asarray(lr, jnp.result_type(float))
        return ScaleByLearningRateState(count=count, learning_rate=lr)

    def update(updates, state, params=None):
        step = sign * state.learning_rate
        updates = jax.tree.map(lambda g: step.astype(jnp.result_type(g)) * g, updates)
        count = _safe_increment(state.count)
        lr = state.learning_rate
        if schedule is not None:
            lr = jnp.asarray(schedule(count), lr.dtype)
        return updates, ScaleByLearningRateState(count=count, learning_rate=lr)

    return _transformation("scale_by_learning_rate", init, update, ScaleByLearningRateState)


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
    _check("set_learning_rate", "learning_rate", learning_rate, low=0.0, low_open=True)

    def replace(x):
        if _is_lr_state(x):
            lr = jnp.broadcast_to(jnp.asarray(learning_rate, x.learning_rate.dtype),
                                  x.learning_rate.shape)
            return x._replace(learning_rate=lr)
        return x

    current_learning_rate(state)  # raises a clear error if there is nothing to set
    return jax.tree.map(replace, state, is_leaf=_is_lr_state)


# --------------------------------------------------------------------------- building blocks


def trace(decay: float, nesterov: bool = False) -> GradientTransformation:
    """Momentum: v = decay * v + g; outputs v, or g + decay * v when ``nesterov``.

    Placed before ``scale_by_learning_rate`` this is optax's/PyTorch's momentum; placed after
    it, the traced quantity already contains -lr*g and becomes the notes' velocity.

    Args:
      decay: momentum coefficient in [0, 1).
      nesterov: return the Nesterov look-ahead g + decay * v instead of v.

    Returns:
      A ``GradientTransformation`` with state ``TraceState(trace)``.
    """
    _check_beta("trace", "decay", decay)
    _check_bool("trace", "nesterov", nesterov)

    def init(params):
        return TraceState(trace=_zeros_like(params))

    def update(updates, state, params=None):
        f = lambda g, t: g + decay * t  # noqa: E731
        new_trace = jax.tree.map(f, updates, state.trace)
        updates = jax.tree.map(f, updates, new_trace) if nesterov else new_trace
        return updates, TraceState(trace=new_trace)

    return _transformation("trace", init, update, TraceState)


def scale_by_rss(
    initial_accumulator_value: float = 0.1, eps: float = 1e-7, *, eps_in_sqrt: bool = True
) -> GradientTransformation:
    """Adagrad's scaling: s += g**2; g / sqrt(s + eps) (or g / (sqrt(s) + eps)).

    With ``eps_in_sqrt`` (optax, TF) entries whose accumulator is still 0 give 0, as optax
    does; with ``eps_in_sqrt=False`` the form is PyTorch's g / (sqrt(s) + eps).

    Args:
      initial_accumulator_value: starting value of s (optax/TF 0.1, PyTorch 0), >= 0.
      eps: positive smoothing term.
      eps_in_sqrt: put eps inside the square root (True) or add it to the root (False).

    Returns:
      A ``GradientTransformation`` with state ``ScaleByRssState(sum_of_squares)``.
    """
    _check("scale_by_rss", "initial_accumulator_value", initial_accumulator_value, low=0.0)
    _check_eps("scale_by_rss", "eps", eps)
    _check_bool("scale_by_rss", "eps_in_sqrt", eps_in_sqrt)

    def init(params):
        return ScaleByRssState(sum_of_squares=_full_like(params, initial_accumulator_value))

    def update(updates, state, params=None):
        sum_of_squares = jax.tree.map(lambda g, t: _abs_sq(g) + t, updates, state.sum_of_squares)
        if eps_in_sqrt:
            scaling = jax.tree.map(
                lambda t: jnp.where(t > 0, jax.lax.rsqrt(t + eps), 0.0), sum_of_squares
            )
            updates = jax.tree.map(lambda s, g: s * g, scaling, updates)
        else:
            updates = jax.tree.map(
                lambda g, t: g / (jnp.sqrt(t) + eps), updates, sum_of_squares
            )
        return updates, ScaleByRssState(sum_of_squares=sum_of_squares)

    return _transformation("scale_by_rss", init, update, ScaleByRssState)


def _rms_scaling(nu_hat, eps, eps_in_sqrt, mu_hat=None):
    """1 / sqrt(nu - |mu|**2 + eps) or 1 / (sqrt(nu - |mu|**2) + eps); mu absent: plain
    RMS."""
    if mu_hat is None:
        var = nu_hat
    else:
        var = jax.tree.map(lambda m, n: n - _abs_sq(m), mu_hat, nu_hat)
    if eps_in_sqrt:
        return jax.tree.map(lambda v: jax.lax.rsqrt(v + eps), var)
    return jax.tree.map(lambda v: 1 / (jnp.sqrt(v) + eps), var)


def scale_by_rms(
    decay: float = 0.9,
    eps: float = 1e-8,
    initial_scale: float = 0.0,
    *,
    eps_in_sqrt: bool = True,
    bias_correction: bool = False,
) -> GradientTransformation:
    """RMSprop's scaling: nu = decay * nu + (1 - decay) * g**2; g / sqrt(nu + eps).

    Seed 004 section 4.6 writes g / (sqrt(nu) + eps) with decay 0.99: ``eps_in_sqrt=False``.

    Args:
      decay: moving-average coefficient in [0, 1).
      eps: positive smoothing term.
      initial_scale: starting value of nu (0 in the notes, 1 in the original TF code), >= 0.
      eps_in_sqrt: eps inside the square root (optax default) or added to it (notes, PyTorch).
      bias_correction: divide nu by 1 - decay**t (then the state also holds ``count``).

    Returns:
      A ``GradientTransformation`` with state ``ScaleByRmsState(nu)`` (or
      ``ScaleByRmsWithCountState(count, nu)``).
    """
    _check_beta("scale_by_rms", "decay", decay)
    _check_eps("scale_by_rms", "eps", eps)
    _check("scale_by_rms", "initial_scale", initial_scale, low=0.0)
    _check_bool("scale_by_rms", "eps_in_sqrt", eps_in_sqrt)
    _check_bool("scale_by_rms", "bias_correction", bias_correction)
    state_type = ScaleByRmsWithCountState if bias_correction else ScaleByRmsState

    def init(params):
        nu = _full_like(params, initial_scale)
        if bias_correction:
            return ScaleByRmsWithCountState(count=jnp.zeros([], jnp.int32), nu=nu)
        return ScaleByRmsState(nu=nu)

    def update(updates, state, params=None):
        nu = _moment_abs_sq(updates, state.nu, decay)
        if bias_correction:
            count = _safe_increment(state.count)
            nu_hat = _bias_correct(nu, decay, count)
        else:
            nu_hat = nu
        scaling = _rms_scaling(nu_hat, eps, eps_in_sqrt)
        updates = jax.tree.map(lambda s, g: s * g, scaling, updates)
        if bias_correction:
            return updates, ScaleByRmsWithCountState(count=count, nu=nu)
        return updates, ScaleByRmsState(nu=nu)

    return _transformation("scale_by_rms", init, update, state_type)


def scale_by_stddev(
    decay: float = 0.9,
    eps: float = 1e-8,
    initial_scale: float = 0.0,
    *,
    eps_in_sqrt: bool = True,
    bias_correction: bool = False,
) -> GradientTransformation:
    """Centered RMSprop's scaling (Graves 2013): g / sqrt(nu - |mu|**2 + eps).

    mu and nu are moving averages of g and |g|**2 with the same ``decay``, so nu - |mu|**2 is
    a running variance estimate. Arguments as in ``scale_by_rms``.

    Returns:
      A ``GradientTransformation`` with state ``ScaleByRStdDevState(mu, nu)`` (or the
      ``...WithCountState`` when ``bias_correction``).
    """
    _check_beta("scale_by_stddev", "decay", decay)
    _check_eps("scale_by_stddev", "eps", eps)
    _check("scale_by_stddev", "initial_scale", initial_scale, low=0.0)
    _check_bool("scale_by_stddev", "eps_in_sqrt", eps_in_sqrt)
    _check_bool("scale_by_stddev", "bias_correction", bias_correction)
    state_type = ScaleByRStdDevWithCountState if bias_correction else ScaleByRStdDevState

    def init(params):
        mu, nu = _zeros_like(params), _full_like(params, initial_scale)
        if bias_correction:
            return ScaleByRStdDevWithCountState(count=jnp.zeros([], jnp.int32), mu=mu, nu=nu)
        return ScaleByRStdDevState(mu=mu, nu=nu)

    def update(updates, state, params=None):
        mu = _moment(updates, state.mu, decay, 1)
        nu = _moment_abs_sq(updates, state.nu, decay)
        if bias_correction:
            count = _safe_increment(state.count)
            mu_hat, nu_hat = _bias_correct(mu, decay, count), _bias_correct(nu, decay, count)
        else:
            mu_hat, nu_hat = mu, nu
        scaling = _rms_scaling(nu_hat, eps, eps_in_sqrt, mu_hat)
        updates = jax.tree.map(lambda s, g: s * g, scaling, updates)
        if bias_correction:
            return updates, ScaleByRStdDevWithCountState(count=count, mu=mu, nu=nu)
        return updates, ScaleByRStdDevState(mu=mu, nu=nu)

    return _transformation("scale_by_stddev", init, update, state_type)


def scale_by_adam(
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    eps_root: float = 0.0,
    *,
    bias_correction: bool = True,
    nesterov: bool = False,
) -> GradientTransformation:
    """Adam's scaling (Kingma & Ba 2015, Algorithm 1).

    m = b1*m + (1-b1)*g;  v = b2*v + (1-b2)*g**2;  m_hat = m / (1-b1**t);
    v_hat = v / (1-b2**t);  output m_hat / (sqrt(v_hat + eps_root) + eps).
    ``bias_correction=False`` drops the two divisions (the notes' Adam, seed 004 section 4.7).
    ``nesterov=True`` replaces m_hat by b1 * m_hat(t+1) + (1-b1) * g_hat(t) (Nadam, Dozat 2016,
    as optax writes it).

    Args:
      b1: first-moment coefficient in [0, 1).
      b2: second-moment coefficient in [0, 1).
      eps: positive term added to the root.
      eps_root: non-negative term added inside the root.
      bias_correction: apply the 1 / (1 - b**t) corrections.
      nesterov: Nadam's look-ahead first moment.

    Returns:
      A ``GradientTransformation`` with state ``ScaleByAdamState(count, mu, nu)``.
    """
    _check_beta("scale_by_adam", "b1", b1)
    _check_beta("scale_by_adam", "b2", b2)
    _check_eps("scale_by_adam", "eps", eps)
    _check("scale_by_adam", "eps_root", eps_root, low=0.0)
    _check_bool("scale_by_adam", "bias_correction", bias_correction)
    _check_bool("scale_by_adam", "nesterov", nesterov)

    def init(params):
        return ScaleByAdamState(
            count=jnp.zeros([], jnp.int32), mu=_zeros_like(params), nu=_zeros_like(params)
        )

    def update(updates, state, params=None):
        mu = _moment(updates, state.mu, b1, 1)
        nu = _moment_abs_sq(updates, state.nu, b2)
        count = _safe_increment(state.count)
        look_ahead = lambda m, g: b1 * m + (1 - b1) * g  # noqa: E731
        if bias_correction:
            if nesterov:
                mu_hat = jax.tree.map(
                    look_ahead,
                    _bias_correct(mu, b1, _safe_increment(count)),
                    _bias_correct(updates, b1, count),
                )
            else:
                mu_hat = _bias_correct(mu, b1, count)
            nu_hat = _bias_correct(nu, b2, count)
        else:
            mu_hat = jax.tree.map(look_ahead, mu, updates) if nesterov else mu
            nu_hat = nu
        updates = jax.tree.map(lambda m, v: m / (jnp.sqrt(v + eps_root) + eps), mu_hat, nu_hat)
        return updates, ScaleByAdamState(count=count, mu=mu, nu=nu)

    return _transformation("scale_by_adam", init, update, ScaleByAdamState)


def scale_by_adamax(b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8):
    """Adamax's scaling (Kingma & Ba 2015, section 7.1): the infinity-norm variant of Adam.

    m = b1*m + (1-b1)*g;  u = max(|g| + eps, b2*u);  output m / (1-b1**t) / u.

    Returns:
      A ``GradientTransformation`` with state ``ScaleByAdamState(count, mu, nu)`` (nu holds u).
    """
    _check_beta("scale_by_adamax", "b1", b1)
    _check_beta("scale_by_adamax", "b2", b2)
    _check_eps("scale_by_adamax", "eps", eps)

    def init(params):
        return ScaleByAdamState(
            count=jnp.zeros([], jnp.int32), mu=_zeros_like(params), nu=_zeros_like(params)
        )

    def update(updates, state, params=None):
        count = _safe_increment(state.count)
        mu = _moment(updates, state.mu, b1, 1)
        nu = jax.tree.map(lambda g, t: jnp.maximum(jnp.abs(g) + eps, b2 * t), updates, state.nu)
        mu_hat = _bias_correct(mu, b1, count)
        updates = jax.tree.map(lambda m, v: m / v, mu_hat, nu)
        return updates, ScaleByAdamState(count=count, mu=mu, nu=nu)

    return _transformation("scale_by_adamax", init, update, ScaleByAdamState)


def scale_by_adadelta(rho: float = 0.9, eps: float = 1e-6) -> GradientTransformation:
    """Adadelta's scaling (Zeiler 2012, Algorithm 1).

    E[g2] = rho*E[g2] + (1-rho)*g**2;  dx = sqrt(E[dx2] + eps) / sqrt(E[g2] + eps) * g;
    E[dx2] = rho*E[dx2] + (1-rho)*dx**2.  (Outputs +dx; the sign is applied by the rate.)

    Returns:
      A ``GradientTransformation`` with state ``ScaleByAdaDeltaState(e_g, e_x)``.
    """
    _check_beta("scale_by_adadelta", "rho", rho)
    _check_eps("scale_by_adadelta", "eps", eps)

    def init(params):
        return ScaleByAdaDeltaState(e_g=_zeros_like(params), e_x=_zeros_like(params))

    def update(updates, state, params=None):
        e_g = _moment(updates, state.e_g, rho, 2)
        updates = jax.tree.map(
            lambda g, cur_e_g, prev_e_x: (jnp.sqrt(prev_e_x + eps) / jnp.sqrt(cur_e_g + eps))
            * g,
            updates,
            e_g,
            state.e_x,
        )
        e_x = _moment(updates, state.e_x, rho, 2)
        return updates, ScaleByAdaDeltaState(e_g=e_g, e_x=e_x)

    return _transformation("scale_by_adadelta", init, update, ScaleByAdaDeltaState)


def scale_by_trust_ratio() -> GradientTransformation:
    """LAMB's layer-wise trust ratio: u * ||p|| / ||u|| per leaf (1 where a norm is 0)."""

    def update(updates, state, params=None):
        if params is None:
            raise ValueError("scale_by_trust_ratio: update needs params, got params=None")

        def one(u, p):
            p_norm, u_norm = jnp.linalg.norm(p), jnp.linalg.norm(u)
            zero = jnp.logical_or(p_norm == 0.0, u_norm == 0.0)
            ratio = jnp.where(zero, jnp.array(1.0, jnp.result_type(p)),
                              p_norm / jnp.where(zero, 1, u_norm))
            return u * ratio

        return jax.tree.map(one, updates, params), state

    return _transformation("scale_by_trust_ratio", lambda params: EmptyState(), update,
                           EmptyState)


def _apply_mask(fn_name, fn, mask, updates, params):
    """fn(u, p) on leaves where the (prefix) mask is True; u unchanged elsewhere."""
    if mask is None:
        return jax.tree.map(fn, updates, params)
    if callable(mask):
        mask = mask(params)
        _check_mask_tree(fn_name, "mask(params)", mask)
    return jax.tree.map(
        lambda m, u, p: jax.tree.map(fn, u, p) if m else u, mask, updates, params
    )


def add_decayed_weights(
    weight_decay: ScalarOrSchedule = 0.0, mask=None
) -> GradientTransformation:
    """Add ``weight_decay * params`` to the updates (decoupled weight decay when chained
    after an adaptive scaling, as in AdamW; plain L2 regularization when chained first).

    Args:
      weight_decay: non-negative float, or a schedule of the step count.
      mask: optional pytree of bools with the params' structure (or a prefix of it), or a
        function params -> such a pytree; decay applies where True. A pytree is checked
        here, a function's result at update time (TypeError unless its leaves are bools).

    Returns:
      A ``GradientTransformation`` with state ``EmptyState()`` (or ``WeightDecaySchedule(count)``
      for a scheduled decay). ``update`` requires params.
    """
    return _decayed_weights("add_decayed_weights", weight_decay, mask)


def _decayed_weights(fn: str, weight_decay, mask) -> GradientTransformation:
    """``add_decayed_weights`` whose errors name ``fn`` (the optimizer the user called)."""
    _check_weight_decay(fn, weight_decay)
    _check_mask(fn, mask)
    scheduled = callable(weight_decay)

    def init(params):
        return WeightDecaySchedule(count=jnp.zeros([], jnp.int32)) if scheduled else EmptyState()

    def update(updates, state, params=None):
        if params is None:
            raise ValueError(f"{fn}: update needs params, got params=None")
        if scheduled:
            s, state = weight_decay(state.count), WeightDecaySchedule(_safe_increment(state.count))
        elif isinstance(weight_decay, int | float) and weight_decay == 0.0:
            return updates, state  # a traced weight_decay cannot be tested for zero
        else:
            s = weight_decay
        return _apply_mask(fn, lambda g, p: g + s * p, mask, updates, params), state

    state_type = WeightDecaySchedule if scheduled else EmptyState
    return _transformation(fn, init, update, state_type)


def clip_by_value(max_delta: float) -> GradientTransformation:
    """Clip every update entry to [-max_delta, max_delta]; stateless (optax's ``clip``)."""
    _check("clip_by_value", "max_delta", max_delta, low=0.0, low_open=True)

    def update(updates, state, params=None):
        return jax.tree.map(lambda g: jnp.clip(g, -max_delta, max_delta), updates), state

    return _transformation("clip_by_value", lambda params: EmptyState(), update, EmptyState)


def clip_by_global_norm(max_norm: float) -> GradientTransformation:
    """Rescale all updates by max_norm / ||g|| when the global norm ||g|| (over all leaves)
    exceeds max_norm (Pascanu et al. 2013); stateless."""
    _check("clip_by_global_norm", "max_norm", max_norm, low=0.0, low_open=True)

    def update(updates, state, params=None):
        g_norm = _global_norm(updates)
        keep = g_norm < max_norm
        updates = jax.tree.map(lambda t: _clip_leaf(jnp.asarray(t), keep, g_norm, max_norm),
                               updates)
        return updates, state

    return _transformation("clip_by_global_norm", lambda params: EmptyState(), update,
                           EmptyState)


def _clip_leaf(t, keep, g_norm, max_norm):
    """t if keep else t / g_norm * max_norm (optax's expression; g_norm cast to t's dtype)."""
    return jax.lax.select(keep, t, (t / g_norm.astype(t.dtype)) * max_norm)


# --------------------------------------------------------------------------- optimizers


def sgd(
    learning_rate: ScalarOrSchedule, momentum: float | None = None, nesterov: bool = False
) -> GradientTransformation:
    """Stochastic gradient descent: w -= lr * g (with optional optax-form momentum).

    Args:
      learning_rate: positive float or schedule.
      momentum: None for plain SGD, else a coefficient in [0, 1) (see ``momentum``).
      nesterov: Nesterov momentum (see ``nesterov``).

    Returns:
      ``chain(trace or identity, scale_by_learning_rate)``; states as in ``optax.sgd`` plus
      the rate.
    """
    _check_lr("sgd", learning_rate)
    _check_bool("sgd", "nesterov", nesterov)
    if momentum is None:
        first = identity()
    else:
        _check_beta("sgd", "momentum", momentum)
        first = trace(momentum, nesterov)
    return _chain("sgd", first, scale_by_learning_rate(learning_rate))


def _momentum(fn, learning_rate, momentum, form, nesterov):
    _check_lr(fn, learning_rate)
    _check_beta(fn, "momentum", momentum)
    _check_form(fn, form)
    if form == "optax":
        return _chain(fn, trace(momentum, nesterov), scale_by_learning_rate(learning_rate))
    return _chain(fn, scale_by_learning_rate(learning_rate), trace(momentum, nesterov))


def momentum(
    learning_rate: ScalarOrSchedule, momentum: float = 0.9, *, form: str = "optax"
) -> GradientTransformation:
    """Heavy-ball momentum (Polyak 1964).

    ``form='optax'`` (optax, PyTorch): v = mu*v + g;  w -= lr*v.
    ``form='notes'`` (seed 004 section 4.5, cs231n ``sgd_momentum``): v = mu*v - lr*g;  w += v.
    With a constant rate the two give the same iterates (v_notes = -lr * v_optax); with a
    schedule the notes' form keeps old gradients at the rate they were taken with.

    Args:
      learning_rate: positive float or schedule.
      momentum: coefficient mu in [0, 1).
      form: 'optax' or 'notes'.

    Returns:
      'optax': ``chain(trace, scale_by_learning_rate)`` (= ``optax.sgd(lr, momentum)``);
      'notes': ``chain(scale_by_learning_rate, trace)``, whose trace is the velocity v.
    """
    return _momentum("momentum", learning_rate, momentum, form, nesterov=False)


def nesterov(
    learning_rate: ScalarOrSchedule, momentum: float = 0.9, *, form: str = "optax"
) -> GradientTransformation:
    """Nesterov momentum in its gradient-at-the-current-point rewriting (Sutskever et al. 2013).

    ``form='optax'`` (optax, PyTorch): v = mu*v + g;  w -= lr * (g + mu*v).
    ``form='notes'`` (cs231n, the notes' velocity convention): v' = mu*v - lr*g;
    w += -mu*v + (1 + mu)*v'  (= -lr*g + mu*v'). Same iterates for a constant rate.

    Args:
      learning_rate: positive float or schedule.
      momentum: coefficient mu in [0, 1).
      form: 'optax' or 'notes'.

    Returns:
      The chain as in ``momentum`` with a Nesterov trace.
    """
    return _momentum("nesterov", learning_rate, momentum, form, nesterov=True)


def adagrad(
    learning_rate: ScalarOrSchedule,
    initial_accumulator_value: float = 0.1,
    eps: float = 1e-7,
    *,
    eps_in_sqrt: bool = True,
) -> GradientTransformation:
    """Adagrad (Duchi et al. 2011): s += g**2;  w -= lr * g / sqrt(s + eps).

    Defaults are optax's/TF's (accumulator starts at 0.1, eps inside the root). PyTorch's
    Adagrad is ``initial_accumulator_value=0.0, eps=1e-10, eps_in_sqrt=False``.

    Returns:
      ``chain(scale_by_rss, scale_by_learning_rate)``.
    """
    _check_lr("adagrad", learning_rate)
    _check("adagrad", "initial_accumulator_value", initial_accumulator_value, low=0.0)
    _check_eps("adagrad", "eps", eps)
    _check_bool("adagrad", "eps_in_sqrt", eps_in_sqrt)
    return _chain(
        "adagrad",
        scale_by_rss(initial_accumulator_value, eps, eps_in_sqrt=eps_in_sqrt),
        scale_by_learning_rate(learning_rate),
    )


def rmsprop(
    learning_rate: ScalarOrSchedule,
    decay: float = 0.9,
    eps: float = 1e-8,
    initial_scale: float = 0.0,
    *,
    eps_in_sqrt: bool = True,
    centered: bool = False,
    momentum: float | None = None,
    nesterov: bool = False,
    bias_correction: bool = False,
) -> GradientTransformation:
    """RMSprop (Tieleman & Hinton 2012; centered: Graves 2013).

    nu = decay*nu + (1-decay)*g**2;  w -= lr * g / sqrt(nu + eps)   (eps_in_sqrt=True), or
    w -= lr * g / (sqrt(nu) + eps)  (eps_in_sqrt=False: seed 004 section 4.6 and PyTorch).
    The notes' version is ``rmsprop(lr, decay=0.99, eps=1e-8, eps_in_sqrt=False)``.
    ``centered`` divides by sqrt(nu - |mu|**2 + eps) instead; ``momentum`` adds a trace after
    the learning rate, as optax does.

    Returns:
      ``chain(scale_by_rms or scale_by_stddev, scale_by_learning_rate, trace or identity)``.
    """
    _check_lr("rmsprop", learning_rate)
    _check_beta("rmsprop", "decay", decay)
    _check_eps("rmsprop", "eps", eps)
    _check("rmsprop", "initial_scale", initial_scale, low=0.0)
    for name, flag in (("eps_in_sqrt", eps_in_sqrt), ("centered", centered),
                       ("nesterov", nesterov), ("bias_correction", bias_correction)):
        _check_bool("rmsprop", name, flag)
    if momentum is not None:
        _check_beta("rmsprop", "momentum", momentum)
    block = scale_by_stddev if centered else scale_by_rms
    return _chain(
        "rmsprop",
        block(decay, eps, initial_scale, eps_in_sqrt=eps_in_sqrt, bias_correction=bias_correction),
        scale_by_learning_rate(learning_rate),
        trace(momentum, nesterov) if momentum is not None else identity(),
    )


def adadelta(
    learning_rate: ScalarOrSchedule = 1.0,
    rho: float = 0.9,
    eps: float = 1e-6,
    weight_decay: ScalarOrSchedule = 0.0,
) -> GradientTransformation:
    """Adadelta (Zeiler 2012); the paper has no learning rate (1.0, PyTorch's default).

    Returns:
      ``chain(add_decayed_weights, scale_by_adadelta, scale_by_learning_rate)``.
    """
    _check_lr("adadelta", learning_rate)
    _check_beta("adadelta", "rho", rho)
    _check_eps("adadelta", "eps", eps)
    _check_weight_decay("adadelta", weight_decay)
    return _chain(
        "adadelta",
        _decayed_weights("adadelta", weight_decay, None),
        scale_by_adadelta(rho, eps),
        scale_by_learning_rate(learning_rate),
    )


def adam(
    learning_rate: ScalarOrSchedule,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    eps_root: float = 0.0,
    *,
    bias_correction: bool = True,
    nesterov: bool = False,
) -> GradientTransformation:
    """Adam (Kingma & Ba 2015): w -= lr * m_hat / (sqrt(v_hat) + eps); see ``scale_by_adam``.

    The notes' Adam (seed 004 section 4.7, defaults 1e-3, 0.9, 0.999, 1e-8) omits the bias
    correction: ``adam(1e-3, bias_correction=False)``.

    Returns:
      ``chain(scale_by_adam, scale_by_learning_rate)``.
    """
    return _adam("adam", learning_rate, b1, b2, eps, eps_root, bias_correction, nesterov)


def _check_adam(fn, learning_rate, b1, b2, eps, eps_root, bias_correction=True,
                nesterov=False):
    """Validate Adam's hyperparameters, naming ``fn`` (the function the user called)."""
    _check_lr(fn, learning_rate)
    _check_beta(fn, "b1", b1)
    _check_beta(fn, "b2", b2)
    _check_eps(fn, "eps", eps)
    _check(fn, "eps_root", eps_root, low=0.0)
    _check_bool(fn, "bias_correction", bias_correction)
    _check_bool(fn, "nesterov", nesterov)


def _adam(fn, learning_rate, b1, b2, eps, eps_root, bias_correction, nesterov):
    """``chain(scale_by_adam, scale_by_learning_rate)``, validated and named as ``fn``."""
    _check_adam(fn, learning_rate, b1, b2, eps, eps_root, bias_correction, nesterov)
    return _chain(
        fn,
        scale_by_adam(b1, b2, eps, eps_root, bias_correction=bias_correction, nesterov=nesterov),
        scale_by_learning_rate(learning_rate),
    )


def nadam(
    learning_rate: ScalarOrSchedule,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    eps_root: float = 0.0,
    *,
    bias_correction: bool = True,
) -> GradientTransformation:
    """Nadam (Dozat 2016): Adam with a Nesterov look-ahead first moment (= optax.nadam)."""
    return _adam("nadam", learning_rate, b1, b2, eps, eps_root, bias_correction, True)


def adamw(
    learning_rate: ScalarOrSchedule,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    eps_root: float = 0.0,
    weight_decay: ScalarOrSchedule = 1e-4,
    mask=None,
    *,
    bias_correction: bool = True,
    nesterov: bool = False,
) -> GradientTransformation:
    """AdamW (Loshchilov & Hutter 2019): w -= lr * (adam_direction + weight_decay * w).

    The decay is added after Adam's scaling, so it is not divided by sqrt(v) (decoupled), and
    it is multiplied by the learning rate (optax's and PyTorch's convention).

    Returns:
      ``chain(scale_by_adam, add_decayed_weights, scale_by_learning_rate)``; update needs
      params.
    """
    _check_adam("adamw", learning_rate, b1, b2, eps, eps_root, bias_correction, nesterov)
    return _chain(
        "adamw",
        scale_by_adam(b1, b2, eps, eps_root, bias_correction=bias_correction, nesterov=nesterov),
        _decayed_weights("adamw", weight_decay, mask),
        scale_by_learning_rate(learning_rate),
    )


def adamax(
    learning_rate: ScalarOrSchedule, b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8
) -> GradientTransformation:
    """Adamax (Kingma & Ba 2015, section 7.1); see ``scale_by_adamax``.

    Returns:
      ``chain(scale_by_adamax, scale_by_learning_rate)``.
    """
    _check_lr("adamax", learning_rate)
    _check_beta("adamax", "b1", b1)
    _check_beta("adamax", "b2", b2)
    _check_eps("adamax", "eps", eps)
    return _chain("adamax", scale_by_adamax(b1, b2, eps), scale_by_learning_rate(learning_rate))


def lamb(
    learning_rate: ScalarOrSchedule,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-6,
    eps_root: float = 0.0,
    weight_decay: ScalarOrSchedule = 0.0,
    mask=None,
) -> GradientTransformation:
    """LAMB (You et al. 2020): Adam direction plus decay, rescaled per leaf by ||w|| / ||u||.

    Returns:
      ``chain(scale_by_adam, add_decayed_weights, scale_by_trust_ratio,
      scale_by_learning_rate)``; update needs params.
    """
    _check_adam("lamb", learning_rate, b1, b2, eps, eps_root)
    return _chain(
        "lamb",
        scale_by_adam(b1, b2, eps, eps_root),
        _decayed_weights("lamb", weight_decay, mask),
        scale_by_trust_ratio(),
        scale_by_learning_rate(learning_rate),
    )
