"""The building blocks optimizers are chained from: scaling rules (``scale_by_adam``, ...),
momentum (``trace``), the learning rate, weight decay with its masks, and clipping.

Each block checks its own arguments once, when it is built; the errors name the optimizer the
user called when an optimizer built the block (``functional._validate``).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from functional import _validate
from functional.optim.base import (
    EmptyState,
    GradientTransformation,
    ScalarOrSchedule,
    ScaleByAdaDeltaState,
    ScaleByAdamState,
    ScaleByLearningRateState,
    ScaleByRmsState,
    ScaleByRmsWithCountState,
    ScaleByRssState,
    ScaleByRStdDevState,
    ScaleByRStdDevWithCountState,
    ScaleByScheduleState,
    Schedule,
    TraceState,
    WeightDecaySchedule,
    _transformation,
)

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


def _init_adam_state(params) -> ScaleByAdamState:
    """Adam's and Adamax's initial state: count 0 and zero moments."""
    return ScaleByAdamState(
        count=jnp.zeros([], jnp.int32), mu=_zeros_like(params), nu=_zeros_like(params)
    )


def _global_norm(tree) -> jax.Array:
    return jnp.sqrt(sum(jnp.sum(_abs_sq(jnp.asarray(x))) for x in jax.tree.leaves(tree)))


# --------------------------------------------------------------------------- learning rate


@_validate.names_errors
def scale(step_size: float) -> GradientTransformation:
    """Multiply updates by a fixed ``step_size`` (a finite real scalar, any sign); stateless."""
    fn = _validate.caller()
    _validate.real(fn, "step_size", step_size)

    def update(updates, state, params=None):
        return jax.tree.map(lambda g: step_size * g, updates), state

    return _transformation(fn, lambda params: EmptyState(), update, EmptyState)


@_validate.names_errors
def scale_by_schedule(step_size_fn: Schedule) -> GradientTransformation:
    """Multiply updates by ``step_size_fn(count)`` and count the step (optax's semantics).

    Args:
      step_size_fn: a schedule, ``count <i32>[] -> <f32>[]``.

    Returns:
      A ``GradientTransformation`` with state ``ScaleByScheduleState(count)``.
    """
    fn = _validate.caller()
    _validate.function(fn, "step_size_fn", step_size_fn)

    def init(params):
        return ScaleByScheduleState(count=jnp.zeros([], jnp.int32))

    def update(updates, state, params=None):
        step_size = step_size_fn(state.count)
        updates = jax.tree.map(
            lambda g: jnp.array(step_size, dtype=jnp.result_type(g)) * g, updates
        )
        return updates, ScaleByScheduleState(count=_safe_increment(state.count))

    return _transformation(fn, init, update, ScaleByScheduleState)


@_validate.names_errors
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
    fn = _validate.caller()
    if not callable(learning_rate):
        _validate.positive(fn, "learning_rate", learning_rate)
    _validate.boolean(fn, "flip_sign", flip_sign)
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

    return _transformation(fn, init, update, ScaleByLearningRateState)


# --------------------------------------------------------------------------- building blocks


@_validate.names_errors
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
    fn = _validate.caller()
    _validate.fraction(fn, "decay", decay)
    _validate.boolean(fn, "nesterov", nesterov)

    def init(params):
        return TraceState(trace=_zeros_like(params))

    def update(updates, state, params=None):
        f = lambda g, t: g + decay * t  # noqa: E731
        new_trace = jax.tree.map(f, updates, state.trace)
        updates = jax.tree.map(f, updates, new_trace) if nesterov else new_trace
        return updates, TraceState(trace=new_trace)

    return _transformation(fn, init, update, TraceState)


@_validate.names_errors
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
    fn = _validate.caller()
    _validate.nonnegative(fn, "initial_accumulator_value", initial_accumulator_value)
    _validate.positive(fn, "eps", eps)
    _validate.boolean(fn, "eps_in_sqrt", eps_in_sqrt)

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

    return _transformation(fn, init, update, ScaleByRssState)


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


def _check_rms_arguments(fn, decay, eps, initial_scale, eps_in_sqrt, bias_correction):
    """The arguments ``scale_by_rms`` and ``scale_by_stddev`` share."""
    _validate.fraction(fn, "decay", decay)
    _validate.positive(fn, "eps", eps)
    _validate.nonnegative(fn, "initial_scale", initial_scale)
    _validate.boolean(fn, "eps_in_sqrt", eps_in_sqrt)
    _validate.boolean(fn, "bias_correction", bias_correction)


@_validate.names_errors
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
    fn = _validate.caller()
    _check_rms_arguments(fn, decay, eps, initial_scale, eps_in_sqrt, bias_correction)
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

    return _transformation(fn, init, update, state_type)


@_validate.names_errors
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
    fn = _validate.caller()
    _check_rms_arguments(fn, decay, eps, initial_scale, eps_in_sqrt, bias_correction)
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

    return _transformation(fn, init, update, state_type)


@_validate.names_errors
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
    fn = _validate.caller()
    _validate.fraction(fn, "b1", b1)
    _validate.fraction(fn, "b2", b2)
    _validate.positive(fn, "eps", eps)
    _validate.nonnegative(fn, "eps_root", eps_root)
    _validate.boolean(fn, "bias_correction", bias_correction)
    _validate.boolean(fn, "nesterov", nesterov)

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

    return _transformation(fn, _init_adam_state, update, ScaleByAdamState)


@_validate.names_errors
def scale_by_adamax(b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8):
    """Adamax's scaling (Kingma & Ba 2015, section 7.1): the infinity-norm variant of Adam.

    m = b1*m + (1-b1)*g;  u = max(|g| + eps, b2*u);  output m / (1-b1**t) / u.

    Returns:
      A ``GradientTransformation`` with state ``ScaleByAdamState(count, mu, nu)`` (nu holds u).
    """
    fn = _validate.caller()
    _validate.fraction(fn, "b1", b1)
    _validate.fraction(fn, "b2", b2)
    _validate.positive(fn, "eps", eps)

    def update(updates, state, params=None):
        count = _safe_increment(state.count)
        mu = _moment(updates, state.mu, b1, 1)
        nu = jax.tree.map(lambda g, t: jnp.maximum(jnp.abs(g) + eps, b2 * t), updates, state.nu)
        mu_hat = _bias_correct(mu, b1, count)
        updates = jax.tree.map(lambda m, v: m / v, mu_hat, nu)
        return updates, ScaleByAdamState(count=count, mu=mu, nu=nu)

    return _transformation(fn, _init_adam_state, update, ScaleByAdamState)


@_validate.names_errors
def scale_by_adadelta(rho: float = 0.9, eps: float = 1e-6) -> GradientTransformation:
    """Adadelta's scaling (Zeiler 2012, Algorithm 1).

    E[g2] = rho*E[g2] + (1-rho)*g**2;  dx = sqrt(E[dx2] + eps) / sqrt(E[g2] + eps) * g;
    E[dx2] = rho*E[dx2] + (1-rho)*dx**2.  (Outputs +dx; the sign is applied by the rate.)

    Returns:
      A ``GradientTransformation`` with state ``ScaleByAdaDeltaState(e_g, e_x)``.
    """
    fn = _validate.caller()
    _validate.fraction(fn, "rho", rho)
    _validate.positive(fn, "eps", eps)

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

    return _transformation(fn, init, update, ScaleByAdaDeltaState)


@_validate.names_errors
def scale_by_trust_ratio() -> GradientTransformation:
    """LAMB's layer-wise trust ratio: u * ||p|| / ||u|| per leaf (1 where a norm is 0)."""
    fn = _validate.caller()

    def update(updates, state, params=None):
        if params is None:
            raise ValueError(f"{fn}: update needs params, got params=None")

        def one(u, p):
            p_norm, u_norm = jnp.linalg.norm(p), jnp.linalg.norm(u)
            zero = jnp.logical_or(p_norm == 0.0, u_norm == 0.0)
            ratio = jnp.where(zero, jnp.array(1.0, jnp.result_type(p)),
                              p_norm / jnp.where(zero, 1, u_norm))
            return u * ratio

        return jax.tree.map(one, updates, params), state

    return _transformation(fn, lambda params: EmptyState(), update, EmptyState)


def _apply_mask(fn, op, mask, updates, params):
    """op(u, p) on leaves where the (prefix) mask is True; u unchanged elsewhere. ``fn`` names
    the function the user called in the error for a mask function's bad result."""
    if mask is None:
        return jax.tree.map(op, updates, params)
    if callable(mask):
        mask = mask(params)
        _validate.mask_tree(fn, "mask(params)", mask)
    return jax.tree.map(
        lambda m, u, p: jax.tree.map(op, u, p) if m else u, mask, updates, params
    )


@_validate.names_errors
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
    fn = _validate.caller()
    if not callable(weight_decay):
        _validate.nonnegative(fn, "weight_decay", weight_decay)
    if mask is not None and not callable(mask):
        _validate.mask_tree(fn, "mask", mask)
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


@_validate.names_errors
def clip_by_value(max_delta: float) -> GradientTransformation:
    """Clip every update entry to [-max_delta, max_delta]; stateless (optax's ``clip``)."""
    fn = _validate.caller()
    _validate.positive(fn, "max_delta", max_delta)

    def update(updates, state, params=None):
        return jax.tree.map(lambda g: jnp.clip(g, -max_delta, max_delta), updates), state

    return _transformation(fn, lambda params: EmptyState(), update, EmptyState)


@_validate.names_errors
def clip_by_global_norm(max_norm: float) -> GradientTransformation:
    """Rescale all updates by max_norm / ||g|| when the global norm ||g|| (over all leaves)
    exceeds max_norm (Pascanu et al. 2013); stateless."""
    fn = _validate.caller()
    _validate.positive(fn, "max_norm", max_norm)

    def update(updates, state, params=None):
        g_norm = _global_norm(updates)
        keep = g_norm < max_norm
        updates = jax.tree.map(lambda t: _clip_leaf(jnp.asarray(t), keep, g_norm, max_norm),
                               updates)
        return updates, state

    return _transformation(fn, lambda params: EmptyState(), update,
                           EmptyState)


def _clip_leaf(t, keep, g_norm, max_norm):
    """t if keep else t / g_norm * max_norm (optax's expression; g_norm cast to t's dtype)."""
    return jax.lax.select(keep, t, (t / g_norm.astype(t.dtype)) * max_norm)


