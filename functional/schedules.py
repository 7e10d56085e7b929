"""Learning-rate schedules: pure functions of the step count.

A schedule maps ``count <i32>[]`` (the number of updates already applied) to a learning rate
``<f32>[]`` (``<f64>[]`` under x64). Pass one as ``learning_rate`` to any optimizer in
``functional.optim``: the optimizer evaluates it on the count held in its state, inside the
compiled step, so the rate changes every step without recompiling, and
``optim.current_learning_rate(state)`` reads the rate back. Every schedule is also an
``optax.Schedule`` (and optax's schedules work with our optimizers).

Per-epoch schedules (the notes' decays, ``step_decay``) take ``steps_per_epoch`` and use the
integer epoch ``first_epoch + count // steps_per_epoch``, so the rate is constant within an
epoch. Seed 004 section 4.8 (after Andrew Ng's deep-learning course) counts epochs from 1:
with lr0 = 0.2 and decay_rate = 1, ``inverse_time_decay`` gives 0.1, 0.067, 0.05, 0.04 in
epochs 1-4; ``first_epoch=0`` starts undecayed instead.

References: seed 004 section 4.8 (learning-rate decay); optax ``schedules/_schedule.py``
(formulas of the general schedules, matched here); Loshchilov & Hutter 2017 (cosine decay,
SGDR); Goyal et al. 2017 (linear warm-up).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp

from functional import _validate

Schedule = Callable[[jax.Array], jax.Array]


def _float(x) -> jax.Array:
    # The default float dtype, read at call time: float64 under x64 (int32 / int would
    # give float32 even there).
    return jnp.asarray(x, jnp.result_type(float))


# The schedules' TypeError says "must be a real number" (the optimizers' says "real scalar").
_real = functools.partial(_validate.real, noun="real number")


def _epoch(count, steps_per_epoch: int, first_epoch: int):
    return first_epoch + jnp.floor_divide(count, steps_per_epoch)


def _check_notes_decay(fn: str, init_value, steps_per_epoch, first_epoch, *,
                       lowest_first_epoch: int = 0):
    """The arguments the notes' per-epoch decays share (see ``_epoch``)."""
    _real(fn, "init_value", init_value, low=0.0, low_open=True)
    _validate.integer(fn, "steps_per_epoch", steps_per_epoch, low=1)
    _validate.integer(fn, "first_epoch", first_epoch, low=lowest_first_epoch)


@_validate.names_errors
def constant(value: float) -> Schedule:
    """lr(t) = value.

    Args:
      value: the rate, >= 0.

    Returns:
      A schedule ``count <i32>[] -> <f32>[]``.
    """
    fn = _validate.caller()
    _real(fn, "value", value, low=0.0)
    return lambda count: _float(value) + jnp.zeros_like(_float(count))


@_validate.names_errors
def piecewise_constant(init_value: float, boundaries_and_scales: dict[int, float]) -> Schedule:
    """lr(t) = init_value * product of the scales whose boundary b satisfies b <= t
    (optax.piecewise_constant_schedule).

    Args:
      init_value: the rate before the first boundary, >= 0.
      boundaries_and_scales: ``{step: factor}``, steps >= 0, factors >= 0; each factor
        multiplies the rate from that step on.

    Returns:
      A schedule ``count <i32>[] -> <f32>[]``.
    """
    fn = _validate.caller()
    _real(fn, "init_value", init_value, low=0.0)
    if not isinstance(boundaries_and_scales, dict):
        raise TypeError(
            f"{fn}: boundaries_and_scales must be a dict {{step: scale}}, got "
            f"{type(boundaries_and_scales).__name__}"
        )
    for b, s in boundaries_and_scales.items():
        _validate.integer(fn, "boundary", b, low=0)
        _real(fn, f"scale at step {b}", s, low=0.0)
    items = sorted(boundaries_and_scales.items())

    def schedule(count):
        value = _float(init_value)
        for boundary, factor in items:
            value = jnp.where(count >= boundary, value * factor, value)
        return value

    return schedule


@_validate.names_errors
def step_decay(
    init_value: float, drop: float, epochs_per_drop: int = 1, *, steps_per_epoch: int = 1
) -> Schedule:
    """Staircase decay: lr(t) = init_value * drop ** floor(epoch / epochs_per_drop), epoch
    counted from 0.

    Args:
      init_value: starting rate, > 0.
      drop: factor per drop, in (0, 1].
      epochs_per_drop: epochs between drops, >= 1.
      steps_per_epoch: updates per epoch, >= 1.

    Returns:
      A schedule ``count <i32>[] -> <f32>[]``.
    """
    fn = _validate.caller()
    _real(fn, "init_value", init_value, low=0.0, low_open=True)
    _real(fn, "drop", drop, low=0.0, low_open=True, high=1.0)
    _validate.integer(fn, "epochs_per_drop", epochs_per_drop, low=1)
    _validate.integer(fn, "steps_per_epoch", steps_per_epoch, low=1)

    def schedule(count):
        drops = jnp.floor_divide(_epoch(count, steps_per_epoch, 0), epochs_per_drop)
        return _float(init_value) * _float(drop) ** _float(drops)

    return schedule


@_validate.names_errors
def exponential_decay(
    init_value: float,
    transition_steps: int,
    decay_rate: float,
    transition_begin: int = 0,
    staircase: bool = False,
    end_value: float | None = None,
) -> Schedule:
    """lr(t) = init_value * decay_rate ** ((t - transition_begin) / transition_steps) for
    t > transition_begin, else init_value; exponent floored when ``staircase``; clipped at
    ``end_value`` when given (optax.exponential_decay).

    Args:
      init_value: starting rate, > 0.
      transition_steps: steps per factor of decay_rate, >= 1.
      decay_rate: factor, > 0 (< 1 decays, > 1 grows).
      transition_begin: steps held at init_value first, >= 0.
      staircase: integer exponent (piecewise constant).
      end_value: optional bound the rate never passes.

    Returns:
      A schedule ``count <i32>[] -> <f32>[]``.
    """
    fn = _validate.caller()
    _real(fn, "init_value", init_value, low=0.0, low_open=True)
    _validate.integer(fn, "transition_steps", transition_steps, low=1)
    _real(fn, "decay_rate", decay_rate, low=0.0, low_open=True)
    _validate.integer(fn, "transition_begin", transition_begin, low=0)
    _validate.boolean(fn, "staircase", staircase)
    if end_value is not None:
        _real(fn, "end_value", end_value, low=0.0)
    clip = jnp.maximum if decay_rate < 1.0 else jnp.minimum

    def schedule(count):
        steps = _float(count) - transition_begin
        p = steps / transition_steps
        if staircase:
            p = jnp.floor(p)
        value = jnp.where(steps <= 0, init_value, init_value * jnp.power(decay_rate, p))
        if end_value is not None:
            value = clip(value, end_value)
        return _float(value)

    return schedule


@_validate.names_errors
def inverse_time_decay(
    init_value: float, decay_rate: float, *, steps_per_epoch: int = 1, first_epoch: int = 1
) -> Schedule:
    """The notes' first decay (seed 004 section 4.8): lr = lr0 / (1 + decay_rate * epoch).

    Args:
      init_value: lr0, > 0.
      decay_rate: >= 0.
      steps_per_epoch: updates per epoch, >= 1.
      first_epoch: number of the first epoch (1 in the notes), >= 0.

    Returns:
      A schedule ``count <i32>[] -> <f32>[]``.
    """
    fn = _validate.caller()
    _check_notes_decay(fn, init_value, steps_per_epoch, first_epoch)
    _real(fn, "decay_rate", decay_rate, low=0.0)

    def schedule(count):
        epoch = _float(_epoch(count, steps_per_epoch, first_epoch))
        return _float(init_value) / (1 + decay_rate * epoch)

    return schedule


@_validate.names_errors
def epoch_exponential_decay(
    init_value: float, base: float = 0.95, *, steps_per_epoch: int = 1, first_epoch: int = 1
) -> Schedule:
    """The notes' exponential decay (seed 004 section 4.8): lr = base ** epoch * lr0.

    Args:
      init_value: lr0, > 0.
      base: factor per epoch, in (0, 1] (0.95 in the notes).
      steps_per_epoch: updates per epoch, >= 1.
      first_epoch: number of the first epoch (1 in the notes), >= 0.

    Returns:
      A schedule ``count <i32>[] -> <f32>[]``.
    """
    fn = _validate.caller()
    _check_notes_decay(fn, init_value, steps_per_epoch, first_epoch)
    _real(fn, "base", base, low=0.0, low_open=True, high=1.0)

    def schedule(count):
        epoch = _float(_epoch(count, steps_per_epoch, first_epoch))
        return _float(base) ** epoch * init_value

    return schedule


@_validate.names_errors
def inverse_sqrt_decay(
    init_value: float, k: float = 1.0, *, steps_per_epoch: int = 1, first_epoch: int = 1
) -> Schedule:
    """The notes' root decay (seed 004 section 4.8): lr = k / sqrt(epoch) * lr0.

    With ``steps_per_epoch=1`` this is the notes' k / sqrt(t) * lr0 per mini-batch step.

    Args:
      init_value: lr0, > 0.
      k: constant, > 0.
      steps_per_epoch: updates per epoch, >= 1.
      first_epoch: number of the first epoch, >= 1 (epoch 0 would divide by zero).

    Returns:
      A schedule ``count <i32>[] -> <f32>[]``.
    """
    fn = _validate.caller()
    _check_notes_decay(fn, init_value, steps_per_epoch, first_epoch, lowest_first_epoch=1)
    _real(fn, "k", k, low=0.0, low_open=True)

    def schedule(count):
        epoch = _float(_epoch(count, steps_per_epoch, first_epoch))
        return k / jnp.sqrt(epoch) * init_value

    return schedule


@_validate.names_errors
def polynomial(
    init_value: float,
    end_value: float,
    power: float,
    transition_steps: int,
    transition_begin: int = 0,
) -> Schedule:
    """lr(t) = (init - end) * (1 - s / transition_steps) ** power + end, with
    s = clip(t - transition_begin, 0, transition_steps) (optax.polynomial_schedule).

    Args:
      init_value: rate at the start, >= 0.
      end_value: rate from transition_begin + transition_steps on, >= 0.
      power: exponent, > 0 (1 is linear).
      transition_steps: length of the transition, >= 1.
      transition_begin: steps held at init_value first, >= 0.

    Returns:
      A schedule ``count <i32>[] -> <f32>[]``.
    """
    fn = _validate.caller()
    _real(fn, "init_value", init_value, low=0.0)
    _real(fn, "end_value", end_value, low=0.0)
    _real(fn, "power", power, low=0.0, low_open=True)
    _validate.integer(fn, "transition_steps", transition_steps, low=1)
    _validate.integer(fn, "transition_begin", transition_begin, low=0)

    def schedule(count):
        steps = jnp.clip(_float(count) - transition_begin, 0, transition_steps)
        # Exactly 0 from the end of the transition on: jitted, XLA computes 1 - s * (1/T),
        # which at s = T lands an ulp either side of 0 (NaN for a fractional power, or an end
        # value missed by ~sqrt(ulp)). Before the end the value is optax's, bit for bit.
        frac = jnp.where(steps < transition_steps, 1 - steps / transition_steps, 0.0)
        return _float((init_value - end_value) * frac**power + end_value)

    return schedule


@_validate.names_errors
def linear(
    init_value: float, end_value: float, transition_steps: int, transition_begin: int = 0
) -> Schedule:
    """Straight line from init_value to end_value over transition_steps (``polynomial`` with
    power 1; optax.linear_schedule)."""
    return polynomial(init_value, end_value, 1, transition_steps, transition_begin)


@_validate.names_errors
def cosine_decay(
    init_value: float, decay_steps: int, alpha: float = 0.0, exponent: float = 1.0
) -> Schedule:
    """Cosine decay (Loshchilov & Hutter 2017; optax.cosine_decay_schedule):
    lr(t) = init * ((1 - alpha) * (0.5 * (1 + cos(pi * min(t, T) / T))) ** exponent + alpha).

    Args:
      init_value: rate at step 0, > 0.
      decay_steps: T, >= 1; the rate stays at alpha * init_value afterwards.
      alpha: final fraction of init_value, in [0, 1].
      exponent: > 0.

    Returns:
      A schedule ``count <i32>[] -> <f32>[]``.
    """
    fn = _validate.caller()
    _real(fn, "init_value", init_value, low=0.0, low_open=True)
    _validate.integer(fn, "decay_steps", decay_steps, low=1)
    _real(fn, "alpha", alpha, low=0.0, high=1.0)
    _real(fn, "exponent", exponent, low=0.0, low_open=True)

    def schedule(count):
        t = jnp.minimum(_float(count), float(decay_steps))
        cosine = 0.5 * (1 + jnp.cos(jnp.pi * t / decay_steps))
        return init_value * ((1 - alpha) * cosine**exponent + alpha)

    return schedule


@_validate.names_errors
def join(schedules: Sequence[Schedule], boundaries: Sequence[int]) -> Schedule:
    """Schedule i runs from boundaries[i-1] on, restarted at its own step 0
    (optax.join_schedules).

    Args:
      schedules: n schedules.
      boundaries: n - 1 increasing steps >= 0.

    Returns:
      A schedule ``count <i32>[] -> <f32>[]``.
    """
    fn = _validate.caller()
    schedules, boundaries = list(schedules), list(boundaries)
    if len(boundaries) != len(schedules) - 1 or not schedules:
        raise ValueError(
            f"{fn}: expected len(boundaries) == len(schedules) - 1, got {len(boundaries)} "
            f"boundaries for {len(schedules)} schedules"
        )
    for i, f in enumerate(schedules):
        _validate.function(fn, f"schedules[{i}]", f)
    for b in boundaries:
        _validate.integer(fn, "boundary", b, low=0)
    if boundaries != sorted(boundaries):
        raise ValueError(f"{fn}: boundaries must increase, got {boundaries}")

    def schedule(count):
        value = _float(schedules[0](count))
        for boundary, f in zip(boundaries, schedules[1:], strict=True):
            value = jnp.where(count < boundary, value, _float(f(count - boundary)))
        return value

    return schedule


@_validate.names_errors
def warmup(schedule: Schedule, warmup_steps: int, init_value: float = 0.0) -> Schedule:
    """Linear warm-up joined to any schedule (Goyal et al. 2017).

    lr(t) = init_value + (schedule(0) - init_value) * t / warmup_steps for t < warmup_steps,
    then schedule(t - warmup_steps): the wrapped schedule starts once warm-up ends.
    ``warmup(cosine_decay(peak, T - W, end / peak), W, init)`` is
    ``optax.warmup_cosine_decay_schedule(init, peak, W, T, end)``.

    Args:
      schedule: any schedule (ours or optax's).
      warmup_steps: W, >= 0 (0 returns ``schedule`` itself).
      init_value: rate at step 0, >= 0.

    Returns:
      A schedule ``count <i32>[] -> <f32>[]``.
    """
    fn = _validate.caller()
    _validate.function(fn, "schedule", schedule)
    _validate.integer(fn, "warmup_steps", warmup_steps, low=0)
    _real(fn, "init_value", init_value, low=0.0)
    if warmup_steps == 0:
        return schedule

    def ramp(count):
        peak = _float(schedule(jnp.zeros([], jnp.int32)))
        frac = jnp.clip(_float(count), 0, warmup_steps) / warmup_steps
        return (peak - init_value) * frac + init_value

    return join([ramp, schedule], [warmup_steps])
